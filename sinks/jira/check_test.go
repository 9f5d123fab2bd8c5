package jira

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/sinks/jira/jirafake"
)

func TestCheck(t *testing.T) {
	custom := map[string]jirafake.CustomField{
		"customfield_10012": {Name: "Severity", Type: jirafake.FieldOption, Options: []string{"High", "Low"}},
		"customfield_10020": {Name: "Team", Type: jirafake.FieldText, Required: true},
	}
	good := &Action{Summary: "s", IssueType: "Bug", Priority: "High", Components: []string{"Backend"},
		Labels: []string{"x"}, Description: "d", Assignee: "abc",
		Fields: FieldValues{"customfield_10012": map[string]any{"value": "High"}, "customfield_10020": "secops"}}
	for _, tc := range []struct {
		name    string
		flavor  jirafake.Flavor
		token   string
		actions []bridge.Action
		want    []string // one substring per expected problem line
	}{
		{"all good/cloud", jirafake.Cloud, "", []bridge.Action{good}, nil},
		{"all good/datacenter", jirafake.DataCenter, "", []bridge.Action{good}, nil},
		{"bad token", jirafake.Cloud, "nope", []bridge.Action{good}, []string{"problem: the token is refused by http://127.0.0.1:"}},
		{"everything wrong", jirafake.DataCenter, "", []bridge.Action{
			&Action{Summary: "s", Project: "NOPE"},
			&Action{Summary: "s", IssueType: "Epic"},
			&Action{Summary: "s", Priority: "Urgent", Components: []string{"Mobile"},
				Fields: FieldValues{"customfield_99999": "x", "customfield_10012": map[string]any{"value": "Meh"}, "customfield_10020": "t"}},
		}, []string{
			`project NOPE: jira: create metadata: HTTP 404: No project could be found with key 'NOPE'.`,
			`project OPS has no issue type "Epic" that the account can create (it has: Task, Bug, Story)`,
			`OPS Task: priority "Urgent" does not exist`,
			`OPS Task: component "Mobile" does not exist in the project (it has: Backend, Frontend)`,
			`OPS Task: field customfield_99999 does not exist or is not on the create screen`,
			`OPS Task: "Meh" is not an option of field Severity (customfield_10012) (options: High, Low)`,
		}},
		{"required field unset", jirafake.Cloud, "", []bridge.Action{&Action{Summary: "s"}},
			[]string{"OPS Task: field Team (customfield_10020) is required on the create screen, but no rule sets it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, jirafake.Options{Flavor: tc.flavor, CustomFields: custom})
			if tc.token != "" {
				h.cfg.Token = bridge.Secret(tc.token)
			}
			var out bytes.Buffer
			n, err := Check(context.Background(), h.cfg, tc.actions, &out)
			if err != nil {
				t.Fatal(err)
			}
			t.Log("\n" + out.String())
			if n != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%s", n, len(tc.want), out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if len(tc.want) == 0 && !strings.Contains(out.String(), "ok: signed in to "+h.srv.URL) {
				t.Errorf("output:\n%s", out.String())
			}
		})
	}
}

// TestCheckUnreachable checks that a Jira that cannot be reached is not
// reported as a bad token: the check could not run, and says so once, as
// its error (the caller prints it), naming the host and why.
func TestCheckUnreachable(t *testing.T) {
	h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
	addr := strings.TrimPrefix(h.srv.URL, "http://")
	h.srv.Close()
	var out bytes.Buffer
	n, err := Check(context.Background(), h.cfg, nil, &out)
	if want := "jira: cannot reach " + addr + ": connection refused"; err == nil || err.Error() != want || n != 0 {
		t.Errorf("problems %d, err %v; want 0 and %q", n, err, want)
	}
	if out.String() != "" {
		t.Errorf("Check printed, besides its error:\n%s", out.String())
	}

	h = newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
	h.cfg.URL = "http://bridge-test.invalid"
	n, err = Check(context.Background(), h.cfg, nil, &out)
	if err == nil || !strings.HasPrefix(err.Error(), "jira: cannot reach bridge-test.invalid: ") || strings.Contains(out.String(), "token") {
		t.Errorf("a name that does not resolve: problems %d, err %v:\n%s", n, err, out.String())
	}
}

func TestCheckTransitions(t *testing.T) {
	key := lifeKey
	opener := func(extra func(a *Action)) *Action {
		a := &Action{Summary: "s", Dedupe: &key, ReopenWithin: Window(time.Hour)}
		if extra != nil {
			extra(a)
		}
		return a
	}
	resolver := func(extra func(a *Action)) *Action {
		a := &Action{Resolve: true, Dedupe: &key}
		if extra != nil {
			extra(a)
		}
		return a
	}
	// onlyFromInProgress resolves through Done from In Progress only.
	onlyFromInProgress := jirafake.DefaultWorkflow()
	onlyFromInProgress.Transitions[2].From = []string{"In Progress"}
	for _, tc := range []struct {
		name    string
		flavor  jirafake.Flavor
		wf      *jirafake.Workflow
		samples []string // statuses of the sample issues to open first
		actions []bridge.Action
		want    []string // substrings of the output
		probs   int
	}{
		{"no issue to check on", jirafake.Cloud, nil, nil, []bridge.Action{opener(nil), resolver(nil)}, []string{
			`note: OPS Task: transition "Done" (transition, which resolves tickets) not checked: there is no open Task issue in OPS to check it on, and Jira lists only the transitions from an issue's current status. Run jira check again once there is one.`,
			`note: OPS Task: transition "Reopen" (reopen_transition, which reopens tickets) not checked: there is no Done Task issue in OPS`,
		}, 0},
		{"all offered/cloud", jirafake.Cloud, nil, []string{"To Do", "In Progress", "Done"}, []bridge.Action{opener(nil), resolver(nil)}, []string{
			`ok: OPS Task: transition "Done" (transition) is offered from status In Progress (OPS-2), To Do (OPS-1)`,
			`ok: OPS Task: transition "Reopen" (reopen_transition) is offered from status Done (OPS-3)`,
		}, 0},
		{"all offered/datacenter", jirafake.DataCenter, nil, []string{"To Do", "Done"}, []bridge.Action{opener(nil), resolver(nil)}, []string{
			`ok: OPS Task: transition "Done" (transition) is offered from status To Do (OPS-1)`,
			`ok: OPS Task: transition "Reopen" (reopen_transition) is offered from status Done (OPS-2)`,
		}, 0},
		{"unknown names", jirafake.DataCenter, nil, []string{"To Do", "Done"}, []bridge.Action{
			opener(func(a *Action) { a.ReopenTransition = "Back" }), resolver(func(a *Action) { a.Transition = "Close" }),
		}, []string{
			`problem: OPS Task: Jira offers no transition "Close" (transition, which resolves tickets) from status To Do (OPS-1); it offers from To Do: "Start Progress" (→ In Progress), "Done" (→ Done). Set transition: in the rules to one of them, or add the transition to the workflow.`,
			`problem: OPS Task: Jira offers no transition "Back" (reopen_transition, which reopens tickets) from status Done (OPS-2); it offers from Done: "Reopen" (→ To Do).`,
		}, 2},
		{"offered from some statuses", jirafake.Cloud, &onlyFromInProgress, []string{"To Do", "In Progress"}, []bridge.Action{resolver(nil)}, []string{
			`ok: OPS Task: transition "Done" (transition) is offered from status In Progress (OPS-2)`,
			`note: OPS Task: transition "Done" is not offered from status To Do (OPS-1): the bridge cannot resolve a ticket while it is in that status (from there Jira offers "Start Progress" (→ In Progress))`,
		}, 0},
		{"screen requires a resolution", jirafake.Cloud, ptr(jirafake.ResolutionScreenWorkflow()), []string{"To Do"}, []bridge.Action{resolver(nil)}, []string{
			`problem: OPS Task: the screen of transition "Done" requires a resolution, and the resolve action sets none. Set resolution: in it (one of: Done, Won't Do, Duplicate, Cannot Reproduce).`,
		}, 1},
		{"unknown resolution on a screen", jirafake.DataCenter, ptr(jirafake.ResolutionScreenWorkflow()), []string{"To Do"}, []bridge.Action{resolver(func(a *Action) { a.Resolution = "Fixed" })}, []string{
			`problem: OPS Task: transition "Done" offers no resolution "Fixed" (it offers: Done, Won't Do, Duplicate, Cannot Reproduce).`,
			`problem: resolution "Fixed" does not exist in Jira (it has: Done, Won't Do, Duplicate, Cannot Reproduce).`,
		}, 2},
		{"resolution without a screen", jirafake.Cloud, nil, []string{"To Do"}, []bridge.Action{resolver(func(a *Action) { a.Resolution = "won't do" })}, []string{
			`note: OPS Task: transition "Done" has no Resolution field on its screen: the bridge does not send resolution "won't do"`,
		}, 0},
		{"resolve checked on the created types", jirafake.Cloud, nil, nil, []bridge.Action{
			opener(func(a *Action) { a.IssueType = "Bug"; a.ReopenWithin = 0 }), resolver(nil),
		}, []string{`OPS Bug: transition "Done" (transition, which resolves tickets) not checked: there is no open Bug issue in OPS`}, 0},
		{"templates", jirafake.Cloud, nil, []string{"To Do"}, []bridge.Action{resolver(func(a *Action) { a.Transition = "{{ .data.t }}" }), resolver(func(a *Action) { a.Project = "{{ .data.p }}" })}, []string{
			`note: OPS Task: transition "{{ .data.t }}" (transition) is a template: it can only be checked once rendered`,
			`note: project "{{ .data.p }}" of a resolve action is a template`,
		}, 0},
		{"resolve in a missing project", jirafake.Cloud, nil, nil, []bridge.Action{resolver(func(a *Action) { a.Project = "NOPE" })}, []string{
			`problem: project NOPE:`,
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := jirafake.Options{Flavor: tc.flavor}
			if tc.wf != nil {
				opts.Workflows = map[string]jirafake.Workflow{"OPS": *tc.wf}
			}
			h := newHarness(t, opts)
			s := h.sink()
			for i, status := range tc.samples {
				k := send(t, s, delivery(t, int64(i+1), event(status), map[string]any{"summary": "sample"}))
				if status != "To Do" {
					h.srv.SetStatus(k, status, map[string]string{"In Progress": "indeterminate", "Done": "done"}[status])
				}
			}
			var out bytes.Buffer
			n, err := Check(context.Background(), h.cfg, tc.actions, &out)
			if err != nil {
				t.Fatal(err)
			}
			t.Log("\n" + out.String())
			if n != tc.probs {
				t.Errorf("%d problems, want %d", n, tc.probs)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q", w)
				}
			}
		})
	}
}
