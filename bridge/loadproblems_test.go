package bridge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// problemsOf loads text and returns its problems, failing the test when it
// loads without any.
func problemsOf(t *testing.T, text string) (string, Problems) {
	t.Helper()
	path := writeConfig(t, text)
	_, err := Load(path, fakeTypes())
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Load(%q) = %v, want Problems", text, err)
	}
	return path, ps
}

// TestLoadTypeProblems checks that a value of the wrong type is one
// problem, at its line, naming the key and the type the key takes, for
// every kind of type and in every section; and that Validate does not
// report again the value a key that could not be read was left with.
func TestLoadTypeProblems(t *testing.T) {
	src := func(extra string) string {
		return "sources:\n  - name: a\n    vendor: antly\n    token: t\n" + extra
	}
	sink := func(extra string) string { return "sinks:\n  - name: s\n    type: fake\n    url: http://x\n" + extra }
	for _, c := range []struct {
		name, text string
		line       int
		want       string
	}{
		{"int", "server:\n  max_body_bytes: lots\n", 2, `server.max_body_bytes: must be a whole number, got "lots"`},
		{"int given a list", "server:\n  max_body_bytes: [1]\n", 2, `server.max_body_bytes: must be a whole number, got a list`},
		{"int out of range", "server:\n  max_body_bytes: 99999999999999999999\n", 2, `server.max_body_bytes: 99999999999999999999 is out of range`},
		{"float", src("    rate_limit: {rps: fast, burst: 2}\n"), 5, `source "a": rate_limit.rps: must be a number, got "fast"`},
		{"bool", src("    insecure: maybe\n"), 5, `source "a": insecure: must be true or false, got "maybe"`},
		{"duration", "store:\n  retention: forever\n", 2, `store.retention: "forever" is not a duration (like 500ms, 10s, 5m, 24h, 30d or 1w, or a number of seconds)`},
		{"duration given a mapping", "store:\n  retention: {h: 1}\n", 2, `store.retention: must be a duration like`},
		{"negative duration", sink("    timeout: -5s\n"), 5, `sink "s": timeout: "-5s" is not a duration`},
		{"nested duration", sink("    retry: {initial: soon}\n"), 5, `sink "s": retry.initial: "soon" is not a duration`},
		{"list", src("    secrets: nope\n"), 5, `source "a": secrets: must be a list of text, got "nope"`},
		{"list entry", src("    secrets: [a, [b]]\n"), 5, `source "a": secrets[1]: must be text, got a list`},
		{"map", "console:\n  listen: 127.0.0.1:1\n  users: [admin]\n", 3, `console.users: must be a mapping of keys to text, got a list`},
		{"struct", src("    rate_limit: 5\n"), 5, `source "a": rate_limit: must be a mapping (burst, rps), got 5`},
		{"text given a mapping", "server:\n  listen: {host: x}\n", 2, `server.listen: must be text, got a mapping`},
		{"section given text", "server: big\n", 1, `server: must be a mapping (listen, max_body_bytes, tls_cert, tls_key), got "big"`},
		{"list section given a mapping", "sources: {a: 1}\n", 1, `sources: must be a list of mappings, got a mapping`},
		{"sink's common key", sink("    concurrency: four\n"), 5, `sink "s": concurrency: must be a whole number, got "four"`},
		{"sink's own key", sink("    tls: yes\n"), 5, `sink "s": tls: must be a mapping (ca_file), got "yes"`},
		{"rule key", "rules:\n  - name: r\n    when: 'true'\n    stop: perhaps\n    actions: [{sink: s}]\n", 4, `rule "r": stop: must be true or false, got "perhaps"`},
		{"rule without a name", "rules:\n  - when: 'true'\n    stop: perhaps\n", 3, `rule 1: stop: must be true or false, got "perhaps"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path, ps := problemsOf(t, c.text)
			var at []Problem
			for _, p := range ps {
				if p.Line == c.line {
					at = append(at, p)
				}
			}
			if len(at) != 1 || !strings.Contains(at[0].Msg, c.want) {
				t.Fatalf("want one problem at line %d containing %q; got:\n%v", c.line, c.want, ps)
			}
			for _, p := range ps {
				for _, raw := range []string{"cannot unmarshal", "!!", "bridge.", "[]", "int64", "float64", "tlsconf"} {
					if strings.Contains(p.Msg, raw) {
						t.Errorf("problem %q shows Go's or yaml's words (%s)", p, raw)
					}
				}
				if !strings.HasPrefix(p.String(), path+":") {
					t.Errorf("problem %q does not start with FILE", p)
				}
			}
		})
	}
}

// TestLoadTypeProblemsDoNotCascade checks that a key that could not be
// read is reported once: not again by Validate, for the value it was left
// with or for a key whose absence it explains.
func TestLoadTypeProblemsDoNotCascade(t *testing.T) {
	for _, c := range []struct{ name, text, want string }{
		{"rps left at 0", "sources:\n  - {name: a, vendor: antly, insecure: true, rate_limit: {rps: fast, burst: 2}}\n", "rate_limit.rps: must be a number"},
		{"rate_limit not a mapping", "sources:\n  - {name: a, vendor: antly, insecure: true, rate_limit: 5}\n", "rate_limit: must be a mapping"},
		{"secrets unreadable", "sources:\n  - name: a\n    vendor: antly\n    secrets: nope\n", "secrets: must be a list"},
		{"name unreadable", "sources:\n  - name: [a]\n    vendor: antly\n    insecure: true\n", "name: must be text"},
		{"sink type unreadable", "sinks:\n  - name: s\n    type: [fake]\n", "type: must be text"},
		{"listen unreadable", "server:\n  listen: [a]\n", "server.listen: must be text"},
		{"max_body_bytes unreadable", "server:\n  max_body_bytes: {a: 1}\n", "server.max_body_bytes: must be a whole number"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, ps := problemsOf(t, c.text)
			if len(ps) != 1 || !strings.Contains(ps[0].Msg, c.want) {
				t.Errorf("want exactly one problem containing %q; got:\n%v", c.want, ps)
			}
		})
	}
}

// TestLoadTypeProblemFromEnvironment checks that a value from ${VAR} is
// never quoted in a type problem: it may be a secret.
func TestLoadTypeProblemFromEnvironment(t *testing.T) {
	const secret = "s3cr3t-value"
	t.Setenv("BRIDGE_TEST_SECRET", secret)
	for _, text := range []string{
		"server:\n  max_body_bytes: ${BRIDGE_TEST_SECRET}\n",
		"store:\n  retention: ${BRIDGE_TEST_SECRET}\n",
		"sources:\n  - {name: a, vendor: antly, insecure: true, rate_limit: {rps: '${BRIDGE_TEST_SECRET}', burst: 1}}\n",
		"sources:\n  - name: a\n    vendor: antly\n    insecure: ${BRIDGE_TEST_SECRET}\n",
	} {
		_, ps := problemsOf(t, text)
		if strings.Contains(ps.Error(), secret) || !strings.Contains(ps.Error(), "(the value from the environment)") {
			t.Errorf("%q:\n%v\nwant the value replaced by (the value from the environment)", text, ps)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "+5s": 5 * time.Second, "500ms": 500 * time.Millisecond, "1h30m": 90 * time.Minute, "1.5h": 90 * time.Minute,
		"30d": 30 * 24 * time.Hour, "1w": 7 * 24 * time.Hour, "1w2d3h": (9*24 + 3) * time.Hour, "1.5d": 36 * time.Hour,
		"2d12h30m": (60*time.Hour + 30*time.Minute), ".5w": 84 * time.Hour, "10µs": 10 * time.Microsecond,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1s", "-1d", "30", "d", "1x", "30 days", "1d 2h", "1y", "99999999w", "15300w", "15250w1w"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

// TestLoadDurations checks the units of durations in the file: Go's, d and
// w as Prometheus has them, combined, and seconds.
func TestLoadDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30d": 30 * 24 * time.Hour, "1w": 7 * 24 * time.Hour, "1w2d3h": (9*24 + 3) * time.Hour, "720h": 720 * time.Hour, "90": 90 * time.Second,
	} {
		cfg, err := Load(writeConfig(t, "store:\n  retention: "+in+"\n"), fakeTypes())
		if err != nil || cfg.Store.Retention.D() != want {
			t.Errorf("retention: %s: %v, %v; want %v", in, cfg.Store.Retention, err, want)
		}
	}
}

// TestLoadSuggestsKeys checks that an unknown key near a known one is
// offered it, and that others are not offered a far-fetched one.
func TestLoadSuggestsKeys(t *testing.T) {
	for _, c := range []struct {
		name, text string
		line       int
		want       string
	}{
		{"top level", "sink: []\n", 1, `unknown key "sink": did you mean sinks? (known: console, rules, server, sinks, sources, store)`},
		{"missing letter", "sorces: []\n", 1, `unknown key "sorces": did you mean sources?`},
		{"case", "server:\n  Listen: \":1\"\n", 2, `unknown key "Listen": did you mean listen?`},
		{"prefix", "server:\n  max_body: 5\n", 2, `unknown key "max_body": did you mean max_body_bytes?`},
		{"nested", "sinks:\n  - name: s\n    type: fake\n    url: http://x\n    retry: {intial: 1s}\n", 5, `unknown key "intial": did you mean initial?`},
		{"a sink's common key among its own", "sinks:\n  - name: s\n    type: fake\n    url: http://x\n    timout: 1s\n", 5, `unknown key "timout": did you mean timeout? (known: concurrency, name, retry, timeout, tls, token, type, url)`},
		{"source key", "sources:\n  - name: a\n    vendor: antly\n    sekret: x\n", 4, `unknown key "sekret": did you mean secret?`},
		{"rule key", "rules:\n  - name: r\n    wen: 'true'\n", 3, `unknown key "wen": did you mean when?`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, ps := problemsOf(t, c.text)
			for _, p := range ps {
				if p.Line == c.line && strings.Contains(p.Msg, c.want) {
					return
				}
			}
			t.Errorf("no problem at line %d containing %q; got:\n%v", c.line, c.want, ps)
		})
	}
	for _, key := range []string{"zz_typo", "colour", "x"} {
		_, ps := problemsOf(t, "server:\n  "+key+": 1\n")
		if strings.Contains(ps.Error(), "did you mean") {
			t.Errorf("%s is offered a key: %v", key, ps)
		}
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"tls_cert", "tls_key", "listen", "max_body_bytes", "sinks", "sources"}
	for key, want := range map[string]string{
		"sink": "sinks", "sinkz": "sinks", "SOURCES": "sources", "tls_ket": "tls_key", "max_bytes": "", "tls": "", "lisen": "listen", "tls_": "tls_cert or tls_key",
	} {
		if got := suggest(key, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestLoadRulesUnread checks that a rule's when or actions that could not
// be read is one problem, and that the rule says so for package rules,
// which would otherwise add "when is required".
func TestLoadRulesUnread(t *testing.T) {
	path := writeConfig(t, "rules:\n  - name: r\n    when: [x]\n    actions: 5\n")
	cfg, err := Load(path, fakeTypes())
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 2 || ps[0].Msg != `rule "r": when: must be text, got a list` || ps[1].Msg != `rule "r": actions: must be a list of actions, got 5` {
		t.Fatalf("got:\n%v", err)
	}
	if r := cfg.Rules[0]; !r.Unread("when") || !r.Unread("actions") || r.Unread("name") {
		t.Errorf("Unread: when %v, actions %v, name %v; want true, true, false", r.Unread("when"), r.Unread("actions"), r.Unread("name"))
	}
}

func TestLoadSuggestsSinkType(t *testing.T) {
	_, ps := problemsOf(t, "sinks:\n  - name: s\n    type: fak\n")
	if len(ps) != 1 || ps[0].Msg != `sink "s": unknown type "fak": did you mean fake? (one of fake)` {
		t.Errorf("got:\n%v", ps)
	}
}

// TestLoadMisspeltSinksDoesNotCascade checks that a misspelt sinks:
// section is one problem where it is, and one that the rules' sinks are
// not defined, not one per action.
func TestLoadMisspeltSinksDoesNotCascade(t *testing.T) {
	text := "sink:\n  - name: out\n    type: fake\n    url: http://x\nrules:\n" +
		"  - {name: a, when: 'true', actions: [{sink: out}, {sink: other}]}\n" +
		"  - {name: b, when: 'true', actions: [{sink: out}]}\n"
	path := writeConfig(t, text)
	cfg, err := Load(path, fakeTypes())
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Load: %v", err)
	}
	want := Problems{
		{File: path, Line: 1, Msg: `unknown key "sink": did you mean sinks? (known: console, rules, server, sinks, sources, store)`},
		{File: path, Line: 5, Msg: `rules: the actions send to other, out, but there is no sinks section to define them (is "sink" at line 1 meant to be sinks?)`},
	}
	if ps.Error() != want.Error() {
		t.Errorf("got:\n%v\nwant:\n%v", ps, want)
	}
	if !cfg.SinksUnread {
		t.Error("SinksUnread is not set: package rules would report every action's sink as unknown")
	}
	if cfg, _ := Load(writeConfig(t, goodConfig), fakeTypes()); cfg.SinksUnread {
		t.Error("SinksUnread set for a config with sinks")
	}
}

// TestLoadRefusesWhatServeRefuses checks that what serve could not start
// with is a problem at its line: a listen address that is not host:port,
// and server TLS files that are missing or not a certificate and its key.
func TestLoadRefusesWhatServeRefuses(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCertPair(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, text string
		line       int
		want       string
	}{
		{"port only", "server:\n  listen: 8080\n", 2, `server: listen "8080" is not host:port: write "127.0.0.1:8080" (this machine only) or ":8080" (every interface)`},
		{"no port", "server:\n  listen: localhost\n", 2, `server: listen "localhost" is not host:port`},
		{"bad port", "server:\n  listen: \"127.0.0.1:http8\"\n", 2, `port "http8" is not a number from 0 to 65535`},
		{"missing cert", "server:\n  listen: \":1\"\n  tls_cert: nope.pem\n  tls_key: " + key + "\n", 3, "server: tls_cert: cannot read " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
		{"missing key", "server:\n  listen: \":1\"\n  tls_cert: " + cert + "\n  tls_key: nope.pem\n", 4, "server: tls_key: cannot read " + filepath.Join(dir, "nope.pem")},
		{"not a pair", "server:\n  listen: \":1\"\n  tls_cert: junk.pem\n  tls_key: key.pem\n", 3, "server: tls_cert and tls_key are not a PEM certificate and its private key"},
		{"a directory", "server:\n  listen: \":1\"\n  tls_cert: .\n  tls_key: key.pem\n", 3, "is a directory, not a file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "bridge.yaml")
			if err := os.WriteFile(path, []byte(c.text), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, fakeTypes())
			var ps Problems
			if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Line != c.line || !strings.Contains(ps[0].Msg, c.want) {
				t.Errorf("want one problem at line %d containing %q; got:\n%v", c.line, c.want, err)
			}
		})
	}
	path := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(path, []byte("server:\n  listen: \"127.0.0.1:8443\"\n  tls_cert: cert.pem\n  tls_key: key.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := Load(path, fakeTypes()); err != nil || cfg.Server.TLSCert != cert {
		t.Errorf("a good pair, relative to the config file: %v, %+v", err, cfg)
	}
}

// writeCertPair writes a self-signed certificate and its key into dir.
func writeCertPair(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bridge test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}
