package main

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bridge/sinks/jira"
	"bridge/sinks/jira/jirafake"
)

// lifecycleRules open a ticket per failing AGILITY analysis (reopening it
// within reopen_within of its resolution) and resolve it once a later
// analysis of the same key is clean.
func lifecycleRules(reopenWithin string) string {
	return `  - name: agility-failures-to-jira
    when: vendor == "agility" && data.count_prediction_failure > 0
    actions:
      - sink: ops-jira
        project: OPS
        issue_type: Bug
        summary: 'AGILITY: {{ .data.count_prediction_failure }} failed predictions in {{ .data.file_path }}'
        description: '{{ .title }} (analysis {{ .subject }})'
        dedupe: '{{ .source }}:{{ .subject }}'
        reopen_within: ` + reopenWithin + `
  - name: agility-clean-resolves
    when: vendor == "agility" && data.count_prediction_failure == 0
    actions:
      - sink: ops-jira
        project: OPS
        resolve: true
        dedupe: '{{ .source }}:{{ .subject }}'
        comment: 'Analysis {{ .subject }} is clean again.'
`
}

// startWithFault starts `bridge serve` that kills itself with SIGKILL at
// the jira sink's fault point (BRIDGE_TEST_FAULT).
func startWithFault(t *testing.T, cfg, addr, point string) *proc {
	t.Helper()
	t.Setenv(faultEnv, point) // for this one bridge only
	p := startBridge(t, cfg, addr)
	os.Unsetenv(faultEnv)
	return p
}

// wantFaultKill waits for p to die of the SIGKILL it sent itself at point.
func wantFaultKill(t *testing.T, p *proc, point string) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("bridge exited with %v, want a SIGKILL", err)
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("bridge ended with %v, want a SIGKILL", ee)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the bridge did not stop at %s:\n%s", point, p.logs.String())
	}
	if !strings.Contains(p.logs.String(), point) {
		t.Fatalf("the bridge died elsewhere than at %s:\n%s", point, p.logs.String())
	}
}

// clean is analysis_failed.json of the same analysis with no failures.
func clean(t *testing.T, id string) payload {
	return example(t, "ag", "analysis_failed.json", id, setData("count_prediction_failure", 0))
}

// TestJiraLifecycleE2E runs a ticket's life through `bridge serve` on a
// Jira Cloud stand-in whose search never shows anything (it lags an hour):
// a failing analysis opens a ticket, a clean one resolves it, a failing one
// within reopen_within reopens it, and one after that window opens a new
// ticket. The resolve and the reopen are each cut short by a SIGKILL (after
// the transition, and after the reopen was recorded) before the delivery's
// outcome is recorded: after the restart, each is delivered once, with the
// issue key, no second transition and no second comment.
func TestJiraLifecycleE2E(t *testing.T) {
	const within = 5 * time.Second
	fake := jirafake.New(jirafake.Options{Flavor: jirafake.Cloud, User: jiraUser, Token: jiraToken, SearchLag: time.Hour})
	defer fake.Close()
	addr := freePort(t)
	cfg := writeSinkConfig(t, addr, "", jiraSink(fake.URL, jiraUser), lifecycleRules(within.String()))
	if out, stderr, code := runCLI(t, "validate", "-c", cfg); code != 0 {
		t.Fatalf("validate: exit %d\n%s%s", code, out, stderr)
	}

	// A failing analysis opens a ticket.
	p := startBridge(t, cfg, addr)
	mustPost(t, addr, example(t, "ag", "analysis_failed.json", "lc-1", nil))
	d := waitDelivery(t, cfg, "ops-jira", "lc-1")
	wantDelivered(t, d)
	key := d.Result
	if is, ok := fake.Issue(key); !ok || is.StatusCategory != "new" {
		t.Fatalf("after the first failing analysis: result %q, issues %+v", key, fake.Issues())
	}
	p.kill(t)

	// A clean analysis of the same key resolves it; the bridge dies right
	// after Jira moved the issue, before the comment.
	p = startWithFault(t, cfg, addr, jira.FaultAfterTransition)
	mustPost(t, addr, clean(t, "lc-2"))
	wantFaultKill(t, p, jira.FaultAfterTransition)
	if is, _ := fake.Issue(key); is.StatusCategory != "done" || len(is.Comments) != 0 {
		t.Fatalf("at the kill: issue %+v, want Done without comments", is)
	}

	// After the restart the resolve is delivered: the comment once, no
	// second transition. This bridge dies once the next reopen is recorded.
	p = startWithFault(t, cfg, addr, jira.FaultAfterReopen)
	d = waitDelivery(t, cfg, "ops-jira", "lc-2")
	wantDelivered(t, d)
	if d.Result != key {
		t.Errorf("resolve: result %q, want %q", d.Result, key)
	}
	is, _ := fake.Issue(key)
	if is.StatusCategory != "done" || strings.Join(is.Comments, "|") != "Analysis "+analysisID+" is clean again." {
		t.Fatalf("after the resolve: %+v", is)
	}
	if n := fake.Count(jirafake.RouteDoTransition); n != 1 {
		t.Errorf("%d transitions sent for one resolve", n)
	}

	// A failing analysis within reopen_within reopens the ticket; the
	// bridge dies before the delivery is recorded.
	mustPost(t, addr, example(t, "ag", "analysis_failed.json", "lc-3", nil))
	wantFaultKill(t, p, jira.FaultAfterReopen)
	startBridge(t, cfg, addr)
	d = waitDelivery(t, cfg, "ops-jira", "lc-3")
	wantDelivered(t, d)
	is, _ = fake.Issue(key)
	if d.Result != key || is.StatusCategory != "new" || len(fake.Issues()) != 1 {
		t.Fatalf("reopen: result %q (want %q), issues %+v", d.Result, key, fake.Issues())
	}
	if len(is.Comments) != 2 || !strings.HasPrefix(is.Comments[1], "Reopened: seen again within 5s of the resolution.") {
		t.Errorf("comments after the reopen: %q", is.Comments)
	}
	if n := fake.Count(jirafake.RouteDoTransition); n != 2 {
		t.Errorf("%d transitions sent, want 2 (resolve, reopen)", n)
	}

	// Resolved again, and a failing analysis once the window has passed:
	// a new ticket.
	mustPost(t, addr, clean(t, "lc-4"))
	wantDelivered(t, waitDelivery(t, cfg, "ops-jira", "lc-4"))
	is, _ = fake.Issue(key)
	if is.StatusCategory != "done" {
		t.Fatalf("after the second resolve: %+v", is)
	}
	time.Sleep(time.Until(is.Resolved.Add(within + 500*time.Millisecond)))
	mustPost(t, addr, example(t, "ag", "analysis_failed.json", "lc-5", nil))
	d = waitDelivery(t, cfg, "ops-jira", "lc-5")
	wantDelivered(t, d)
	issues := fake.Issues()
	if len(issues) != 2 || d.Result != issues[1].Key || d.Result == key {
		t.Fatalf("after the window: result %q, issues %+v", d.Result, issues)
	}
	if is, _ := fake.Issue(key); is.StatusCategory != "done" || len(is.Comments) != 3 {
		t.Errorf("the old ticket: %+v", is)
	}
	second := d.Result

	// The new ticket resolves; another clean analysis finds nothing open:
	// delivered, with an empty result.
	mustPost(t, addr, clean(t, "lc-6"))
	if d = waitDelivery(t, cfg, "ops-jira", "lc-6"); d.Result != second {
		t.Fatalf("resolve of the new ticket: %+v", d)
	}
	mustPost(t, addr, clean(t, "lc-7"))
	d = waitDelivery(t, cfg, "ops-jira", "lc-7")
	wantDelivered(t, d)
	if d.Result != "" {
		t.Errorf("resolve with nothing open: result %q, want empty", d.Result)
	}
	if n := fake.Count(jirafake.RouteDoTransition); n != 4 {
		t.Errorf("%d transitions sent, want 4", n)
	}
	if n := fake.Count(jirafake.RouteCreate); n != 2 {
		t.Errorf("%d creates sent, want 2", n)
	}
}

// TestJiraLifecycleConfigE2E: validate refuses a resolve action without a
// dedupe key, with its line, and jira check reports the transitions the
// rules name: unknown ones as problems, the ones it has no issue to check
// them on as not checked.
func TestJiraLifecycleConfigE2E(t *testing.T) {
	fake := jirafake.New(jirafake.Options{Flavor: jirafake.DataCenter, User: jiraUser, Token: jiraToken})
	defer fake.Close()

	noDedupe := strings.Replace(lifecycleRules("72h"), "        resolve: true\n        dedupe: '{{ .source }}:{{ .subject }}'\n", "        resolve: true\n", 1)
	cfg := writeSinkConfig(t, "127.0.0.1:0", "", jiraSink(fake.URL, ""), noDedupe)
	out, stderr, code := runCLI(t, "validate", "-c", cfg)
	text := out + stderr
	if code != 1 || !strings.Contains(text, "resolve: a resolve action needs dedupe") {
		t.Fatalf("validate a resolve action without dedupe: exit %d\n%s", code, text)
	}
	b, _ := os.ReadFile(cfg)
	line := 0
	for i, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "resolve: true" {
			line = i + 1
		}
	}
	if want := cfg + ":" + strconv.Itoa(line) + ":"; !strings.Contains(text, want) {
		t.Errorf("validate does not point at line %d (%s):\n%s", line, want, text)
	}

	cfg = writeSinkConfig(t, "127.0.0.1:0", "", jiraSink(fake.URL, ""), lifecycleRules("72h"))
	out, stderr, code = runCLI(t, "jira", "check", "-c", cfg)
	if code != 0 || !strings.Contains(out, `transition "Done" (transition, which resolves tickets) not checked: there is no open Bug issue in OPS`) ||
		!strings.Contains(out, `transition "Reopen" (reopen_transition, which reopens tickets) not checked`) {
		t.Fatalf("jira check without issues: exit %d\n%s%s", code, out, stderr)
	}

	bad := strings.Replace(lifecycleRules("72h"), "        resolve: true\n", "        resolve: true\n        transition: Close\n", 1)
	addr := freePort(t)
	cfg = writeSinkConfig(t, addr, "", jiraSink(fake.URL, ""), bad)
	startBridge(t, cfg, addr)
	mustPost(t, addr, example(t, "ag", "analysis_failed.json", "cfg-1", nil))
	wantDelivered(t, waitDelivery(t, cfg, "ops-jira", "cfg-1"))
	out, stderr, code = runCLI(t, "jira", "check", "-c", cfg)
	if code != 1 || !strings.Contains(out, `Jira offers no transition "Close"`) || !strings.Contains(out, `"Done" (→ Done)`) {
		t.Fatalf("jira check with an unknown transition: exit %d\n%s%s", code, out, stderr)
	}
	// The delivery of a clean analysis fails at once with the names Jira offers.
	mustPost(t, addr, clean(t, "cfg-2"))
	d := waitDelivery(t, cfg, "ops-jira", "cfg-2")
	if d.Status != "failed" || d.Attempts != 1 || !strings.Contains(d.LastError, `Jira offers no transition "Close" from its status "To Do"`) {
		t.Fatalf("resolve through an unknown transition: %+v", d)
	}
}
