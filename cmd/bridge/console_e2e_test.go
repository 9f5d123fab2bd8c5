package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"bridge/bridge/store/postgres/pgtest"
	"bridge/console/browsertest"
)

const (
	consoleUser     = "ops"
	consolePassword = "e2e console password"
)

// consoleStores are the store sections the console's end-to-end test runs
// with: SQLite, and PostgreSQL when BRIDGE_TEST_POSTGRES is set.
func consoleStores() []struct {
	name string
	yaml func(t *testing.T) string
} {
	return []struct {
		name string
		yaml func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "store:\n  path: data/bridge.db\n  sync: normal\n" }},
		{"postgres", func(t *testing.T) string {
			return fmt.Sprintf("store:\n  postgres: %q\n  lease: 5s\n", pgtest.TestDatabase(t))
		}},
	}
}

// failingCollector is an HTTP collector that refuses everything until it is
// told to take it.
type failingCollector struct {
	ok       atomic.Bool
	received atomic.Int64
}

func (c *failingCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	if !c.ok.Load() {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"index security does not exist"}`)
		return
	}
	c.received.Add(1)
	io.WriteString(w, `{"ok":true}`)
}

func consoleConfigText(t *testing.T, store, addr, consoleAddr, collectorURL string) string {
	hash, err := bcrypt.GenerateFromPassword([]byte(consolePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`server:
  listen: %q
%sconsole:
  listen: %q
  users:
    %s: '%s'
%ssinks:
  - name: archive
    type: file
    path: out/events.jsonl
  - name: collector
    type: http
    url: %s
    retry: {initial: 100ms, max_interval: 1s, max_age: 1m}
rules:
  - name: archive-all
    when: 'true'
    actions:
      - sink: archive
  - name: violations-to-collector
    when: type == "policy.violated"
    actions:
      - sink: collector
`, addr, store, consoleAddr, consoleUser, hash, e2eSources(), collectorURL)
}

// TestConsoleE2E runs `bridge serve` with a console and uses it in
// chromium: sign in, find the failed delivery on the overview, open its
// event, replay it once the collector is fixed and see it delivered; try a
// payload (nothing stored); every page screenshotted, none with a console
// error. The API's objects are those of `bridge events --json` and
// `bridge deliveries --json`.
func TestConsoleE2E(t *testing.T) {
	for _, st := range consoleStores() {
		t.Run(st.name, func(t *testing.T) {
			store := st.yaml(t) // skips without PostgreSQL, before starting chromium
			b := browsertest.New(t)
			col := &failingCollector{}
			colSrv := httptest.NewServer(col)
			defer colSrv.Close()
			dir := t.TempDir()
			addr, consoleAddr := freePort(t), freePort(t)
			cfg := filepath.Join(dir, "bridge.yaml")
			if err := os.WriteFile(cfg, []byte(consoleConfigText(t, store, addr, consoleAddr, colSrv.URL)), 0o600); err != nil {
				t.Fatal(err)
			}
			p := startBridge(t, cfg, addr)
			waitLog(t, p, "console serving")
			base := "http://" + consoleAddr

			body := []byte(`{"id":"evt_console_1","type":"policy.violated","timestamp":"2024-01-15T11:02:47Z","data":{"agent_id":"agt_1","details":"Agent uploaded a file to a paste site","alert_id":"alrt_9"}}`)
			if status, ans, err := post(http.DefaultClient, addr, payload{source: "sa", body: body}); err != nil || status != 200 {
				t.Fatalf("post: %d %v %v", status, ans, err)
			}
			failedID := waitFailed(t, cfg, "collector")

			// The API and the CLI agree on events and deliveries.
			apiAgrees(t, base, cfg)

			b.Login(consoleUser, consolePassword)
			if got := b.Open(base + "/"); got != 200 {
				t.Fatalf("overview: %d", got)
			}
			if txt := b.Text("body"); !strings.Contains(txt, "Latest failures") || !strings.Contains(txt, "index security does not exist") {
				t.Fatalf("the overview shows no failure:\n%s", txt)
			}
			b.Screenshot(st.name + "-overview")
			b.NoProblems("overview")

			// The failure's event.
			if got := b.Click(`section table a.ev`); got != 200 {
				t.Fatalf("event: %d", got)
			}
			if loc := b.Location(); loc != base+"/events/sa/evt_console_1" {
				t.Fatalf("the failure leads to %s", loc)
			}
			row := fmt.Sprintf("#delivery-%d", failedID)
			if txt := b.Text(row); !strings.Contains(txt, "failed") || !strings.Contains(txt, "index security does not exist") {
				t.Fatalf("the failed delivery shows %q", txt)
			}
			b.Screenshot(st.name + "-event-failed")
			b.NoProblems("event")

			// Fix the collector, replay, and see it delivered.
			col.ok.Store(true)
			if got := b.Click(row + ` button.btn-replay`); got != 200 {
				t.Fatalf("replay: %d", got)
			}
			if txt := b.Text(".flash"); !strings.Contains(txt, "Replayed 1 delivery") {
				t.Errorf("after the replay: %q", txt)
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				b.Open(base + "/events/sa/evt_console_1")
				if strings.Contains(b.Text(row), "delivered") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the replayed delivery is not delivered: %q\n%s", b.Text(row), p.logs.String())
				}
				time.Sleep(200 * time.Millisecond)
			}
			if col.received.Load() != 1 {
				t.Errorf("the collector received %d events, want 1", col.received.Load())
			}
			b.Screenshot(st.name + "-event-delivered")
			b.NoProblems("event delivered")

			for _, page := range []string{"/events", "/deliveries", "/deliveries?status=failed", "/rules"} {
				if got := b.Open(base + page); got != 200 {
					t.Errorf("%s: %d", page, got)
				}
				b.Screenshot(st.name + strings.NewReplacer("/", "-", "?", "-", "=", "-").Replace(page))
				b.NoProblems(page)
			}

			// Try a payload: the verdicts show; nothing is stored or sent.
			before := eventCount(t, cfg)
			b.Open(base + "/try")
			b.SetValue(`select[name=source]`, "sa")
			b.SetValue(`textarea[name=payload]`, `{"id":"evt_try","type":"policy.violated","data":{"agent_id":"agt_2"}}`)
			if got := b.Click(`form.try button`); got != 200 {
				t.Fatalf("try: %d", got)
			}
			if txt := b.Text("table.verdicts"); !strings.Contains(txt, "violations-to-collector") || !strings.Contains(txt, "MATCH") {
				t.Errorf("try shows %q", txt)
			}
			b.Screenshot(st.name + "-try")
			b.NoProblems("try")
			time.Sleep(300 * time.Millisecond)
			if after := eventCount(t, cfg); after != before {
				t.Errorf("try stored an event: %d events, were %d", after, before)
			}
			if col.received.Load() != 1 {
				t.Errorf("try sent to the collector")
			}
		})
	}
}

// waitFailed waits until sink's delivery failed and returns its id.
func waitFailed(t *testing.T, cfg, sink string) int64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, stderr, code := runCLI(t, "deliveries", "-c", cfg, "--status", "failed", "--sink", sink, "--json")
		if code != 0 {
			t.Fatalf("deliveries: %s", stderr)
		}
		if line, _, _ := strings.Cut(out, "\n"); line != "" {
			var d struct{ ID int64 }
			json.Unmarshal([]byte(line), &d)
			return d.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed delivery to %s", sink)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func eventCount(t *testing.T, cfg string) int {
	t.Helper()
	out, stderr, code := runCLI(t, "events", "-c", cfg, "--limit", "0", "--json")
	if code != 0 {
		t.Fatalf("events: %s", stderr)
	}
	return strings.Count(out, "\n")
}

// apiAgrees compares the API's lists with the CLI's --json lines.
func apiAgrees(t *testing.T, base, cfg string) {
	t.Helper()
	for _, c := range []struct{ api, key string }{
		{"/api/v1/events", "events"},
		{"/api/v1/deliveries", "deliveries"},
	} {
		req, _ := http.NewRequest("GET", base+c.api, nil)
		req.SetBasicAuth(consoleUser, consolePassword)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var list map[string][]map[string]any
		err = json.NewDecoder(res.Body).Decode(&list)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %d %v", c.api, res.StatusCode, err)
		}
		out, stderr, code := runCLI(t, c.key, "-c", cfg, "--json")
		if code != 0 {
			t.Fatalf("bridge %s: %s", c.key, stderr)
		}
		var cli []map[string]any
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			cli = append(cli, m)
		}
		if len(cli) == 0 || !reflect.DeepEqual(list[c.key], cli) {
			t.Errorf("%s and `bridge %s --json` differ:\nAPI: %v\nCLI: %v", c.api, c.key, list[c.key], cli)
		}
	}
	// Without the password: 401.
	res, err := http.Get(base + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Errorf("the API without a password: %d", res.StatusCode)
	}
}

// TestConsoleRefused: a console other machines can reach needs users, and
// not the example password; validate says so, serve refuses to start.
func TestConsoleRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name, console string) string {
		path := filepath.Join(dir, name)
		text := fmt.Sprintf("server:\n  listen: \"127.0.0.1:%s\"\nstore:\n  path: data/bridge.db\n%s%s", strings.Split(freePort(t), ":")[1], console, e2eSources())
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	open := write("open.yaml", "console:\n  listen: \"0.0.0.0:18081\"\n")
	_, stderr, code := runCLI(t, "validate", "-c", open)
	if code != 1 || !strings.Contains(stderr, "open.yaml:6: console: listen \"0.0.0.0:18081\" is reachable from other machines, and no users are set") {
		t.Errorf("validate: exit %d, %q", code, stderr)
	}
	_, stderr, code = runCLI(t, "serve", "-c", open)
	if code != 1 || !strings.Contains(stderr, "no users are set") {
		t.Errorf("serve: exit %d, %q", code, stderr)
	}
	badHash := write("badhash.yaml", "console:\n  listen: \"127.0.0.1:18081\"\n  users:\n    admin: not-a-hash\n")
	_, stderr, code = runCLI(t, "validate", "-c", badHash)
	if code != 1 || !strings.Contains(stderr, "badhash.yaml:8: console: users: admin: not a bcrypt hash") || strings.Contains(stderr, "not-a-hash") {
		t.Errorf("validate of a bad hash: exit %d, %q", code, stderr)
	}
	example := write("example.yaml", "console:\n  listen: \"0.0.0.0:18081\"\n  users:\n    admin: '"+exampleHash(t)+"'\n")
	out, stderr, code := runCLI(t, "validate", "-c", example)
	if code != 0 || !strings.Contains(stderr, "warning: serve will refuse this config") || !strings.Contains(stderr, "example password") {
		t.Errorf("validate of the example password: exit %d, %q %q", code, out, stderr)
	}
	_, stderr, code = runCLI(t, "serve", "-c", example)
	if code != 1 || !strings.Contains(stderr, `console user "admin" has the example password`) {
		t.Errorf("serve with the example password off loopback: exit %d, %q", code, stderr)
	}
}

// exampleHash is the example config's console hash.
func exampleHash(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "rules.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "${CONSOLE_ADMIN_HASH:-")
	if !ok {
		t.Fatal("rules.example.yaml has no CONSOLE_ADMIN_HASH default")
	}
	h, _, _ := strings.Cut(rest, "}")
	if bcrypt.CompareHashAndPassword([]byte(h), []byte(exampleConsolePassword)) != nil {
		t.Fatalf("the example hash %q is not of %q", h, exampleConsolePassword)
	}
	return h
}

func TestHashPassword(t *testing.T) {
	run := func(stdin string, args ...string) (string, string, int) {
		cmd := exec.Command(binPath, append([]string{"hash-password"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return out.String(), errb.String(), code
	}
	for _, in := range []string{"s3cret pass\n", "s3cret pass", "s3cret pass\r\n"} {
		out, stderr, code := run(in, "--cost", "4")
		h := strings.TrimSpace(out)
		if code != 0 || bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret pass")) != nil {
			t.Errorf("hash-password of %q: exit %d, %q %q", in, code, out, stderr)
		}
		if cost, _ := bcrypt.Cost([]byte(h)); cost != 4 {
			t.Errorf("cost %d, want 4", cost)
		}
	}
	out, _, code := run("x\n")
	if cost, _ := bcrypt.Cost([]byte(strings.TrimSpace(out))); code != 0 || cost != hashCost {
		t.Errorf("default cost: exit %d, cost %d, want %d", code, cost, hashCost)
	}
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"\n", nil, "the password is empty"},
		{strings.Repeat("x", 73), nil, "longer than 72 bytes"},
		{"pw", []string{"pw"}, "never from the command line"},
		{"pw", []string{"--cost", "3"}, "--cost must be from 4 to 31"},
	} {
		if _, stderr, code := run(c.stdin, c.args...); code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("hash-password %v: exit %d, %q, want %q", c.args, code, stderr, c.want)
		}
	}
}

// TestExampleConsole: the README's `serve -c rules.example.yaml --dry-run`
// starts the console with the example user, and nothing else to set up.
func TestExampleConsole(t *testing.T) {
	dir := t.TempDir()
	example, err := os.ReadFile(filepath.Join("..", "..", "rules.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "rules.example.yaml")
	if err := os.WriteFile(cfg, example, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, consoleAddr := freePort(t), freePort(t)
	logs := &syncBuffer{}
	cmd := newServeCmd(cfg, logs, "--dry-run")
	cmd.Env = append(os.Environ(), "BRIDGE_LISTEN="+addr, "CONSOLE_LISTEN="+consoleAddr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("bridge log:\n%s", logs.String())
		}
	}()
	get := func(user, pass string) int {
		req, _ := http.NewRequest("GET", "http://"+consoleAddr+"/", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	deadline := time.Now().Add(20 * time.Second)
	for get("admin", exampleConsolePassword) != 200 {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("serve exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the example console does not answer")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := get("", ""); got != 401 {
		t.Errorf("without a password: %d", got)
	}
	if got := get("admin", "wrong"); got != 401 {
		t.Errorf("with a wrong password: %d", got)
	}
}
