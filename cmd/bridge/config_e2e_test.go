package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeRefusesWhatValidateRefuses checks that what serve cannot start
// with is a validate problem with its line (a listen address that is not
// host:port, a sink's TLS file that cannot be read), and that serve refuses
// the same config with the same lines before it creates anything: no data/
// directory, no database.
func TestServeRefusesWhatValidateRefuses(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bridge.yaml")
	text := `server:
  listen: 8080
store:
  path: data/bridge.db
sources:
  - {name: a, vendor: antly, token: t}
sinks:
  - name: siem
    type: syslog
    address: siem.example:6514
    network: tls
    tls: {ca_file: missing-ca.pem}
  - name: collector
    type: http
    url: https://collector.example/ingest
    tls: {cert_file: client.pem, key_file: client-key.pem}
  - name: splunk
    type: splunk_hec
    url: https://splunk.example:8088
    token: t
    tls: {ca_file: /nonexistent/ca.pem}
rules:
  - name: r
    when: 'true'
    actions:
      - sink: siem
`
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{
		cfg + `:2: server: listen "8080" is not host:port: write "127.0.0.1:8080" (this machine only) or ":8080" (every interface)`,
		cfg + `:12: sink "siem": tls.ca_file: cannot read ` + filepath.Join(dir, "missing-ca.pem") + `: no such file or directory`,
		cfg + `:16: sink "collector": tls.cert_file: cannot read ` + filepath.Join(dir, "client.pem"),
		cfg + `:16: sink "collector": tls.key_file: cannot read ` + filepath.Join(dir, "client-key.pem"),
		cfg + `:21: sink "splunk": tls.ca_file: cannot read /nonexistent/ca.pem: no such file or directory`,
	}
	out, stderr, code := runCLI(t, "validate", "-c", cfg)
	if code != 1 {
		t.Fatalf("validate: exit %d, want 1\n%s%s", code, out, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("validate does not say %q:\n%s", w, stderr)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "serve", "-c", cfg)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("serve: %v, want exit 1\n%s", err, b)
	}
	for _, w := range want {
		if !strings.Contains(string(b), w) {
			t.Errorf("serve does not say %q:\n%s", w, b)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "bridge.yaml" {
			t.Errorf("serve refused the config but created %s", e.Name())
		}
	}
}

// TestMisspeltSinksIsOneProblem checks that `sink:` for `sinks:` in the
// example config is reported where it is, with the right key, and once for
// the rules: not once per action as an unknown sink.
func TestMisspeltSinksIsOneProblem(t *testing.T) {
	example, err := os.ReadFile("../../rules.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(example), "\nsinks:\n", "\nsink:\n", 1)
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ps := problemsOf(loadConfig(path))
	if len(ps) != 2 || !strings.Contains(ps[0].Msg, `unknown key "sink": did you mean sinks?`) ||
		!strings.Contains(ps[1].Msg, "rules: the actions send to archive, ops-jira, secops-slack, splunk, but there is no sinks section to define them") {
		t.Errorf("got %d problems, want the unknown key and one for the rules:\n%v", len(ps), ps)
	}

	// A sink of an unknown type is that one problem; its actions are not
	// also "unknown sink".
	text = strings.Replace(string(example), "    type: jira\n", "    type: jria\n", 1)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ps = problemsOf(loadConfig(path))
	if len(ps) != 1 || !strings.Contains(ps[0].Msg, `sink "ops-jira": unknown type "jria"`) {
		t.Errorf("a sink type typo: got\n%v\nwant one problem", ps)
	}
}

// TestRuleTypeProblemsAreOne checks, through the loader and package
// rules together, that a rule's or an action's value of the wrong type is
// one problem naming the key: not a raw Go message, not followed by
// "when is required" or "sink is required".
func TestRuleTypeProblemsAreOne(t *testing.T) {
	rules := "  - name: r\n    when: [x]\n    actions:\n      - sink: archive\n" +
		"  - name: s\n    when: 'true'\n    actions:\n      - sink: [archive]\n" +
		"  - name: u\n    when: 'true'\n    actions:\n      - sink: ops-jira\n        summary: s\n        labels: ops\n        resolve: maybe\n        reopen_within: 3 days\n"
	sinks := "  - name: archive\n    type: file\n    path: out.jsonl\n  - name: ops-jira\n    type: jira\n    url: https://x.example\n    token: t\n"
	cfg := writeSinkConfig(t, "127.0.0.1:0", "", sinks, rules)
	got := problemsOf(loadConfig(cfg))
	want := []string{
		`rule "r": when: must be text, got a list`,
		`rule "s": action 1: sink: must be the name of a sink, got a list`,
		`rule "u": action 1 (sink ops-jira): labels: must be a list of text, got "ops"`,
		`rule "u": action 1 (sink ops-jira): resolve: must be true or false, got "maybe"`,
		`rule "u": action 1 (sink ops-jira): reopen_within: "3 days" is not a duration (like 500ms, 10s, 5m, 24h, 30d or 1w, or a number of seconds)`,
	}
	var msgs []string
	for _, p := range got {
		msgs = append(msgs, p.Msg)
	}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}
}

// TestCheckCommands checks what jira check and slack check say of a
// service that cannot be reached (not a bad token, said once), of --sink
// naming a sink of the other type or none, and the count of problems.
func TestCheckCommands(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	sinks := "  - name: ops-jira\n    type: jira\n    url: http://" + closed + "\n    token: t\n    project: OPS\n" +
		"  - name: secops-slack\n    type: slack\n    token: xoxb-t\n    api_url: http://" + closed + "/api/\n"
	rules := "  - name: r\n    when: 'true'\n    actions:\n      - sink: ops-jira\n        summary: s\n      - sink: secops-slack\n        channel: '#x'\n        text: t\n"
	cfg := writeSinkConfig(t, "127.0.0.1:0", "", sinks, rules)

	for typ, sink := range map[string]string{"jira": "ops-jira", "slack": "secops-slack"} {
		out, stderr, code := runCLI(t, typ, "check", "-c", cfg)
		want := "sink " + sink + ":\n  error: " + typ + ": cannot reach " + closed + ": connection refused\n1 problem found\n"
		if code != 1 || out != want {
			t.Errorf("%s check of a closed port: exit %d\n%s%s\nwant exit 1 and:\n%s", typ, code, out, stderr, want)
		}
	}
	for _, c := range []struct{ typ, sink, want string }{
		{"jira", "secops-slack", "bridge: jira check: sink secops-slack is a slack sink, not jira (bridge slack check checks it)\n"},
		{"slack", "ops-jira", "bridge: slack check: sink ops-jira is a jira sink, not slack (bridge jira check checks it)\n"},
		{"jira", "nope", "bridge: jira check: no sink nope in " + cfg + " (its jira sinks: ops-jira)\n"},
	} {
		out, stderr, code := runCLI(t, c.typ, "check", "-c", cfg, "--sink", c.sink)
		if code != 1 || stderr != c.want || out != "" {
			t.Errorf("%s check --sink %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", c.typ, c.sink, code, out, stderr, c.want)
		}
	}
	if got := countProblems(1); got != "1 problem found" {
		t.Errorf("countProblems(1) = %q", got)
	}
	if got := countProblems(3); got != "3 problems found" {
		t.Errorf("countProblems(3) = %q", got)
	}
}

// TestJSONLogDurations checks that serve --log-format json writes
// durations as text ("10s"), not as nanoseconds.
func TestJSONLogDurations(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	cfg := e2eConfig(t, dir, addr, "")
	p := startBridge(t, cfg, addr, "--log-format", "json")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	found := false
	sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			continue // the build's own output, if any
		}
		if g, ok := line["grace"]; ok {
			found = true
			if g != "10s" {
				t.Errorf("grace logged as %#v, want \"10s\": %s", g, sc.Text())
			}
		}
	}
	if !found {
		t.Fatalf("no log line with the shutdown grace:\n%s", p.logs.String())
	}
}

// TestWebhookMetrics checks that /metrics has every source × outcome and
// every sink × outcome at 0 before any traffic, and the acknowledgement
// time histogram counts each ack.
func TestWebhookMetrics(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	cfg := e2eConfig(t, dir, addr, "")
	startBridge(t, cfg, addr)
	m := scrape(t, addr)
	for _, want := range []string{
		`bridge_webhooks_total{outcome="accepted",source="sa"} 0`,
		`bridge_webhooks_total{outcome="error",source="an"} 0`,
		`bridge_webhooks_total{outcome="unauthorized",source="ag"} 0`,
		`bridge_deliveries_total{outcome="delivered",sink="archive"} 0`,
		`bridge_deliveries_total{outcome="failed",sink="archive"} 0`,
		`bridge_webhook_duration_seconds_bucket{source="sa",le="0.01"} 0`,
		`bridge_webhook_duration_seconds_count{source="ag"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	pl := examplePayloads(t, 1)[0]
	for range 2 { // accepted, then duplicate
		if status, ans, err := post(http.DefaultClient, addr, pl); err != nil || status != 200 {
			t.Fatalf("post: %d %v %v", status, ans, err)
		}
	}
	m = scrape(t, addr)
	if want := `bridge_webhook_duration_seconds_count{source="` + pl.source + `"} 2`; !strings.Contains(m, want) {
		t.Errorf("/metrics lacks %s after an accepted and a duplicate webhook:\n%s", want, grepLines(m, "bridge_webhook_duration_seconds_count"))
	}
}
