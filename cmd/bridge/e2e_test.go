package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"bridge/bridge"
)

// binPath is the bridge binary the end-to-end tests run, built once.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bridge-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "bridge")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build bridge:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a running `bridge serve`.
type proc struct {
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startBridge starts `bridge serve` on cfg and waits until it is ready.
func startBridge(t *testing.T, cfg, addr string, extra ...string) *proc {
	t.Helper()
	return startServe(t, http.DefaultClient, "http://"+addr, cfg, addr, extra...)
}

// startServe starts `bridge serve` on cfg, listening on addr, and waits
// until base + "/readyz" answers 200 through client.
func startServe(t *testing.T, client *http.Client, base, cfg, addr string, extra ...string) *proc {
	t.Helper()
	p := &proc{addr: addr, logs: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = newServeCmd(cfg, p.logs, extra...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("bridge log:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("bridge exited: %v\n%s", err, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge not ready:\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newServeCmd is `bridge serve -c cfg` at debug level, logging into logs.
func newServeCmd(cfg string, logs io.Writer, extra ...string) *exec.Cmd {
	cmd := exec.Command(binPath, append([]string{"serve", "-c", cfg, "--log-level", "debug"}, extra...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	return cmd
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil
}

// runCLI runs a bridge command and returns its output and exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

const e2eSecret = "e2e-secret-value"

// e2eConfig writes a config with the three vendors and a file sink that
// receives every event; extraRules are appended under rules:.
func e2eConfig(t *testing.T, dir, addr, extraRules string) string {
	t.Helper()
	path := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(path, []byte(e2eConfigText(addr, extraRules)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// e2eConfigText is the config e2eConfig writes.
func e2eConfigText(addr, extraRules string) string {
	return fmt.Sprintf(`server:
  listen: %q
store:
  path: data/bridge.db
  sync: full
%ssinks:
  - name: archive
    type: file
    path: out/events.jsonl
    concurrency: 2
rules:
  - name: archive-all
    when: 'true'
    actions:
      - sink: archive
%s`, addr, e2eSources(), extraRules)
}

// e2eSources is the sources: block of the test configs: the three vendors,
// authenticated as e2eAuth does.
func e2eSources() string {
	return fmt.Sprintf(`sources:
  - name: sa
    vendor: secureagentics
    secret: %s
  - name: ag
    vendor: agility
    token: %s
  - name: an
    vendor: antly
    token: %s
    token_header: X-Antly-Token
`, e2eSecret, e2eSecret, e2eSecret)
}

var e2eAuth = map[string]bridge.ClientAuth{
	"sa": {Vendor: "secureagentics", Secret: e2eSecret},
	"ag": {Vendor: "agility", Token: e2eSecret},
	"an": {Vendor: "antly", Token: e2eSecret, TokenHeader: "X-Antly-Token"},
}

// payload is one example payload made unique by n.
type payload struct {
	source string
	id     string // the event id the bridge will report
	body   []byte
}

// examplePayloads reads every example payload and makes count unique copies,
// cycling through them.
func examplePayloads(t *testing.T, count int) []payload {
	t.Helper()
	var base []payload
	for src, dir := range map[string]string{"sa": "secureagentics", "ag": "agility", "an": "antly"} {
		files, _ := filepath.Glob(filepath.Join("..", "..", "examples", dir, "*.json"))
		if len(files) == 0 {
			t.Fatalf("no example payloads for %s", dir)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			base = append(base, payload{source: src, body: b})
		}
	}
	out := make([]payload, 0, count)
	for i := 0; i < count; i++ {
		p := base[i%len(base)]
		var m map[string]any
		if err := json.Unmarshal(p.body, &m); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("e2e-%d", i)
		if p.source == "an" {
			data, _ := m["data"].(map[string]any)
			data["id"] = id // Antly has no event id: the body's hash is the id
		} else {
			m["id"] = id
		}
		b, _ := json.Marshal(m)
		out = append(out, payload{source: p.source, id: id, body: b})
	}
	return out
}

// post sends one payload signed as its vendor does.
func post(client *http.Client, addr string, p payload) (int, map[string]string, error) {
	req, err := http.NewRequest("POST", "http://"+addr+"/webhooks/"+p.source, bytes.NewReader(p.body))
	if err != nil {
		return 0, nil, err
	}
	e2eAuth[p.source].Apply(req, p.body)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var ans map[string]string
	json.NewDecoder(resp.Body).Decode(&ans)
	return resp.StatusCode, ans, nil
}

// postAllKilling posts the payloads at concurrency 8 and kills the bridge
// with SIGKILL after killAfter acknowledgements. It returns the event ids
// that were acknowledged (2xx).
func postAllKilling(t *testing.T, p *proc, payloads []payload, killAfter int) map[string]bool {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	var mu sync.Mutex
	acked := map[string]bool{}
	var n atomic.Int64
	var once sync.Once
	work := make(chan payload)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pl := range work {
				status, ans, err := post(client, p.addr, pl)
				if err != nil || status != 200 {
					continue // the bridge is gone, or refused: not acknowledged
				}
				mu.Lock()
				acked[ans["id"]] = true
				mu.Unlock()
				if n.Add(1) == int64(killAfter) {
					once.Do(func() { p.kill(t) })
				}
			}
		}()
	}
	for _, pl := range payloads {
		work <- pl
	}
	close(work)
	wg.Wait()
	once.Do(func() { p.kill(t) })
	return acked
}

// TestCrashLosesNothing is the durability guarantee: SIGKILL while events
// are being posted, restart, and every acknowledged event is stored exactly
// once and reaches the file sink at least once.
func TestCrashLosesNothing(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	cfg := e2eConfig(t, dir, addr, "")
	p := startBridge(t, cfg, addr)
	payloads := examplePayloads(t, 500)
	acked := postAllKilling(t, p, payloads, 250)
	if len(acked) < 250 {
		t.Fatalf("only %d acknowledged before the kill", len(acked))
	}

	p2 := startBridge(t, cfg, addr)
	// Every acknowledged event is stored exactly once.
	stored := storedEvents(t, cfg)
	t.Logf("stored %d events, %d acknowledged", len(stored), len(acked))
	byID := map[string]int{}
	for k, n := range stored {
		if n != 1 {
			t.Errorf("event %s stored %d times", k, n)
		}
		byID[k[strings.Index(k, "/")+1:]] += n
	}
	for id := range acked {
		if byID[id] != 1 {
			t.Errorf("acknowledged event %s stored %d times", id, byID[id])
		}
	}

	// A vendor retry of an acknowledged event is a duplicate.
	client := &http.Client{Timeout: 5 * time.Second}
	for _, pl := range payloads[:3] {
		if !acked[pl.id] {
			continue
		}
		status, ans, err := post(client, p2.addr, pl)
		if err != nil || status != 200 || ans["status"] != "duplicate" {
			t.Errorf("re-post of %s: %d %v %v", pl.id, status, ans, err)
		}
	}

	// Every acknowledged event reaches the file, at least once.
	file := filepath.Join(dir, "out", "events.jsonl")
	deadline := time.Now().Add(30 * time.Second)
	for {
		seen, lines := fileEvents(t, file)
		missing := 0
		for id := range acked {
			if seen[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			twice := 0
			for _, n := range seen {
				if n > 1 {
					twice++
				}
			}
			t.Logf("%d acknowledged of %d posted; file has %d lines, %d events written more than once", len(acked), len(payloads), lines, twice)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged events never reached the file", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _, _ := runCLI(t, "deliveries", "-c", cfg, "--status", "pending", "--json", "--limit", "0")
	deadline = time.Now().Add(10 * time.Second)
	for strings.TrimSpace(out) != "" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		out, _, _ = runCLI(t, "deliveries", "-c", cfg, "--status", "pending", "--json", "--limit", "0")
	}
	if strings.TrimSpace(out) != "" {
		t.Errorf("deliveries still pending:\n%s", out)
	}
}

// fileEvents counts the events per id in a file sink's output.
func fileEvents(t *testing.T, path string) (map[string]int, int) {
	t.Helper()
	seen := map[string]int{}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return seen, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct{ ID string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			// A crash may cut the last line short; a whole line is never bad.
			continue
		}
		seen[ev.ID]++
		lines++
	}
	return seen, lines
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := e2eConfig(t, dir, "127.0.0.1:0", "")
	out, stderr, code := runCLI(t, "validate", "-c", good)
	if code != 0 || !strings.Contains(out, "ok: 3 sources, 1 sinks, 1 rules") {
		t.Fatalf("validate good: %d %q %q", code, out, stderr)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`sources:
  - name: sa
    vendor: secureagentics
    secret: super-secret-value
    colour: blue
sinks:
  - name: archive
    type: file
rules:
  - name: r
    when: severity == 3
    actions:
      - sink: nowhere
`), 0o600)
	out, stderr, code = runCLI(t, "validate", "-c", bad)
	if code != 1 {
		t.Fatalf("validate bad: exit %d", code)
	}
	for _, want := range []string{bad + `:5: unknown key "colour"`, bad + ":11:", bad + ":13:"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("validate output lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr+out, "super-secret-value") {
		t.Errorf("validate printed a secret")
	}
}

// TestExampleConfig checks that the shipped example validates and that its
// rule tests pass.
func TestExampleConfig(t *testing.T) {
	cfg := filepath.Join("..", "..", "rules.example.yaml")
	if out, stderr, code := runCLI(t, "validate", "-c", cfg); code != 0 {
		t.Fatalf("validate rules.example.yaml: %s %s", out, stderr)
	}
	out, stderr, code := runCLI(t, "test", "-c", cfg, filepath.Join("..", "..", "examples", "rules_test.yaml"))
	if code != 0 || !strings.Contains(out, " passed, 0 failed") {
		t.Fatalf("rule tests: exit %d\n%s\n%s", code, out, stderr)
	}
}

func TestSendEventsDeliveriesReplay(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	cfg := e2eConfig(t, dir, addr, "")
	startBridge(t, cfg, addr)
	example := filepath.Join("..", "..", "examples", "secureagentics", "policy.violated.json")
	out, stderr, code := runCLI(t, "send", "-c", cfg, "--source", "sa", example)
	if code != 0 || !strings.Contains(out, "200 OK") || !strings.Contains(out, `"accepted"`) {
		t.Fatalf("send: %d %q %q", code, out, stderr)
	}
	out, _, code = runCLI(t, "send", "-c", cfg, "--source", "sa", example)
	if code != 0 || !strings.Contains(out, `"duplicate"`) {
		t.Fatalf("send again: %q", out)
	}
	out, _, code = runCLI(t, "send", "--url", "http://"+addr+"/webhooks/sa", "--vendor", "secureagentics", "--secret", "wrong", example)
	if code != 1 || !strings.Contains(out, "401") {
		t.Fatalf("send with a wrong secret: %d %q", code, out)
	}
	out, _, _ = runCLI(t, "events", "-c", cfg)
	if !strings.Contains(out, "policy.violated") || !strings.Contains(out, "SEVERITY") {
		t.Errorf("events table:\n%s", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _, _ = runCLI(t, "deliveries", "-c", cfg, "--json")
		if strings.Contains(out, `"status":"delivered"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var d map[string]any
	json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &d)
	for _, k := range []string{"id", "event_id", "rule", "sink", "status", "attempts", "last_error", "result"} {
		if _, ok := d[k]; !ok {
			t.Errorf("deliveries --json lacks %q: %v", k, d)
		}
	}
	_, stderr, code = runCLI(t, "replay", "-c", cfg, "999999")
	if code != 1 || !strings.Contains(stderr, "not failed") {
		t.Errorf("replay of an unknown id: %d %q", code, stderr)
	}
}

// TestReloadAndFailedDelivery edits the config while the bridge runs: a
// good edit is applied, a broken one refused. A rule whose sink writes to an
// impossible path fails, and replay after the fix delivers.
func TestReloadAndReplay(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	// The second file sink writes below a regular file: every write fails.
	os.WriteFile(filepath.Join(dir, "blocker"), []byte("x"), 0o600)
	rule := `  - name: to-blocked
    when: type == "agent.error"
    actions:
      - sink: blocked
`
	cfgText := func(path, extra string) string {
		return strings.Replace(e2eConfigText(addr, ""), "rules:\n", "  - name: blocked\n    type: file\n    path: "+path+"\n    retry: {initial: 1s, max_interval: 1s, max_age: 2s}\nrules:\n", 1) + extra
	}
	cfg := filepath.Join(dir, "bridge.yaml")
	os.WriteFile(cfg, []byte(cfgText("blocker/events.jsonl", "")), 0o600)
	p := startBridge(t, cfg, addr)

	// A good edit: add a rule. The file watcher applies it.
	os.WriteFile(cfg, []byte(cfgText("blocker/events.jsonl", rule)), 0o600)
	waitLog(t, p, "config reloaded")
	pl := payload{source: "sa", id: "err-1", body: []byte(`{"id":"err-1","type":"agent.error","data":{"agent_id":"a"}}`)}
	if status, ans, err := post(http.DefaultClient, addr, pl); err != nil || status != 200 {
		t.Fatalf("post: %d %v %v", status, ans, err)
	}
	var failedID string
	deadline := time.Now().Add(20 * time.Second)
	for failedID == "" {
		out, _, _ := runCLI(t, "deliveries", "-c", cfg, "--status", "failed", "--json")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var d struct {
				ID        int64  `json:"id"`
				Sink      string `json:"sink"`
				LastError string `json:"last_error"`
			}
			if json.Unmarshal([]byte(line), &d) == nil && d.Sink == "blocked" {
				if !strings.Contains(d.LastError, "not a directory") {
					t.Errorf("last_error %q lacks the cause", d.LastError)
				}
				failedID = fmt.Sprint(d.ID)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delivery to the broken sink never failed")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A broken edit is refused; the running config stays.
	os.WriteFile(cfg, []byte(cfgText("blocker/events.jsonl", rule)+"  - name: broken\n    when: nonsense ==\n"), 0o600)
	waitLog(t, p, "config reload refused")
	if m := scrape(t, addr); !strings.Contains(m, "bridge_config_last_reload_successful 0") {
		t.Errorf("reload metric not 0 after a refused reload")
	}
	// Fix the sink (SIGHUP this time), then replay.
	os.WriteFile(cfg, []byte(cfgText("fixed/events.jsonl", rule)), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLogCount(t, p, "config reloaded", 2)
	out, stderr, code := runCLI(t, "replay", "-c", cfg, failedID)
	if code != 0 || !strings.Contains(out, "replayed 1") {
		t.Fatalf("replay: %d %q %q", code, out, stderr)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		seen, _ := fileEvents(t, filepath.Join(dir, "fixed", "events.jsonl"))
		if seen["err-1"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replayed delivery never written")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if m := scrape(t, addr); !strings.Contains(m, "bridge_config_last_reload_successful 1") {
		t.Errorf("reload metric not back to 1")
	}
	// SIGTERM stops it cleanly.
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

func waitLog(t *testing.T, p *proc, s string) { waitLogCount(t, p, s, 1) }

func waitLogCount(t *testing.T, p *proc, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.logs.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q %d times", s, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
