package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bridge/sinks/jira/jirafake"
	"bridge/sinks/slack/slackfake"
	"bridge/sinks/splunk/hecfake"
	"bridge/sinks/syslog/syslogfake"
)

// The end-to-end tests of the sinks: `bridge serve` runs on a config whose
// sinks point at stand-ins started by the test, signed example payloads are
// posted to it, and the stand-ins' final state and `bridge deliveries` are
// checked.

// fastRetry keeps failing deliveries short-lived in these tests.
const fastRetry = "{initial: 100ms, max_interval: 200ms, max_age: 3s}"

// sinkConfigText is a config with the three e2e sources (so post and
// e2eAuth work), the given sinks and rules. antly is appended to the
// Antly source (indented by four spaces).
func sinkConfigText(addr, antly, sinks, rules string) string {
	return fmt.Sprintf(`server:
  listen: %q
store:
  path: data/bridge.db
  sync: normal
%s%ssinks:
%srules:
%s`, addr, e2eSources(), antly, sinks, rules)
}

// writeSinkConfig writes a config (see sinkConfigText) into a new temporary
// directory and returns its path.
func writeSinkConfig(t *testing.T, addr, antly, sinks, rules string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, []byte(sinkConfigText(addr, antly, sinks, rules)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// example reads examples/DIR/FILE, sets its event id (for Antly data.id,
// as the event id is then the body's hash: use mustPost's answer), lets edit
// change the rest, and returns it as a payload of source.
func example(t *testing.T, source, file, id string, edit func(m map[string]any)) payload {
	t.Helper()
	dirs := map[string]string{"sa": "secureagentics", "ag": "agility", "an": "antly"}
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", dirs[source], file))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if source == "an" {
		m["data"].(map[string]any)["id"] = id
	} else {
		m["id"] = id
	}
	if edit != nil {
		edit(m)
	}
	b, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return payload{source: source, id: id, body: b}
}

// setData returns an edit that sets data[key] = value.
func setData(key string, value any) func(map[string]any) {
	return func(m map[string]any) { m["data"].(map[string]any)[key] = value }
}

// mustPost posts a payload, fails unless it is accepted, and returns the
// event id the bridge reports (for Antly, a hash of the body).
func mustPost(t *testing.T, addr string, pl payload) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	status, ans, err := post(client, addr, pl)
	if err != nil || status != 200 || ans["status"] != "accepted" {
		t.Fatalf("post %s/%s: %d %v %v", pl.source, pl.id, status, ans, err)
	}
	return ans["id"]
}

// delivery is one line of `bridge deliveries --json`.
type delivery struct {
	ID        json.Number `json:"id"`
	EventID   string      `json:"event_id"`
	Rule      string      `json:"rule"`
	Sink      string      `json:"sink"`
	Status    string      `json:"status"`
	Attempts  int         `json:"attempts"`
	LastError string      `json:"last_error"`
	Result    string      `json:"result"`
}

// listDeliveries runs `bridge deliveries -c cfg --json --limit 0`.
func listDeliveries(t *testing.T, cfg string) []delivery {
	t.Helper()
	out, stderr, code := runCLI(t, "deliveries", "-c", cfg, "--json", "--limit", "0")
	if code != 0 {
		t.Fatalf("deliveries: exit %d: %s", code, stderr)
	}
	var ds []delivery
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var d delivery
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("deliveries --json line %q: %v", line, err)
		}
		ds = append(ds, d)
	}
	return ds
}

// waitDelivery waits until the delivery of event to sink is no longer
// pending and returns it.
func waitDelivery(t *testing.T, cfg, sink, event string) delivery {
	t.Helper()
	var last []delivery
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		last = listDeliveries(t, cfg)
		for _, d := range last {
			if d.Sink == sink && d.EventID == event && d.Status != "pending" {
				return d
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the delivery of %s to %s never finished; deliveries: %+v", event, sink, last)
	return delivery{}
}

// wantDelivered fails unless d is delivered.
func wantDelivered(t *testing.T, d delivery) {
	t.Helper()
	if d.Status != "delivered" {
		t.Fatalf("delivery %s of %s to %s: status %s, last_error %q", d.ID, d.EventID, d.Sink, d.Status, d.LastError)
	}
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dedupeLabel(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "bridge-" + hex.EncodeToString(sum[:])[:12]
}

const (
	jiraUser  = "bot@example.com"
	jiraToken = "jira-e2e-token"
	// analysisID is data.analysis_id of examples/agility/analysis_failed.json.
	analysisID  = "9e4b7c21-0d5a-4f3e-b812-6a1f0c3d7e55"
	jiraSummary = "AGILITY: 2 failed predictions in myfile.pcap"
)

// jiraRule sends failing AGILITY analyses to the sink ops-jira; priority
// is set unless empty.
func jiraRule(priority string) string {
	r := `  - name: agility-failures-to-jira
    when: vendor == "agility" && data.count_prediction_failure > 0
    actions:
      - sink: ops-jira
        project: OPS
        issue_type: Bug
        summary: 'AGILITY: {{ .data.count_prediction_failure }} failed predictions in {{ .data.file_path }}'
        description: '{{ .title }} (analysis {{ .subject }})'
        labels: [agility, '{{ .severity }}']
        dedupe: '{{ .source }}:{{ .subject }}'
`
	if priority != "" {
		r += "        priority: " + priority + "\n"
	}
	return r
}

// jiraSink is the ops-jira sink on url; without user it is a Data Center
// sink with a personal access token.
func jiraSink(url, user string) string {
	s := "  - name: ops-jira\n    type: jira\n    url: " + url + "\n"
	if user != "" {
		s += "    user: " + user + "\n"
	}
	return s + "    token: " + jiraToken + "\n    project: OPS\n    retry: " + fastRetry + "\n"
}

func TestJiraE2E(t *testing.T) {
	t.Run("cloud dedupe across restart", func(t *testing.T) {
		// Search never shows a new issue here: only the bridge's own memory
		// of key to issue can prevent a second ticket.
		fake := jirafake.New(jirafake.Options{Flavor: jirafake.Cloud, User: jiraUser, Token: jiraToken, SearchLag: time.Hour})
		defer fake.Close()
		addr := freePort(t)
		cfg := writeSinkConfig(t, addr, "", jiraSink(fake.URL, jiraUser), jiraRule(""))
		p := startBridge(t, cfg, addr)

		mustPost(t, addr, example(t, "ag", "analysis_failed.json", "jira-1", nil))
		d := waitDelivery(t, cfg, "ops-jira", "jira-1")
		wantDelivered(t, d)
		issues := fake.Issues()
		if len(issues) != 1 {
			t.Fatalf("%d issues after the first event, want 1: %+v", len(issues), issues)
		}
		is := issues[0]
		if d.Result != is.Key {
			t.Errorf("delivery result %q, want the issue key %q", d.Result, is.Key)
		}
		if is.Project != "OPS" || is.IssueType != "Bug" || is.Summary != jiraSummary {
			t.Errorf("issue: project %q, type %q, summary %q", is.Project, is.IssueType, is.Summary)
		}
		if !strings.Contains(is.Description, "(analysis "+analysisID+")") {
			t.Errorf("description %q", is.Description)
		}
		wantLabels := []string{"agility", "high", dedupeLabel("ag:" + analysisID)}
		if strings.Join(is.Labels, ",") != strings.Join(wantLabels, ",") {
			t.Errorf("labels %v, want %v", is.Labels, wantLabels)
		}

		// The same analysis again (a new event id): a comment, not a ticket.
		mustPost(t, addr, example(t, "ag", "analysis_failed.json", "jira-2", nil))
		d = waitDelivery(t, cfg, "ops-jira", "jira-2")
		wantDelivered(t, d)
		if d.Result != is.Key {
			t.Errorf("repeat: result %q, want %q", d.Result, is.Key)
		}
		if n := len(fake.Issues()); n != 1 {
			t.Fatalf("%d issues after a repeat, want 1", n)
		}
		if got, _ := fake.Issue(is.Key); len(got.Comments) != 1 {
			t.Fatalf("%d comments after a repeat, want 1", len(got.Comments))
		}

		// kill -9, restart; search still lags: the store remembers the key.
		p.kill(t)
		startBridge(t, cfg, addr)
		mustPost(t, addr, example(t, "ag", "analysis_failed.json", "jira-3", nil))
		d = waitDelivery(t, cfg, "ops-jira", "jira-3")
		wantDelivered(t, d)
		if d.Result != is.Key {
			t.Errorf("after restart: result %q, want %q", d.Result, is.Key)
		}
		if n := len(fake.Issues()); n != 1 {
			t.Fatalf("%d issues after a restart, want 1", n)
		}
		if got, _ := fake.Issue(is.Key); len(got.Comments) != 2 {
			t.Errorf("%d comments after the restart, want 2", len(got.Comments))
		}
		if n := fake.Count(jirafake.RouteCreate); n != 1 {
			t.Errorf("%d creates sent, want 1", n)
		}

		// Once the ticket is Done, the next event of the key opens a new one.
		fake.SetStatus(is.Key, "Done", "done")
		mustPost(t, addr, example(t, "ag", "analysis_failed.json", "jira-4", nil))
		d = waitDelivery(t, cfg, "ops-jira", "jira-4")
		wantDelivered(t, d)
		issues = fake.Issues()
		if len(issues) != 2 || d.Result != issues[1].Key || d.Result == is.Key {
			t.Fatalf("after Done: result %q, issues %+v", d.Result, issues)
		}
		if got, _ := fake.Issue(is.Key); len(got.Comments) != 2 {
			t.Errorf("the Done issue got a comment: %d comments", len(got.Comments))
		}
	})

	t.Run("data center", func(t *testing.T) {
		fake := jirafake.New(jirafake.Options{Flavor: jirafake.DataCenter, Token: jiraToken})
		defer fake.Close()
		addr := freePort(t)
		cfg := writeSinkConfig(t, addr, "", jiraSink(fake.URL, ""), jiraRule("High"))
		startBridge(t, cfg, addr)
		mustPost(t, addr, example(t, "ag", "analysis_failed.json", "dc-1", nil))
		d := waitDelivery(t, cfg, "ops-jira", "dc-1")
		wantDelivered(t, d)
		issues := fake.Issues()
		if len(issues) != 1 || issues[0].Key != d.Result || issues[0].Summary != jiraSummary || issues[0].Priority != "High" {
			t.Fatalf("issues %+v, delivery result %q", issues, d.Result)
		}
	})

	// A bridge with a fresh store finds the open issue through Jira's search
	// (/search/jql on Cloud, /search on Data Center) and comments on it.
	for _, fl := range []struct {
		name   string
		flavor jirafake.Flavor
		user   string
		route  string
	}{{"cloud", jirafake.Cloud, jiraUser, jirafake.RouteSearchJQL}, {"data center", jirafake.DataCenter, "", jirafake.RouteSearch}} {
		t.Run("search finds the open issue/"+fl.name, func(t *testing.T) {
			fake := jirafake.New(jirafake.Options{Flavor: fl.flavor, User: jiraUser, Token: jiraToken})
			defer fake.Close()
			addr := freePort(t)
			cfg := writeSinkConfig(t, addr, "", jiraSink(fake.URL, fl.user), jiraRule(""))
			p := startBridge(t, cfg, addr)
			mustPost(t, addr, example(t, "ag", "analysis_failed.json", "s-1", nil))
			first := waitDelivery(t, cfg, "ops-jira", "s-1")
			wantDelivered(t, first)
			p.kill(t)

			cfg = writeSinkConfig(t, addr, "", jiraSink(fake.URL, fl.user), jiraRule(""))
			startBridge(t, cfg, addr)
			mustPost(t, addr, example(t, "ag", "analysis_failed.json", "s-2", nil))
			d := waitDelivery(t, cfg, "ops-jira", "s-2")
			wantDelivered(t, d)
			issues := fake.Issues()
			if len(issues) != 1 || d.Result != first.Result || len(issues[0].Comments) != 1 {
				t.Fatalf("a fresh store: result %q (first %q), issues %+v", d.Result, first.Result, issues)
			}
			if fake.Count(fl.route) == 0 {
				t.Errorf("no request to %s", fl.route)
			}
		})
	}

	// kill -9 while Jira holds the answer of a create it carried out: after
	// the restart, while search still hides the issue, no second ticket.
	t.Run("kill during a create", func(t *testing.T) {
		fake := jirafake.New(jirafake.Options{Flavor: jirafake.Cloud, User: jiraUser, Token: jiraToken, SearchLag: 2 * time.Second})
		defer fake.Close()
		fake.FailNext(jirafake.RouteCreate, 1, jirafake.Failure{Hang: true})
		addr := freePort(t)
		// The retry window outlasts search_lag, which outlasts Jira's lag.
		sink := strings.Replace(jiraSink(fake.URL, jiraUser), fastRetry, "{initial: 100ms, max_interval: 500ms, max_age: 1m}", 1) +
			"    search_lag: 4s\n"
		cfg := writeSinkConfig(t, addr, "", sink, jiraRule(""))
		p := startBridge(t, cfg, addr)
		mustPost(t, addr, example(t, "ag", "analysis_failed.json", "hang-1", nil))
		eventually(t, "the create", func() bool { return len(fake.Issues()) == 1 })
		p.kill(t)

		startBridge(t, cfg, addr)
		d := waitDelivery(t, cfg, "ops-jira", "hang-1")
		wantDelivered(t, d)
		issues := fake.Issues()
		if len(issues) != 1 {
			t.Fatalf("%d issues after a create lost to a crash, want 1: %+v", len(issues), issues)
		}
		if d.Result != issues[0].Key {
			t.Errorf("result %q, want %q", d.Result, issues[0].Key)
		}
	})

	t.Run("bad priority then replay", func(t *testing.T) {
		fake := jirafake.New(jirafake.Options{Flavor: jirafake.Cloud, User: jiraUser, Token: jiraToken})
		defer fake.Close()
		addr := freePort(t)
		cfg := writeSinkConfig(t, addr, "", jiraSink(fake.URL, jiraUser), jiraRule("Urgent"))
		startBridge(t, cfg, addr)
		mustPost(t, addr, example(t, "ag", "analysis_failed.json", "prio-1", nil))
		d := waitDelivery(t, cfg, "ops-jira", "prio-1")
		if d.Status != "failed" {
			t.Fatalf("delivery with an unknown priority: status %s, want failed", d.Status)
		}
		if !strings.Contains(d.LastError, "Priority name 'Urgent' is not valid") {
			t.Errorf("last_error %q lacks Jira's message", d.LastError)
		}
		if d.Attempts != 1 {
			t.Errorf("Jira's 400 was retried: %d attempts", d.Attempts)
		}
		if n := len(fake.Issues()); n != 0 {
			t.Fatalf("%d issues opened by a failed delivery", n)
		}

		fake.AddPriority("Urgent")
		out, stderr, code := runCLI(t, "replay", "-c", cfg, d.ID.String())
		if code != 0 || !strings.Contains(out, "replayed 1") {
			t.Fatalf("replay: exit %d %q %q", code, out, stderr)
		}
		var got delivery
		eventually(t, "the replayed delivery", func() bool {
			for _, x := range listDeliveries(t, cfg) {
				if x.ID == d.ID && x.Status == "delivered" {
					got = x
					return true
				}
			}
			return false
		})
		issues := fake.Issues()
		if len(issues) != 1 || issues[0].Key != got.Result || issues[0].Priority != "Urgent" {
			t.Fatalf("after replay: issues %+v, result %q", issues, got.Result)
		}
	})
}

func TestJiraCheckE2E(t *testing.T) {
	fake := jirafake.New(jirafake.Options{Flavor: jirafake.Cloud, User: jiraUser, Token: jiraToken})
	defer fake.Close()

	cfg := writeSinkConfig(t, "127.0.0.1:0", "", jiraSink(fake.URL, jiraUser), jiraRule("High"))
	out, stderr, code := runCLI(t, "jira", "check", "-c", cfg)
	if code != 0 || !strings.Contains(out, "all good") {
		t.Fatalf("jira check with everything present: exit %d\n%s\n%s", code, out, stderr)
	}

	missing := strings.Replace(jiraRule("Urgent"), "project: OPS", "project: NOPE", 1)
	cfg = writeSinkConfig(t, "127.0.0.1:0", "", jiraSink(fake.URL, jiraUser), missing)
	out, stderr, code = runCLI(t, "jira", "check", "-c", cfg)
	if code != 1 {
		t.Fatalf("jira check with a missing project: exit %d, want 1\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(out, "NOPE") {
		t.Errorf("jira check does not name the missing project:\n%s", out)
	}
	if strings.Contains(out, "all good") {
		t.Errorf("jira check says all good with problems:\n%s", out)
	}

	cfg = writeSinkConfig(t, "127.0.0.1:0", "", jiraSink(fake.URL, jiraUser), jiraRule("Urgent"))
	out, stderr, code = runCLI(t, "jira", "check", "-c", cfg)
	if code != 1 || !strings.Contains(out, "Urgent") {
		t.Fatalf("jira check with a missing priority: exit %d, want 1 naming Urgent\n%s\n%s", code, out, stderr)
	}
	if strings.Contains(out+stderr, jiraToken) {
		t.Errorf("jira check printed the token")
	}
}

const slackToken = "xoxb-e2e-token"

func slackFake() *slackfake.Server {
	return slackfake.New(slackfake.Options{
		Tokens:   []string{slackToken},
		Channels: []slackfake.Channel{{ID: "C0SECOPS", Name: "secops", Member: true}},
	})
}

func slackSink(fake *slackfake.Server) string {
	return "  - name: secops-slack\n    type: slack\n    token: " + slackToken + "\n    api_url: " + fake.APIURL() +
		"\n    rate_limit: {rps: 50, burst: 50}\n    retry: " + fastRetry + "\n"
}

func TestSlackE2E(t *testing.T) {
	fake := slackFake()
	defer fake.Close()
	addr := freePort(t)
	rules := `  - name: violations-to-slack
    when: type == "policy.violated"
    actions:
      - sink: secops-slack
        channel: '#secops'
        text: ':rotating_light: {{ .title }}'
        thread_by: '{{ .data.agent_id }}'
  - name: alerts-to-nowhere
    when: type == "alert.triggered"
    actions:
      - sink: secops-slack
        channel: '#nowhere'
        text: 'alert {{ .subject }}'
`
	cfg := writeSinkConfig(t, addr, "", slackSink(fake), rules)
	p := startBridge(t, cfg, addr)

	mustPost(t, addr, example(t, "sa", "policy.violated.json", "pv-1", nil))
	d := waitDelivery(t, cfg, "secops-slack", "pv-1")
	wantDelivered(t, d)
	msgs := fake.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages after one violation: %+v", len(msgs), msgs)
	}
	first := msgs[0]
	if first.Channel != "C0SECOPS" || first.ThreadTS != "" || !strings.HasPrefix(first.Text, ":rotating_light: ") {
		t.Errorf("first message: %+v", first)
	}
	var blocks []map[string]any
	if err := json.Unmarshal(first.Blocks, &blocks); err != nil || len(blocks) == 0 {
		t.Errorf("first message has no blocks: %s (%v)", first.Blocks, err)
	}
	if !bytes.Contains(first.Blocks, []byte("agt_abc123")) {
		t.Errorf("the blocks do not show the event: %s", first.Blocks)
	}
	if d.Result != first.TS {
		t.Errorf("delivery result %q, want the message ts %q", d.Result, first.TS)
	}

	// Same agent, new event: a reply in the first message's thread.
	mustPost(t, addr, example(t, "sa", "policy.violated.json", "pv-2", nil))
	wantDelivered(t, waitDelivery(t, cfg, "secops-slack", "pv-2"))
	// Another agent: a message of its own.
	mustPost(t, addr, example(t, "sa", "policy.violated.json", "pv-other", setData("agent_id", "agt_other")))
	wantDelivered(t, waitDelivery(t, cfg, "secops-slack", "pv-other"))

	// The thread survives kill -9.
	p.kill(t)
	startBridge(t, cfg, addr)
	mustPost(t, addr, example(t, "sa", "policy.violated.json", "pv-3", nil))
	wantDelivered(t, waitDelivery(t, cfg, "secops-slack", "pv-3"))

	msgs = fake.Messages()
	if len(msgs) != 4 {
		t.Fatalf("%d messages, want 4: %+v", len(msgs), msgs)
	}
	for i, want := range []string{first.TS, "", first.TS} {
		m := msgs[i+1]
		if m.ThreadTS != want {
			t.Errorf("message %d: thread_ts %q, want %q", i+2, m.ThreadTS, want)
		}
	}

	// An unknown channel fails at once with Slack's code.
	mustPost(t, addr, example(t, "sa", "alert.triggered.json", "alert-1", nil))
	d = waitDelivery(t, cfg, "secops-slack", "alert-1")
	if d.Status != "failed" || !strings.Contains(d.LastError, "channel_not_found") {
		t.Errorf("delivery to an unknown channel: %s %q", d.Status, d.LastError)
	}
	if d.Attempts != 1 {
		t.Errorf("channel_not_found was retried: %d attempts", d.Attempts)
	}
	if n := len(fake.Messages()); n != 4 {
		t.Errorf("%d messages after the failed one, want 4", n)
	}
}

func TestSlackCheckE2E(t *testing.T) {
	fake := slackFake()
	defer fake.Close()
	rule := func(channel string) string {
		return "  - name: r\n    when: 'true'\n    actions:\n      - sink: secops-slack\n        channel: '" + channel + "'\n        text: x\n"
	}
	cfg := writeSinkConfig(t, "127.0.0.1:0", "", slackSink(fake), rule("#secops"))
	out, stderr, code := runCLI(t, "slack", "check", "-c", cfg)
	if code != 0 || !strings.Contains(out, "all good") {
		t.Fatalf("slack check with a known channel: exit %d\n%s\n%s", code, out, stderr)
	}
	cfg = writeSinkConfig(t, "127.0.0.1:0", "", slackSink(fake), rule("#nowhere"))
	out, stderr, code = runCLI(t, "slack", "check", "-c", cfg)
	if code != 1 || !strings.Contains(out, "nowhere") {
		t.Fatalf("slack check with an unknown channel: exit %d, want 1 naming it\n%s\n%s", code, out, stderr)
	}
	if strings.Contains(out+stderr, slackToken) {
		t.Errorf("slack check printed the token")
	}
}

func TestSplunkE2E(t *testing.T) {
	const token = "hec-e2e-token"
	fake := hecfake.New(token, hecfake.AllowIndexes("security"))
	defer fake.Close()
	addr := freePort(t)
	sinks := fmt.Sprintf(`  - name: splunk
    type: splunk_hec
    url: %[1]s
    token: %[2]s
    index: security
    batch_wait: 50ms
    retry: %[3]s
  - name: splunk-bad
    type: splunk_hec
    url: %[1]s
    token: %[2]s
    index: other
    retry: %[3]s
`, fake.URL, token, fastRetry)
	rules := `  - name: sa-to-splunk
    when: vendor == "secureagentics"
    actions:
      - sink: splunk
  - name: ag-to-wrong-index
    when: vendor == "agility"
    actions:
      - sink: splunk-bad
`
	cfg := writeSinkConfig(t, addr, "", sinks, rules)
	startBridge(t, cfg, addr)

	files := map[string]string{"hec-1": "policy.violated.json", "hec-2": "alert.triggered.json", "hec-3": "agent.error.json", "hec-4": "agent.registered.json"}
	types := map[string]string{"hec-1": "policy.violated", "hec-2": "alert.triggered", "hec-3": "agent.error", "hec-4": "agent.registered"}
	for id, f := range files {
		mustPost(t, addr, example(t, "sa", f, id, nil))
	}
	for id := range files {
		wantDelivered(t, waitDelivery(t, cfg, "splunk", id))
	}
	envs := fake.Events()
	if len(envs) != len(files) {
		t.Fatalf("%d envelopes, want %d", len(envs), len(files))
	}
	for _, e := range envs {
		id := e.ID()
		if _, ok := files[id]; !ok {
			t.Errorf("envelope for unexpected event %q: %s", id, e.Raw)
			continue
		}
		if e.Source != "bridge:sa" || e.Index != "security" {
			t.Errorf("envelope %s: source %q index %q", id, e.Source, e.Index)
		}
		var ev struct {
			ID, Source, Vendor, Type, Severity, Title, Subject string
			Time                                               time.Time
			Data                                               map[string]any
		}
		if err := json.Unmarshal(e.Event, &ev); err != nil {
			t.Errorf("envelope %s: event %s: %v", id, e.Event, err)
			continue
		}
		if ev.Source != "sa" || ev.Vendor != "secureagentics" || ev.Type != types[id] || ev.Data == nil || ev.Title == "" {
			t.Errorf("envelope %s: event %s", id, e.Event)
		}
		if sec, err := e.Time.Float64(); err != nil || int64(sec) != ev.Time.Unix() {
			t.Errorf("envelope %s: time %s, event time %s", id, e.Time, ev.Time)
		}
	}
	for _, a := range fake.Authorizations() {
		if a != "Splunk "+token {
			t.Errorf("Authorization %q", a)
		}
	}

	// "Server is busy" with Retry-After: retried, then indexed once.
	fake.Script(hecfake.Busy("1"))
	mustPost(t, addr, example(t, "sa", "policy.violated.json", "hec-busy", nil))
	d := waitDelivery(t, cfg, "splunk", "hec-busy")
	wantDelivered(t, d)
	if d.Attempts != 2 {
		t.Errorf("busy then accepted: %d attempts, want 2", d.Attempts)
	}
	if ids := fake.EventIDs(); len(ids) != len(files)+1 || ids[len(ids)-1] != "hec-busy" {
		t.Errorf("event ids after a busy answer: %v", ids)
	}

	mustPost(t, addr, example(t, "ag", "analysis_failed.json", "hec-bad", nil))
	d = waitDelivery(t, cfg, "splunk-bad", "hec-bad")
	if d.Status != "failed" || !strings.Contains(d.LastError, "Incorrect index") {
		t.Errorf("delivery to a wrong index: %s %q", d.Status, d.LastError)
	}
	if d.Attempts != 1 {
		t.Errorf("a refused index was retried: %d attempts", d.Attempts)
	}
	if n := fake.Count(); n != len(files)+1 {
		t.Errorf("%d envelopes accepted after the refused one, want %d", n, len(files)+1)
	}
}

func TestSyslogE2E(t *testing.T) {
	jsonFake, err := syslogfake.Start("tcp", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer jsonFake.Close()
	cefFake, err := syslogfake.Start("tcp", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cefFake.Close()
	addr := freePort(t)
	sinks := fmt.Sprintf(`  - name: siem-json
    type: syslog
    network: tcp
    address: %s
    retry: %s
  - name: siem-cef
    type: syslog
    network: tcp
    address: %s
    format: cef
    retry: %s
`, jsonFake.Addr(), fastRetry, cefFake.Addr(), fastRetry)
	rules := `  - name: sa-to-siem
    when: vendor in ["secureagentics", "antly"]
    actions:
      - sink: siem-json
      - sink: siem-cef
`
	cfg := writeSinkConfig(t, addr, "", sinks, rules)
	startBridge(t, cfg, addr)

	events := []struct{ id, file, typ string }{
		{"sys-1", "policy.violated.json", "policy.violated"},
		{"sys-2", "agent.error.json", "agent.error"},
		{"sys-3", "agent.registered.json", "agent.registered"},
	}
	// severity: high 3, medium 4, info 6; CEF: high 8, medium 5, info 1.
	sev := map[string]uint8{"sys-1": 3, "sys-2": 4, "sys-3": 6}
	cefSev := map[string]string{"sys-1": "8", "sys-2": "5", "sys-3": "1"}
	for _, e := range events {
		mustPost(t, addr, example(t, "sa", e.file, e.id, nil))
	}
	// An Antly type longer than MSGID's 32 characters; Antly's event id is
	// the body's hash.
	longType := "profile.CustomerPreferenceSubscription:update"
	antlyID := mustPost(t, addr, example(t, "an", "profile.Customer-update.json", "cust-1", func(m map[string]any) { m["event"] = longType }))
	events = append(events, struct{ id, file, typ string }{antlyID, "", longType})
	sev[antlyID], cefSev[antlyID] = 6, "1"
	for _, e := range events {
		wantDelivered(t, waitDelivery(t, cfg, "siem-json", e.id))
		wantDelivered(t, waitDelivery(t, cfg, "siem-cef", e.id))
	}
	if errs := append(jsonFake.Errors(), cefFake.Errors()...); len(errs) > 0 {
		t.Fatalf("the receivers could not parse what they got: %v", errs)
	}

	// str returns a field; MSG may start with the UTF-8 BOM (RFC 5424's
	// MSG-UTF8), which is not part of the content.
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return strings.TrimPrefix(*p, "\ufeff")
	}
	msgs := jsonFake.Messages()
	if len(msgs) != len(events) {
		t.Fatalf("json receiver got %d messages, want %d", len(msgs), len(events))
	}
	byID := map[string]bool{}
	for _, m := range msgs {
		var ev struct{ ID, Source, Type string }
		if err := json.Unmarshal([]byte(str(m.Message)), &ev); err != nil {
			t.Errorf("MSG is not the event's JSON: %q", str(m.Message))
			continue
		}
		byID[ev.ID] = true
		wantMsgID := ev.Type
		if len(wantMsgID) > 32 {
			wantMsgID = wantMsgID[:32]
		}
		if str(m.Appname) != "bridge" || str(m.MsgID) != wantMsgID || (ev.Source != "sa" && ev.Source != "an") {
			t.Errorf("message %s: APP-NAME %q MSGID %q, event type %q", ev.ID, str(m.Appname), str(m.MsgID), ev.Type)
		}
		if m.Severity == nil || *m.Severity != sev[ev.ID] {
			t.Errorf("message %s: severity %v, want %d", ev.ID, m.Severity, sev[ev.ID])
		}
		if m.Version != 1 {
			t.Errorf("message %s: version %d", ev.ID, m.Version)
		}
	}
	for _, e := range events {
		if !byID[e.id] {
			t.Errorf("no syslog message for %s", e.id)
		}
	}

	msgs = cefFake.Messages()
	if len(msgs) != len(events) {
		t.Fatalf("cef receiver got %d messages, want %d", len(msgs), len(events))
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		line := str(m.Message)
		if !strings.HasPrefix(line, "CEF:0|Bridge|bridge|") {
			t.Errorf("CEF line %q", line)
			continue
		}
		f := strings.SplitN(line, "|", 8)
		if len(f) != 8 {
			t.Errorf("CEF line has %d fields: %q", len(f), line)
			continue
		}
		for _, e := range events {
			if f[4] == e.typ && strings.Contains(f[7], e.id) {
				seen[e.id] = true
				if f[6] != cefSev[e.id] {
					t.Errorf("CEF %s: severity %q, want %s", e.id, f[6], cefSev[e.id])
				}
			}
		}
		if str(m.Appname) != "bridge" || !strings.HasPrefix(f[4], str(m.MsgID)) || len(str(m.MsgID)) > 32 {
			t.Errorf("CEF message: APP-NAME %q MSGID %q", str(m.Appname), str(m.MsgID))
		}
	}
	for _, e := range events {
		if !seen[e.id] {
			t.Errorf("no CEF line for %s (type %s)", e.id, e.typ)
		}
	}
}

func TestHTTPSinkE2E(t *testing.T) {
	var (
		mu       sync.Mutex
		requests int
		objects  []map[string]any
		badAuth  int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("X-Collector-Token") != "collector-secret" {
			badAuth++
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"type":"agent.error"`)) {
			http.Error(w, "schema mismatch: agent.error is not accepted here", http.StatusUnprocessableEntity)
			return
		}
		requests++
		if requests == 1 {
			http.Error(w, "collector restarting", http.StatusInternalServerError)
			return
		}
		var obj map[string]any
		if err := json.Unmarshal(body, &obj); err != nil {
			http.Error(w, "not a JSON object", http.StatusBadRequest)
			return
		}
		objects = append(objects, obj)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	addr := freePort(t)
	sinks := `  - name: collector
    type: http
    url: ` + srv.URL + `/ingest
    headers: {X-Collector-Token: collector-secret}
    retry: {initial: 100ms, max_interval: 200ms, max_age: 5s}
`
	rules := "  - name: all-to-collector\n    when: 'true'\n    actions:\n      - sink: collector\n"
	cfg := writeSinkConfig(t, addr, "", sinks, rules)
	p := startBridge(t, cfg, addr)

	mustPost(t, addr, example(t, "sa", "policy.violated.json", "http-1", nil))
	d := waitDelivery(t, cfg, "collector", "http-1")
	wantDelivered(t, d)
	if d.Attempts != 2 {
		t.Errorf("attempts %d, want 2 (a 500, then a 200)", d.Attempts)
	}
	mu.Lock()
	bad, got := badAuth, append([]map[string]any(nil), objects...)
	mu.Unlock()
	if bad != 0 {
		t.Errorf("%d requests without the configured header", bad)
	}
	if len(got) != 1 || got[0]["id"] != "http-1" || got[0]["type"] != "policy.violated" || got[0]["source"] != "sa" {
		t.Fatalf("collector received %v", got)
	}
	for _, k := range []string{"id", "source", "vendor", "type", "time", "received", "severity", "title", "subject", "data"} {
		if _, ok := got[0][k]; !ok {
			t.Errorf("posted object lacks %q", k)
		}
	}

	// A 4xx other than 408 and 429 fails at once with the server's text.
	mustPost(t, addr, example(t, "sa", "agent.error.json", "http-2", nil))
	d = waitDelivery(t, cfg, "collector", "http-2")
	if d.Status != "failed" || d.Attempts != 1 || !strings.Contains(d.LastError, "schema mismatch") {
		t.Errorf("delivery refused with 422: %s, %d attempts, %q", d.Status, d.Attempts, d.LastError)
	}
	if strings.Contains(p.logs.String(), "collector-secret") {
		t.Errorf("the header's value appears in the log")
	}
}

func TestDryRunE2E(t *testing.T) {
	fake := jirafake.New(jirafake.Options{Flavor: jirafake.Cloud, User: jiraUser, Token: jiraToken})
	defer fake.Close()
	addr := freePort(t)
	cfg := writeSinkConfig(t, addr, "", jiraSink(fake.URL, jiraUser), jiraRule(""))
	p := startBridge(t, cfg, addr, "--dry-run")

	mustPost(t, addr, example(t, "ag", "analysis_failed.json", "dry-1", nil))
	d := waitDelivery(t, cfg, "ops-jira", "dry-1")
	wantDelivered(t, d)
	if d.Result != "dry-run" {
		t.Errorf("dry-run delivery result %q, want dry-run", d.Result)
	}
	if n := len(fake.Issues()); n != 0 {
		t.Errorf("--dry-run opened %d issues", n)
	}
	if n := fake.Count(jirafake.RouteCreate) + fake.Count(jirafake.RouteComment); n != 0 {
		t.Errorf("--dry-run sent %d creates or comments to Jira", n)
	}
	logs := p.logs.String()
	for _, want := range []string{jiraSummary, dedupeLabel("ag:" + analysisID)} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks the rendered request (%q):\n%s", want, logs)
		}
	}
	if strings.Contains(logs, jiraToken) {
		t.Errorf("the dry-run log shows the Jira token")
	}
}

func TestAntlySubscribeE2E(t *testing.T) {
	const oauth = "antly-oauth-e2e"
	var (
		mu     sync.Mutex
		bodies []string
		status = http.StatusOK
		answer = `{"ok":true}`
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/api/jql" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			http.Error(w, "bad request "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		bodies = append(bodies, string(bytes.TrimSpace(b)))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	defer srv.Close()
	antly := `    antly:
      api_url: ` + srv.URL + `/api/jql
      access_token: ` + oauth + `
      prefix: Bridge
      webhook_url: https://bridge.example.com/webhooks/an
      triggers: [profile.Customer:create, profile.Customer:update]
`
	cfg := writeSinkConfig(t, "127.0.0.1:0", antly, "  - name: archive\n    type: file\n    path: out/events.jsonl\n",
		"  - name: r\n    when: 'true'\n    actions:\n      - sink: archive\n")
	query := func(intent, trigger string) string {
		return `{"__meta__":{"namespace":"system.Webhook","schema":"controller","intent":"` + intent +
			`","authenticationClass":"oauth2","authenticationToken":"` + oauth + `"},"prefix":"Bridge","trigger":"` +
			trigger + `","webhookUrl":"https://bridge.example.com/webhooks/an"}`
	}

	for _, tc := range []struct{ verb, intent string }{{"subscribe", "subscribeToWebhook"}, {"unsubscribe", "unsubscribeFromWebhook"}} {
		t.Run(tc.verb, func(t *testing.T) {
			mu.Lock()
			bodies = nil
			mu.Unlock()
			out, stderr, code := runCLI(t, "antly", tc.verb, "-c", cfg, "--source", "an")
			if code != 0 {
				t.Fatalf("antly %s: exit %d\n%s\n%s", tc.verb, code, out, stderr)
			}
			mu.Lock()
			defer mu.Unlock()
			want := []string{query(tc.intent, "profile.Customer:create"), query(tc.intent, "profile.Customer:update")}
			if len(bodies) != len(want) {
				t.Fatalf("Antly got %d queries, want %d: %q", len(bodies), len(want), bodies)
			}
			for i := range want {
				if bodies[i] != want[i] {
					t.Errorf("query %d:\n got %s\nwant %s", i, bodies[i], want[i])
				}
			}
		})
	}

	t.Run("401", func(t *testing.T) {
		mu.Lock()
		status, answer = http.StatusUnauthorized, `{"error":"invalid_token","error_description":"The access token expired"}`
		mu.Unlock()
		out, stderr, code := runCLI(t, "antly", "subscribe", "-c", cfg, "--source", "an")
		if code != 1 {
			t.Fatalf("antly subscribe answered 401: exit %d, want 1\n%s\n%s", code, out, stderr)
		}
		if !strings.Contains(stderr, "The access token expired") || !strings.Contains(stderr, "401") {
			t.Errorf("stderr lacks Antly's answer:\n%s", stderr)
		}
		if strings.Contains(out+stderr, oauth) {
			t.Errorf("the access token was printed")
		}
	})
}
