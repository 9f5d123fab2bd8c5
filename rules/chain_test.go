package rules

import (
	"encoding/json"
	"strings"
	"testing"
)

// chainRules is a rule whose Slack message runs after its Jira ticket and
// reads the ticket's key and link.
const chainRules = `
rules:
  - name: ticket-then-chat
    when: vendor == "secureagentics"
    actions:
      - sink: ops-jira
        id: ticket
        summary: '{{ .title }}'
        labels: ['{{ .severity }}']
      - sink: secops-slack
        after: ticket
        id: chat
        text: 'Opened <{{ .links.ticket }}|{{ .results.ticket }}> for {{ .subject }}{{ if .results.ticket }} (filed){{ end }}'
        thread_by: '{{ .data.agent_id }}'
      - sink: secops-slack
        after: chat
        text: 'reply to {{ .results.chat }} about {{ .results.ticket }}'
`

// chainCompileProblems are TestCompileProblems' cases of id and after:
// every refusal of validate, at its line.
var chainCompileProblems = []compileProblem{
	{"after names nothing", `
rules:
  - name: r
    when: 'true'
    actions:
      - sink: ops-jira
        id: ticket
        summary: s
      - sink: secops-slack
        after: tikcet
        text: t
`, 10, `rule "r": action 2: after: "tikcet" names no earlier action of the rule (ids: ticket; did you mean ticket?)`},
	{"after with no ids", `
rules:
  - name: r
    when: 'true'
    actions:
      - sink: ops-jira
        summary: s
      - sink: secops-slack
        after: ticket
        text: t
`, 9, `after: "ticket" names no earlier action of the rule (no action of the rule has an id)`},
	{"after names a later action", `
rules:
  - name: r
    when: 'true'
    actions:
      - sink: secops-slack
        after: ticket
        text: t
      - sink: ops-jira
        id: ticket
        summary: s
`, 7, `action 1: after: "ticket" is action 2, which comes later: an action runs after an earlier one`},
	{"cycle", `
rules:
  - name: r
    when: 'true'
    actions:
      - sink: secops-slack
        id: a
        after: b
        text: t
      - sink: ops-jira
        id: b
        after: a
        summary: s
`, 8, `action 1: after: "b" makes a cycle (action 1 → action 2 → action 1)`},
	{"after itself", `
rules:
  - name: r
    when: 'true'
    actions:
      - sink: ops-jira
        id: a
        after: a
        summary: s
`, 8, `after: "a" is this action's own id: an action cannot run after itself`},
	{"duplicate id", `
rules:
  - name: r
    when: 'true'
    actions:
      - sink: ops-jira
        id: a
        summary: s
      - sink: ops-jira
        id: a
        summary: s
`, 10, `action 2: id "a" is the id of action 1 already`},
	{"id not a name", `
rules:
  - name: r
    when: 'true'
    actions:
      - sink: ops-jira
        id: my-ticket
        summary: s
`, 7, `id: must be a name of letters, digits and _, not starting with a digit (templates read it as .results.NAME), got "my-ticket"`},
	{"results without after", `
rules:
  - name: r
    when: 'true'
    actions:
      - sink: ops-jira
        id: a
        summary: s
      - sink: secops-slack
        text: 'see {{ .results.a }}'
`, 10, `action 2 (sink secops-slack): field text: .results.a: only an action with after: can read .results`},
	{"links of an action it does not run after", `
rules:
  - name: r
    when: 'true'
    actions:
      - sink: ops-jira
        id: a
        summary: s
      - sink: ops-jira
        id: b
        summary: s
      - sink: secops-slack
        after: b
        text: '{{ if true }}{{ .links.a }}{{ end }}'
`, 14, `field text: .links.a: "a" is not an action this one runs after (it runs after b)`},
}

// TestChainEvaluate: a dependent is planned with its chain and its fields
// unrendered; RenderDeferred renders them with the results and links of
// the actions it runs after, as the pipeline does when it delivers it.
func TestChainEvaluate(t *testing.T) {
	set := mustCompile(t, chainRules)
	ev := loadEvent(t, "secureagentics_alert_triggered.json")
	res := set.Evaluate(ev)
	if len(res.Planned) != 3 {
		t.Fatalf("planned %d, want 3", len(res.Planned))
	}
	ticket, chat, reply := res.Planned[0], res.Planned[1], res.Planned[2]
	if ticket.ID != "ticket" || ticket.After != "" || ticket.Err != nil {
		t.Errorf("ticket: %+v", ticket)
	}
	if chat.ID != "chat" || chat.After != "ticket" || chat.AfterIndex != 0 || reply.After != "chat" || reply.AfterIndex != 1 {
		t.Errorf("chain: chat %q after %q (%d), reply after %q (%d)", chat.ID, chat.After, chat.AfterIndex, reply.After, reply.AfterIndex)
	}
	if !strings.Contains(string(chat.Action), "{{ .links.ticket }}") {
		t.Errorf("the dependent's stored fields are rendered already: %s", chat.Action)
	}
	got, err := RenderDeferred(chat.Action, ev, Chain{
		Results: map[string]string{"ticket": "OPS-7"},
		Links:   map[string]string{"ticket": "https://jira.example/browse/OPS-7"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(got, &fields); err != nil {
		t.Fatal(err)
	}
	want := "Opened <https://jira.example/browse/OPS-7|OPS-7> for " + ev.Subject + " (filed)"
	if fields["text"] != want || fields["thread_by"] != ev.Data["agent_id"] {
		t.Errorf("rendered %s; want text %q and thread_by %v", got, want, ev.Data["agent_id"])
	}
	if _, ok := fields["after"]; ok {
		t.Errorf("after is among the fields: %s", got)
	}
	// A result the delivery does not have renders empty, as a missing key.
	got, err = RenderDeferred(reply.Action, ev, Chain{Results: map[string]string{"chat": "C1/17.1"}})
	if err != nil || !strings.Contains(string(got), `"reply to C1/17.1 about "`) {
		t.Errorf("reply rendered %s, %v", got, err)
	}
}

// TestChainTemplateErrorFailsDependents: when the action a dependent runs
// after fails to render, the dependent is planned failed, saying so.
func TestChainTemplateErrorFailsDependents(t *testing.T) {
	set := mustCompile(t, `
rules:
  - name: r
    when: 'true'
    actions:
      - sink: ops-jira
        id: ticket
        summary: '{{ .data.count | trunc "x" }}'
      - sink: secops-slack
        after: ticket
        text: '{{ .results.ticket }}'
`)
	res := set.Evaluate(loadEvent(t, "secureagentics_alert_triggered.json"))
	if len(res.Planned) != 2 || res.Planned[0].Err == nil {
		t.Fatalf("planned %+v; want the first failing", res.Planned)
	}
	if err := res.Planned[1].Err; err == nil || !strings.Contains(err.Error(), `runs after action "ticket", which failed`) {
		t.Errorf("dependent: %v", err)
	}
	if len(res.Planned[1].Action) == 0 {
		t.Error("the failed dependent keeps no fields to render once its action is replayed")
	}
}

// TestChainExplain: Explain renders a dependent with placeholders, or with
// what the rule test gives.
func TestChainExplain(t *testing.T) {
	set := mustCompile(t, chainRules)
	ev := loadEvent(t, "secureagentics_alert_triggered.json")
	acts := set.Explain(ev)[0].Actions
	if got := acts[1].Fields["text"]; got != "Opened <<links.ticket>|<results.ticket>> for "+ev.Subject+" (filed)" {
		t.Errorf("placeholders: %v", got)
	}
	acts = set.ExplainWith(ev, Chain{Results: map[string]string{"ticket": "OPS-1", "chat": "C/1"}})[0].Actions
	if got := acts[2].Fields["text"]; got != "reply to C/1 about OPS-1" {
		t.Errorf("given results: %v", got)
	}
	if acts[0].Err != nil || acts[1].Err != nil {
		t.Errorf("errors: %v %v", acts[0].Err, acts[1].Err)
	}
}
