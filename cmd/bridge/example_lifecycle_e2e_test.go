package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/sinks/jira/jirafake"
	"bridge/sinks/slack/slackfake"
)

// The example config's own secrets, as TestExampleLifecycleE2E sets them
// through the variables rules.example.yaml reads.
const (
	lifecycleSASecret = "lifecycle-secureagentics-secret"
	lifecycleAGToken  = "lifecycle-agility-token"
)

// lifecycleAuth signs payloads for the example config's sources, as the
// vendors do.
var lifecycleAuth = map[string]bridge.ClientAuth{
	"secureagentics": {Vendor: "secureagentics", Secret: lifecycleSASecret},
	"agility":        {Vendor: "agility", Token: lifecycleAGToken},
}

// writeExampleConfig copies rules.example.yaml into dir, so its store and
// archive live there, with its Slack sink pointed at slackAPI and every
// reopen_within of 24h replaced by reopenWithin. The rest (addresses,
// credentials) the example reads from the environment.
func writeExampleConfig(t *testing.T, dir, slackAPI, reopenWithin string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "rules.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	replace := func(old, new string, n int) {
		t.Helper()
		if got := strings.Count(text, old); got != n {
			t.Fatalf("rules.example.yaml holds %q %d times, want %d", old, got, n)
		}
		text = strings.ReplaceAll(text, old, new)
	}
	slackToken := "    token: ${SLACK_BOT_TOKEN:-example-slack-token}\n"
	replace(slackToken, slackToken+"    api_url: "+slackAPI+"\n", 1)
	replace("reopen_within: 24h\n", "reopen_within: "+reopenWithin+"\n", 2)
	path := filepath.Join(dir, "rules.example.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// postLifecycle posts examples/DIR/FILE (see example) to the example
// config's source, signed as its vendor signs, and fails unless it is
// accepted.
func postLifecycle(t *testing.T, addr, source, file, id string, edit func(map[string]any)) {
	t.Helper()
	short := map[string]string{"secureagentics": "sa", "agility": "ag"}[source]
	pl := example(t, short, file, id, edit)
	req, err := http.NewRequest("POST", "http://"+addr+"/webhooks/"+source, bytes.NewReader(pl.body))
	if err != nil {
		t.Fatal(err)
	}
	lifecycleAuth[source].Apply(req, pl.body)
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("post %s/%s: %v", source, id, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("post %s/%s: %s", source, id, resp.Status)
	}
}

// planned lists "rule/sink" of every delivery of event, sorted.
func planned(t *testing.T, cfg, event string) []string {
	t.Helper()
	var out []string
	for _, d := range listDeliveries(t, cfg) {
		if d.EventID == event {
			out = append(out, d.Rule+"/"+d.Sink)
		}
	}
	slices.Sort(out)
	return out
}

// wantPlanned fails unless event's deliveries are exactly want.
func wantPlanned(t *testing.T, cfg, event string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := planned(t, cfg, event); !slices.Equal(got, want) {
		t.Errorf("deliveries of %s: %v, want %v", event, got, want)
	}
}

// exampleStandIns starts the Jira Cloud stand-in (search lags a minute)
// and the Slack stand-in, closed when the test ends, points the variables
// rules.example.yaml reads at them (the bridge listens on addr), and
// writes the example config into dir (cfg) with reopen_within 24h.
func exampleStandIns(t *testing.T) (jiraSrv *jirafake.Server, slackSrv *slackfake.Server, addr, dir, cfg string) {
	t.Helper()
	jiraSrv = jirafake.New(jirafake.Options{Flavor: jirafake.Cloud, User: jiraUser, Token: jiraToken, SearchLag: time.Minute})
	t.Cleanup(jiraSrv.Close)
	slackSrv = slackFake()
	t.Cleanup(slackSrv.Close)
	addr = freePort(t)
	for k, v := range map[string]string{
		"BRIDGE_LISTEN": addr, "CONSOLE_LISTEN": freePort(t),
		"JIRA_URL": jiraSrv.URL, "JIRA_USER": jiraUser, "JIRA_TOKEN": jiraToken,
		"SLACK_BOT_TOKEN":       slackToken,
		"SECUREAGENTICS_SECRET": lifecycleSASecret, "AGILITY_TOKEN": lifecycleAGToken,
	} {
		t.Setenv(k, v)
	}
	dir = t.TempDir()
	return jiraSrv, slackSrv, addr, dir, writeExampleConfig(t, dir, slackSrv.APIURL(), "24h")
}

// TestExampleLifecycleE2E runs rules.example.yaml itself through `bridge
// serve` against the Jira Cloud and Slack stand-ins: only its addresses,
// credentials and (in the last step) reopen_within are changed.
// Secureagentics: an agent.error opens a ticket and posts its link to
// Slack; the agent's agent.registered resolves it; another error within
// reopen_within reopens the same ticket; one after that window opens a new
// ticket. AGILITY: a failing analysis opens a ticket per service key, a
// second failure of the key comments on it, a clean analysis resolves it.
func TestExampleLifecycleE2E(t *testing.T) {
	jiraSrv, slackSrv, addr, dir, cfg := exampleStandIns(t)
	if out, stderr, code := runCLI(t, "validate", "-c", cfg); code != 0 {
		t.Fatalf("validate: exit %d\n%s%s", code, out, stderr)
	}
	p := startBridge(t, cfg, addr)
	browse := func(key string) string { return jiraSrv.URL + "/browse/" + key }
	// slackLine waits for the Slack delivery of event and returns the
	// message it posted.
	slackLine := func(event string) slackfake.Message {
		t.Helper()
		d := waitDelivery(t, cfg, "secops-slack", event)
		wantDelivered(t, d)
		for _, m := range slackSrv.Messages() {
			if m.TS == d.Result {
				return m
			}
		}
		t.Fatalf("no Slack message with the ts %q of the delivery of %s: %+v", d.Result, event, slackSrv.Messages())
		return slackfake.Message{}
	}
	// wantLink fails unless the message links to the issue key.
	wantLink := func(m slackfake.Message, key string) {
		t.Helper()
		link := "<" + browse(key) + "|" + key + ">"
		if m.Channel != "C0SECOPS" || !strings.Contains(m.Text, link) || !strings.HasPrefix(m.Text, ":warning: Secureagentics agent error: ") {
			t.Errorf("Slack message in %s: %q, want one in #secops linking %s", m.Channel, m.Text, link)
		}
	}
	const agent = "agt_abc123" // data.agent_id of agent.error.json and agent.registered-again.json

	// An agent error opens a ticket for the agent, then Slack gets its link.
	postLifecycle(t, addr, "secureagentics", "agent.error.json", "lc-err-1", nil)
	d := waitDelivery(t, cfg, "ops-jira", "lc-err-1")
	wantDelivered(t, d)
	ticket := d.Result
	is, ok := jiraSrv.Issue(ticket)
	if !ok || is.StatusCategory != "new" || is.Project != "OPS" || is.IssueType != "Bug" ||
		is.Summary != "Secureagentics agent "+agent+" reports errors" ||
		!slices.Contains(is.Labels, dedupeLabel("secureagentics:agent:"+agent)) {
		t.Fatalf("after the first agent error: result %q, issues %+v", ticket, jiraSrv.Issues())
	}
	wantLink(slackLine("lc-err-1"), ticket)
	wantPlanned(t, cfg, "lc-err-1", "archive-everything/archive", "agent-errors-to-jira/ops-jira", "agent-errors-to-jira/secops-slack")

	// A registration of another agent resolves nothing.
	postLifecycle(t, addr, "secureagentics", "agent.registered.json", "lc-reg-other", nil)
	d = waitDelivery(t, cfg, "ops-jira", "lc-reg-other")
	wantDelivered(t, d)
	if is, _ := jiraSrv.Issue(ticket); d.Result != "" || is.StatusCategory != "new" {
		t.Fatalf("another agent's registration: result %q, the ticket %+v", d.Result, is)
	}

	// The agent registers again: its ticket is resolved, with a comment.
	postLifecycle(t, addr, "secureagentics", "agent.registered-again.json", "lc-reg-1", nil)
	d = waitDelivery(t, cfg, "ops-jira", "lc-reg-1")
	wantDelivered(t, d)
	is, _ = jiraSrv.Issue(ticket)
	if d.Result != ticket || is.StatusCategory != "done" || is.Status != jirafake.StatusDone ||
		strings.Join(is.Comments, "|") != "Agent "+agent+" registered again (event lc-reg-1)." {
		t.Fatalf("after the registration: result %q, the ticket %+v", d.Result, is)
	}
	wantPlanned(t, cfg, "lc-reg-1", "archive-everything/archive", "agent-registered-resolves-jira/ops-jira")

	// The agent errs again within reopen_within (24h): the same ticket is
	// reopened, with a comment saying so, and Slack links it again.
	postLifecycle(t, addr, "secureagentics", "agent.error.json", "lc-err-2", nil)
	d = waitDelivery(t, cfg, "ops-jira", "lc-err-2")
	wantDelivered(t, d)
	is, _ = jiraSrv.Issue(ticket)
	if d.Result != ticket || is.StatusCategory != "new" {
		t.Fatalf("the error within reopen_within: result %q (want %q), issues %+v", d.Result, ticket, jiraSrv.Issues())
	}
	if len(is.Comments) != 2 || !strings.HasPrefix(is.Comments[1], "Reopened: seen again within 24h of the resolution.") ||
		!strings.Contains(is.Comments[1], "tool_timeout: Tool call search_tickets timed out after 30s (event lc-err-2)") {
		t.Errorf("comments after the reopen: %q", is.Comments)
	}
	wantLink(slackLine("lc-err-2"), ticket)

	// AGILITY: a failing analysis opens a ticket for its service key.
	postLifecycle(t, addr, "agility", "analysis_failed.json", "lc-ag-1", nil)
	d = waitDelivery(t, cfg, "ops-jira", "lc-ag-1")
	wantDelivered(t, d)
	volte := d.Result
	is, ok = jiraSrv.Issue(volte)
	if !ok || volte == ticket || is.StatusCategory != "new" || is.Summary != "AGILITY volte: 2 failed predictions in myfile.pcap" ||
		!slices.Contains(is.Labels, dedupeLabel("agility:service:volte")) {
		t.Fatalf("after a failing volte analysis: result %q, issues %+v", volte, jiraSrv.Issues())
	}
	wantPlanned(t, cfg, "lc-ag-1", "archive-everything/archive", "agility-failures-to-jira/ops-jira")

	// Another failing analysis of the same key comments on that ticket.
	postLifecycle(t, addr, "agility", "analysis_failed.json", "lc-ag-2", func(m map[string]any) {
		setData("analysis_id", "lc-analysis-2")(m)
		setData("file_path", "second.pcap")(m)
	})
	d = waitDelivery(t, cfg, "ops-jira", "lc-ag-2")
	wantDelivered(t, d)
	is, _ = jiraSrv.Issue(volte)
	if d.Result != volte || len(jiraSrv.Issues()) != 2 || len(is.Comments) != 1 || !strings.Contains(is.Comments[0], "lc-analysis-2") {
		t.Fatalf("a second failing volte analysis: result %q (want %q), issues %+v", d.Result, volte, jiraSrv.Issues())
	}

	// A failing analysis of another key opens a ticket of its own.
	postLifecycle(t, addr, "agility", "analysis_failed.json", "lc-ag-ims", func(m map[string]any) {
		setData("analysis_id", "lc-analysis-ims")(m)
		setData("service_keys", "ims")(m)
	})
	d = waitDelivery(t, cfg, "ops-jira", "lc-ag-ims")
	wantDelivered(t, d)
	ims := d.Result
	if is, ok := jiraSrv.Issue(ims); !ok || ims == volte || ims == ticket || is.StatusCategory != "new" {
		t.Fatalf("a failing ims analysis: result %q, issues %+v", ims, jiraSrv.Issues())
	}

	// A clean analysis of volte resolves the volte ticket, and only it.
	postLifecycle(t, addr, "agility", "analysis_clean.json", "lc-ag-clean", nil)
	d = waitDelivery(t, cfg, "ops-jira", "lc-ag-clean")
	wantDelivered(t, d)
	is, _ = jiraSrv.Issue(volte)
	if d.Result != volte || is.StatusCategory != "done" || len(is.Comments) != 2 ||
		is.Comments[1] != "Analysis 3c8f1d62-94ae-4b57-a0e3-71b5c9d24f08 of myfile-rerun.pcap is clean: no failed predictions." {
		t.Fatalf("the clean volte analysis: result %q (want %q), the ticket %+v", d.Result, volte, is)
	}
	if is, _ := jiraSrv.Issue(ims); is.StatusCategory != "new" {
		t.Errorf("the clean volte analysis moved the ims ticket: %+v", is)
	}
	wantPlanned(t, cfg, "lc-ag-clean", "archive-everything/archive", "agility-clean-resolves-jira/ops-jira")

	// The agent's ticket is resolved again. Then a day passes: the bridge
	// has no clock to move, so the same store restarts with reopen_within
	// cut to a second, and that second passes.
	postLifecycle(t, addr, "secureagentics", "agent.registered-again.json", "lc-reg-2", nil)
	wantDelivered(t, waitDelivery(t, cfg, "ops-jira", "lc-reg-2"))
	if is, _ = jiraSrv.Issue(ticket); is.StatusCategory != "done" {
		t.Fatalf("after the second registration: %+v", is)
	}
	stopServe(t, p)
	const window = time.Second
	writeExampleConfig(t, dir, slackSrv.APIURL(), window.String())
	startBridge(t, cfg, addr)
	for _, key := range []string{ticket, volte} {
		is, _ := jiraSrv.Issue(key)
		time.Sleep(time.Until(is.Resolved.Add(window + 500*time.Millisecond)))
	}

	// An agent error after the window: a new ticket, linked from Slack; the
	// old one stays Done.
	postLifecycle(t, addr, "secureagentics", "agent.error.json", "lc-err-3", nil)
	d = waitDelivery(t, cfg, "ops-jira", "lc-err-3")
	wantDelivered(t, d)
	second := d.Result
	if is, ok := jiraSrv.Issue(second); !ok || second == ticket || is.StatusCategory != "new" ||
		!slices.Contains(is.Labels, dedupeLabel("secureagentics:agent:"+agent)) {
		t.Fatalf("the error after the window: result %q, issues %+v", second, jiraSrv.Issues())
	}
	if is, _ := jiraSrv.Issue(ticket); is.StatusCategory != "done" || len(is.Comments) != 3 {
		t.Errorf("the old ticket after the window: %+v", is)
	}
	wantLink(slackLine("lc-err-3"), second)

	// A volte failure after the window: a new ticket too.
	postLifecycle(t, addr, "agility", "analysis_failed.json", "lc-ag-3", setData("analysis_id", "lc-analysis-3"))
	d = waitDelivery(t, cfg, "ops-jira", "lc-ag-3")
	wantDelivered(t, d)
	if is, ok := jiraSrv.Issue(d.Result); !ok || d.Result == volte || slices.Contains([]string{ticket, ims, second}, d.Result) || is.StatusCategory != "new" {
		t.Fatalf("the volte failure after the window: result %q, issues %+v", d.Result, jiraSrv.Issues())
	}

	if n := jiraSrv.Count(jirafake.RouteCreate); n != 5 {
		t.Errorf("%d creates sent, want 5 (agent twice, volte twice, ims)", n)
	}
	if n := jiraSrv.Count(jirafake.RouteDoTransition); n != 4 {
		t.Errorf("%d transitions sent, want 4 (agent: resolve, reopen, resolve; volte: resolve)", n)
	}
	if n := len(slackSrv.Messages()); n != 3 {
		t.Errorf("%d Slack messages, want 3 (one per agent error): %+v", n, slackSrv.Messages())
	}
	for _, d := range listDeliveries(t, cfg) {
		if d.Sink == "splunk" {
			t.Errorf("delivery to Splunk of %s: no event here is high or critical", d.EventID)
		}
	}
}
