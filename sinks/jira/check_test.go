package jira

import (
	"bytes"
	"context"
	"strings"
	"testing"

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
		{"bad token", jirafake.Cloud, "nope", []bridge.Action{good}, []string{"cannot sign in to"}},
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
