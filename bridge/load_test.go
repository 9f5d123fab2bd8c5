package bridge

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeConfig writes a config file into a temporary directory.
func writeConfig(t testing.TB, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodConfig = `server:
  listen: "127.0.0.1:0"
  max_body_bytes: 2048
store:
  path: data/bridge.db
  retention: 48h
  sync: normal
sources:
  - name: sa
    vendor: secureagentics
    secret: ${TEST_SA_SECRET:-default-secret}
  - name: ag
    vendor: agility
    token: tok
    rate_limit: {rps: 5, burst: 10}
sinks:
  - name: out
    type: fake
    url: http://127.0.0.1:1/
    timeout: 3s
    concurrency: 2
    retry: {initial: 2s, max_interval: 1m, max_age: 1h}
rules:
  - name: all
    when: 'true'
    actions:
      - sink: out
        text: '{{ .title }}'
`

func TestLoadGood(t *testing.T) {
	path := writeConfig(t, goodConfig)
	cfg, err := Load(path, fakeTypes())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got, want := cfg.Store.Path, filepath.Join(filepath.Dir(path), "data/bridge.db"); got != want {
		t.Errorf("store path %q, want %q (relative to the config file)", got, want)
	}
	if cfg.Store.Retention.D() != 48*time.Hour || cfg.Store.Sync != "normal" || cfg.Server.MaxBodyBytes != 2048 {
		t.Errorf("store/server not decoded: %+v %+v", cfg.Store, cfg.Server)
	}
	if cfg.Sources[0].Secret.Value() != "default-secret" {
		t.Errorf("${VAR:-default} not expanded")
	}
	if cfg.Sources[1].RateLimit == nil || cfg.Sources[1].RateLimit.Burst != 10 {
		t.Errorf("rate limit not decoded: %+v", cfg.Sources[1].RateLimit)
	}
	s := cfg.Sinks[0]
	if s.Timeout.D() != 3*time.Second || s.Concurrency != 2 || s.Retry.Initial.D() != 2*time.Second || s.Retry.MaxAge.D() != time.Hour {
		t.Errorf("common sink settings not decoded: %+v", s)
	}
	if fc, ok := s.Config.(*fakeConfig); !ok || fc.URL != "http://127.0.0.1:1/" {
		t.Errorf("sink's own config not decoded: %#v", s.Config)
	}
	r := cfg.Rules[0]
	if r.Name != "all" || r.WhenLine != 25 || len(r.Actions) != 1 || r.Actions[0].Sink != "out" || r.Actions[0].Line != 27 {
		t.Errorf("rule not decoded with lines: %+v", r)
	}
}

func TestLoadDefaults(t *testing.T) {
	path := writeConfig(t, "sources:\n  - {name: a, vendor: antly, insecure: true}\n")
	cfg, err := Load(path, fakeTypes())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != DefaultListen || cfg.Server.MaxBodyBytes != DefaultMaxBodyBytes || cfg.Store.Sync != "full" ||
		cfg.Store.Retention.D() != DefaultRetention {
		t.Errorf("defaults not applied: %+v %+v", cfg.Server, cfg.Store)
	}
}

// TestLoadMistakes has one case per kind of mistake, each checking the line.
func TestLoadMistakes(t *testing.T) {
	os.Unsetenv("BRIDGE_TEST_UNSET")
	cases := []struct {
		name, text string
		line       int
		want       string
	}{
		{"yaml syntax", "server:\n  listen: \":8080\"\n sources: [\n", 2, "YAML syntax error"},
		{"unknown top-level key", "server: {}\nsorces: []\n", 2, `unknown key "sorces"`},
		{"unknown server key", "server:\n  listen: \":1\"\n  max_body: 5\n", 3, `unknown key "max_body"`},
		{"unknown source key", "sources:\n  - name: a\n    vendor: antly\n    insecure: true\n    sekret: x\n", 5, `unknown key "sekret"`},
		{"unknown sink key", "sinks:\n  - name: s\n    type: fake\n    url: http://x\n    uri: http://y\n", 5, `unknown key "uri"`},
		{"unknown nested sink key", "sinks:\n  - name: s\n    type: fake\n    url: http://x\n    retry:\n      intial: 1s\n", 6, `unknown key "intial"`},
		{"unknown rule key", "rules:\n  - name: r\n    wen: 'true'\n    actions: []\n", 3, `unknown key "wen"`},
		{"wrong type", "server:\n  max_body_bytes: lots\n", 2, `server.max_body_bytes: must be a whole number, got "lots"`},
		{"fraction for a whole number", "server:\n  listen: \":1\"\n  max_body_bytes: 100.9\n", 3, "server.max_body_bytes: must be a whole number, got 100.9"},
		{"fraction for a source's whole number", "sources:\n  - name: a\n    vendor: antly\n    insecure: true\n    rate_limit: {rps: 1.5, burst: 2.5}\n", 5, "rate_limit.burst: must be a whole number, got 2.5"},
		{"fraction for a sink's whole number", "sinks:\n  - name: s\n    type: fake\n    url: http://x\n    concurrency: 2.5\n", 5, "concurrency: must be a whole number, got 2.5"},
		{"negative infinity for a whole number", "server:\n  max_body_bytes: -.inf\n", 2, "server.max_body_bytes: -.inf is out of range"},
		{"bad duration", "store:\n  retention: forever\n", 2, `"forever" is not a duration`},
		{"unset variable", "sources:\n  - name: a\n    vendor: antly\n    token: ${BRIDGE_TEST_UNSET}\n", 4, "environment variable BRIDGE_TEST_UNSET is not set"},
		{"no credentials", "sources:\n  - name: a\n    vendor: antly\n", 2, "no secret, secrets or token"},
		{"unknown vendor", "sources:\n  - name: a\n    vendor: acme\n    insecure: true\n", 3, `unknown vendor "acme"`},
		{"duplicate source", "sources:\n  - {name: a, vendor: antly, insecure: true}\n  - {name: a, vendor: antly, insecure: true}\n", 3, "used twice"},
		{"unknown sink type", "sinks:\n  - name: s\n    type: pager\n", 3, `unknown type "pager"`},
		{"sink field invalid", "sinks:\n  - name: s\n    type: fake\n    tls:\n      ca_file: missing.pem\n", 5, "tls.ca_file"},
		{"sink field missing", "sinks:\n  - name: s\n    type: fake\n", 2, "url: is required"},
		{"bad sync", "store:\n  sync: sometimes\n", 2, "sync must be full"},
		{"tls half", "server:\n  tls_cert: a.pem\n", 2, "tls_cert and tls_key go together"},
		{"bad concurrency", "sinks:\n  - name: s\n    type: fake\n    url: http://x\n    concurrency: 0\n", 5, "concurrency must be at least 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.text)
			_, err := Load(path, fakeTypes())
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Load error %v, want Problems", err)
			}
			for _, p := range ps {
				if p.Line == c.line && strings.Contains(p.Msg, c.want) {
					if !strings.HasPrefix(p.String(), path+":") {
						t.Errorf("problem %q does not start with FILE:LINE", p.String())
					}
					return
				}
			}
			t.Errorf("no problem at line %d containing %q; got:\n%v", c.line, c.want, err)
		})
	}
}

// TestLoadWholeNumbers checks what a whole-number setting takes: an integer,
// a float with no fraction, a ${VAR} that expands to one; and that a
// fraction is one problem, even in a sink (decoded twice).
func TestLoadWholeNumbers(t *testing.T) {
	t.Setenv("BRIDGE_TEST_MAX", "2048")
	t.Setenv("BRIDGE_TEST_FRACTION", "100.9")
	for _, c := range []struct {
		text string
		want int64
	}{
		{"server:\n  max_body_bytes: 4096\n", 4096},
		{"server:\n  max_body_bytes: 1e6\n", 1000000},
		{"server:\n  max_body_bytes: 2048.0\n", 2048},
		{"server:\n  max_body_bytes: ${BRIDGE_TEST_MAX}\n", 2048},
		{"server:\n  max_body_bytes: ${BRIDGE_TEST_UNSET:-512}\n", 512},
	} {
		cfg, err := Load(writeConfig(t, c.text), fakeTypes())
		if err != nil || cfg.Server.MaxBodyBytes != c.want {
			t.Errorf("%q: max_body_bytes %d, %v; want %d", c.text, cfg.Server.MaxBodyBytes, err, c.want)
		}
	}
	for _, c := range []struct{ text, want string }{
		{"server:\n  max_body_bytes: ${BRIDGE_TEST_FRACTION}\n", "server.max_body_bytes: must be a whole number, got (the value from the environment)"},
		{"sinks:\n  - name: s\n    type: fake\n    url: http://x\n    concurrency: 2.5\n", "concurrency: must be a whole number, got 2.5"},
	} {
		_, err := Load(writeConfig(t, c.text), fakeTypes())
		var ps Problems
		if !errors.As(err, &ps) || len(ps) != 1 || !strings.Contains(ps[0].Msg, c.want) {
			t.Errorf("%q: %v; want one problem %q", c.text, err, c.want)
		}
	}
}

// TestLoadReportsEveryProblem checks that one run lists all mistakes.
func TestLoadReportsEveryProblem(t *testing.T) {
	text := "server:\n  listen: \"\"\n  colour: red\nstore:\n  sync: maybe\nsources:\n  - name: a\n    vendor: acme\nsinks:\n  - name: s\n    type: nope\n"
	_, err := Load(writeConfig(t, text), fakeTypes())
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want Problems, got %v", err)
	}
	lines := map[int]bool{}
	for _, p := range ps {
		lines[p.Line] = true
	}
	for _, l := range []int{2, 3, 5, 8, 11} {
		if !lines[l] {
			t.Errorf("no problem reported at line %d; got:\n%v", l, err)
		}
	}
}

// TestSecretsNeverShown checks that secret values reach no error, no log
// line and no printed config.
func TestSecretsNeverShown(t *testing.T) {
	const secret = "s3cr3t-VALUE-do-not-show"
	t.Setenv("BRIDGE_TEST_SECRET", secret)
	text := "server:\n  max_body_bytes: ${BRIDGE_TEST_SECRET}\nsources:\n  - name: a\n    vendor: secureagentics\n    secret: ${BRIDGE_TEST_SECRET}\n    token_header: X-T\nsinks:\n  - name: s\n    type: fake\n    token: ${BRIDGE_TEST_SECRET}\n"
	cfg, err := Load(writeConfig(t, text), fakeTypes())
	if err == nil {
		t.Fatal("want problems")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the secret:\n%v", err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("config", "source", cfg.Sources[0], "secret", cfg.Sources[0].Secret, "sink", cfg.Sinks[0].Config)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "source", cfg.Sources[0], "sink", cfg.Sinks[0].Config)
	if strings.Contains(buf.String(), secret) {
		t.Errorf("log shows the secret:\n%s", buf.String())
	}
	if cfg.Sources[0].Secret.Value() != secret {
		t.Errorf("the secret itself must still be usable")
	}
}

func TestLoadStoreIgnoresOtherSections(t *testing.T) {
	text := "store:\n  path: x.db\nsources:\n  - name: broken\n    vendor: acme\n    token: ${BRIDGE_TEST_UNSET}\n"
	path := writeConfig(t, text)
	cfg, err := LoadStore(path)
	if err != nil {
		t.Fatalf("LoadStore: %v", err)
	}
	if want := filepath.Join(filepath.Dir(path), "x.db"); cfg.Store.Path != want {
		t.Errorf("store path %q, want %q (relative to the config file, as serve has it)", cfg.Store.Path, want)
	}
	if _, err := LoadStore(writeConfig(t, "store:\n  sync: nope\n")); err == nil {
		t.Error("a broken store section must still be refused")
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte("sources:\n  - {name: a, vendor: antly, insecure: true}\n"))
	f.Add([]byte("sinks:\n  - name: s\n    type: fake\n    retry: {initial: x}\n"))
	f.Add([]byte("rules:\n  - name: r\n    actions:\n      - sink: s\n        text: ${X:-y}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		type result struct {
			cfg *Config
			err error
		}
		done := make(chan result, 1)
		go func() {
			cfg, err := Load(path, fakeTypes())
			done <- result{cfg, err}
		}()
		var cfg *Config
		var err error
		select {
		case r := <-done:
			cfg, err = r.cfg, r.err
		case <-time.After(5 * time.Second):
			t.Fatalf("Load did not finish in 5s on %q", data)
		}
		if err == nil && cfg == nil {
			t.Fatal("no config and no error")
		}
		var ps Problems
		if err != nil && !errors.As(err, &ps) {
			t.Fatalf("error is not Problems: %v", err)
		}
		LoadStore(path)
	})
}

func TestSplitErrors(t *testing.T) {
	a, b, c := errors.New("a"), errors.New("b"), errors.New("c")
	if got := SplitErrors(nil); got != nil {
		t.Errorf("nil: %v", got)
	}
	if got := SplitErrors(a); len(got) != 1 || got[0] != a {
		t.Errorf("single: %v", got)
	}
	got := SplitErrors(errors.Join(a, errors.Join(b, nil, c)))
	if len(got) != 3 || got[0] != a || got[1] != b || got[2] != c {
		t.Errorf("nested join: %v, want [a b c]", got)
	}
}
