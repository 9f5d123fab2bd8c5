package rules

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"bridge/bridge"
)

// compileProblem is a rules document Compile refuses with one problem.
type compileProblem struct {
	name string
	src  string
	line int
	msg  string // every fragment must appear
}

func TestCompileProblems(t *testing.T) {
	tests := []compileProblem{
		{"typo in field", `
rules:
  - name: typo
    when: vendor == "a" && sevrity == "high"
    actions: [{sink: secops-slack, text: hi}]
`, 4, `rule "typo": when: unknown name sevrity (column 28)`},
		{"quoted typo", `
rules:
  - name: typo
    when: 'vendr == "a"'
    actions: [{sink: secops-slack, text: hi}]
`, 4, `unknown name vendr (column 12)`},
		{"severity compared to a number", `
rules:
  - name: sev
    when: severity == 3
    actions: [{sink: secops-slack, text: hi}]
`, 4, `rule "sev": when: invalid operation: == (mismatched types string and int) (column 20)`},
		{"not boolean", `
rules:
  - name: nb
    when: 1 + 2
    actions: [{sink: secops-slack, text: hi}]
`, 4, `rule "nb": when: expected bool, but got int (column 11)`},
		{"string is not boolean", `
rules:
  - name: nb
    when: title
    actions: [{sink: secops-slack, text: hi}]
`, 4, `expected bool, but got string (column 11)`},
		{"syntax error", `
rules:
  - name: syn
    when: vendor == "a" &&
    actions: [{sink: secops-slack, text: hi}]
`, 4, `rule "syn": when: unexpected token EOF (column 26)`},
		{"syntax error on a later line", `
rules:
  - name: multi
    when: |
      vendor == "a" &&
        type === "b"
    actions: [{sink: secops-slack, text: hi}]
`, 6, `unexpected token Operator("=") (column 16)`},
		{"missing when", `
rules:
  - name: nowhen
    actions: [{sink: secops-slack, text: hi}]
`, 3, `rule "nowhen": when is required`},
		{"no actions", `
rules:
  - name: noact
    when: vendor == "a"
`, 3, `rule "noact": actions: at least one action is required`},
		{"empty name", `
rules:
  - when: vendor == "a"
    actions: [{sink: secops-slack, text: hi}]
`, 3, `rule 1: name is required`},
		{"duplicate name", `
rules:
  - name: twice
    when: vendor == "a"
    actions: [{sink: secops-slack, text: hi}]
  - name: twice
    when: vendor == "b"
    actions: [{sink: secops-slack, text: hi}]
`, 6, `rule "twice": duplicate rule name (first used at line 3)`},
		{"unknown sink", `
rules:
  - name: us
    when: vendor == "a"
    actions:
      - sink: nowhere
        text: hi
`, 6, `rule "us": action 1: unknown sink "nowhere" (configured: bare-jira, ops-jira, secops-slack)`},
		{"unknown action key", `
rules:
  - name: uk
    when: vendor == "a"
    actions:
      - sink: secops-slack
        text: hi
        chanel: '#x'
`, 8, `rule "uk": action 1 (sink secops-slack): unknown key "chanel": did you mean channel? (known: channel, text, thread_by)`},
		{"validate field error", `
rules:
  - name: ve
    when: vendor == "a"
    actions:
      - sink: ops-jira
        summary: s
        on_duplicate: sometimes
`, 8, `rule "ve": action 1 (sink ops-jira): on_duplicate: "sometimes" is not comment or skip`},
		{"required field with sink config", `
rules:
  - name: req
    when: vendor == "a"
    actions:
      - sink: bare-jira
        summary: s
`, 6, `project: is required`},
		{"wrong yaml type", `
rules:
  - name: wt
    when: vendor == "a"
    actions:
      - sink: ops-jira
        summary: s
        labels: {a: b}
`, 8, `rule "wt": action 1 (sink ops-jira): labels: must be a list of text, got a mapping`},
		{"template parse error", `
rules:
  - name: tp
    when: vendor == "a"
    actions:
      - sink: ops-jira
        summary: ok
        description: 'broken {{ .title '
`, 8, `rule "tp": action 1 (sink ops-jira): field description: template: unclosed action`},
		{"template parse error in a block", `
rules:
  - name: tb
    when: vendor == "a"
    actions:
      - sink: ops-jira
        summary: ok
        description: |
          line one {{ .title }}
          line two {{ nosuchfunc .title }}
`, 10, `field description: template: function "nosuchfunc" not defined`},
		{"sink misspelt", `
rules:
  - name: ms
    when: vendor == "a"
    actions:
      - sink: ops-jria
        summary: s
`, 6, `rule "ms": action 1: unknown sink "ops-jria": did you mean ops-jira? (configured: `},
		{"sink not a name", `
rules:
  - name: sl
    when: vendor == "a"
    actions:
      - sink: [ops-jira]
        summary: s
`, 6, `rule "sl": action 1: sink: must be the name of a sink, got a list`},
		{"template error in a list", `
rules:
  - name: tl
    when: vendor == "a"
    actions:
      - sink: ops-jira
        summary: ok
        labels: [a, '{{ end }}']
`, 8, `field labels[1]: template:`},
	}
	for _, tc := range append(tests, chainCompileProblems...) {
		t.Run(tc.name, func(t *testing.T) {
			set, probs := Compile("rules.yaml", parseRules(t, tc.src), testSinks())
			if set != nil {
				t.Fatal("got a Set despite problems")
			}
			if len(probs) != 1 {
				t.Fatalf("want one problem, got %d: %v", len(probs), probs)
			}
			p := probs[0]
			if p.File != "rules.yaml" || p.Line != tc.line {
				t.Errorf("at %s:%d, want rules.yaml:%d (%s)", p.File, p.Line, tc.line, p.Msg)
			}
			if !strings.Contains(p.Msg, tc.msg) || strings.Contains(p.Msg, "\n") {
				t.Errorf("message %q, want one line containing %q", p.Msg, tc.msg)
			}
		})
	}
}

func TestCompileListsEveryProblem(t *testing.T) {
	_, probs := Compile("rules.yaml", parseRules(t, `
rules:
  - name: a
    when: vendr == "x"
    actions: [{sink: nowhere}]
  - name: b
    when: type == 1
    actions:
      - sink: secops-slack
        txt: hi
`), testSinks())
	var lines []int
	for _, p := range probs {
		lines = append(lines, p.Line)
	}
	// unknown name, unknown sink, type mismatch, unknown key, text required.
	if want := []int{4, 5, 7, 10, 9}; !reflect.DeepEqual(lines, want) {
		t.Errorf("problem lines %v, want %v:\n%v", lines, want, probs)
	}
}

func TestEvaluateOrderStopAndIndex(t *testing.T) {
	set := mustCompile(t, `
rules:
  - name: any-high
    when: severity == "high"
    actions: [{sink: secops-slack, text: 'high {{ .type }}'}]
  - name: alerts
    when: type == "alert.triggered" && data.alert_id != ""
    actions:
      - {sink: secops-slack, text: 'alert {{ .subject }}'}
      - {sink: ops-jira, summary: '{{ .title }}', count: 3, urgent: true, labels: [sa, '{{ .severity }}']}
  - name: other-vendor
    when: vendor == "agility"
    actions: [{sink: secops-slack, text: agility}]
  - name: unindexed
    when: vendor == "secureagentics" || type == "x"
    actions: [{sink: secops-slack, text: either}]
  - name: stopper
    when: vendor == "secureagentics" && type in ["alert.triggered", "policy.violated"]
    stop: true
    actions: [{sink: secops-slack, text: stop}]
  - name: after-stop
    when: severity == "high"
    actions: [{sink: secops-slack, text: never}]
`)
	if got, want := set.Rules(), []string{"any-high", "alerts", "other-vendor", "unindexed", "stopper", "after-stop"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Rules() = %v", got)
	}
	t.Run("alert runs in file order and stops", func(t *testing.T) {
		res := set.Evaluate(loadEvent(t, "secureagentics_alert_triggered.json"))
		if want := []string{"any-high", "alerts", "unindexed", "stopper"}; !reflect.DeepEqual(res.Matched, want) {
			t.Errorf("matched %v, want %v", res.Matched, want)
		}
		if len(res.Errors) > 0 {
			t.Errorf("errors %v", res.Errors)
		}
		var got []string
		for _, p := range res.Planned {
			got = append(got, p.Rule+"/"+p.Sink+"/"+string(p.Action))
		}
		want := []string{
			`any-high/secops-slack/{"text":"high alert.triggered"}`,
			`alerts/secops-slack/{"text":"alert alrt_xyz"}`,
			`alerts/ops-jira/{"count":3,"labels":["sa","high"],"summary":"Secureagentics alert.triggered: Rate limit exceeded: 150 prompts/min","urgent":true}`,
			`unindexed/secops-slack/{"text":"either"}`,
			`stopper/secops-slack/{"text":"stop"}`,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("planned\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if res.Planned[2].Index != 1 {
			t.Errorf("second action of alerts has index %d", res.Planned[2].Index)
		}
		var a fakeAction
		d := bridge.Delivery{Action: res.Planned[2].Action}
		if err := d.DecodeAction(&a); err != nil || a.Count != 3 || !a.Urgent || a.Labels[1] != "high" {
			t.Errorf("rendered action decodes to %+v, %v", a, err)
		}
	})
	t.Run("agent registered reaches only its candidates", func(t *testing.T) {
		res := set.Evaluate(loadEvent(t, "secureagentics_agent_registered.json"))
		if want := []string{"unindexed"}; !reflect.DeepEqual(res.Matched, want) {
			t.Errorf("matched %v, want %v", res.Matched, want)
		}
	})
	t.Run("agility", func(t *testing.T) {
		res := set.Evaluate(loadEvent(t, "agility_analysis_done.json"))
		if want := []string{"other-vendor"}; !reflect.DeepEqual(res.Matched, want) {
			t.Errorf("matched %v, want %v", res.Matched, want)
		}
	})
	t.Run("unindexed or-rule matches on type alone", func(t *testing.T) {
		ev := &bridge.Event{Vendor: "antly", Type: "x", Severity: "info"}
		res := set.Evaluate(ev)
		if want := []string{"unindexed"}; !reflect.DeepEqual(res.Matched, want) {
			t.Errorf("matched %v, want %v", res.Matched, want)
		}
	})
	t.Run("explain agrees", func(t *testing.T) {
		vs := set.Explain(loadEvent(t, "secureagentics_alert_triggered.json"))
		var got []string
		for _, v := range vs {
			s := v.Rule + ":"
			switch {
			case v.Skipped:
				s += "skipped"
			case v.Matched:
				s += "matched"
			default:
				s += "no"
			}
			got = append(got, s)
		}
		want := []string{"any-high:matched", "alerts:matched", "other-vendor:no", "unindexed:matched", "stopper:matched", "after-stop:skipped"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("explain %v, want %v", got, want)
		}
		if f := vs[1].Actions[1].Fields; vs[1].Actions[1].Sink != "ops-jira" || f["summary"] == "" || f["count"] != 3 {
			t.Errorf("explained action %+v", vs[1].Actions[1])
		}
	})
}

func TestIndexKeepsFileOrder(t *testing.T) {
	// Rules indexed on each field and unindexed ones, interleaved: an event
	// matching all of them sees them in file order.
	var b strings.Builder
	b.WriteString("rules:\n")
	whens := []string{
		`type == "t"`, `data.n > 0`, `vendor == "v"`, `source == "s"`, `type in ["u", "t"]`,
		`vendor == "v" || type == "nope"`, `"s" == source && data.n == 1`, `vendor == "v" && type == "t"`, `true`,
	}
	var want []string
	for i, w := range whens {
		name := "r" + string(rune('a'+i))
		want = append(want, name)
		b.WriteString("  - name: " + name + "\n    when: '" + w + "'\n    actions: [{sink: secops-slack, text: x}]\n")
	}
	set := mustCompile(t, b.String())
	ev := &bridge.Event{Vendor: "v", Source: "s", Type: "t", Data: map[string]any{"n": int64(1)}}
	if got := set.Evaluate(ev).Matched; !reflect.DeepEqual(got, want) {
		t.Errorf("matched %v, want %v", got, want)
	}
	indexed := 0
	for _, r := range set.rules {
		if r.indexed {
			indexed++
		}
	}
	if indexed != 6 {
		t.Errorf("%d rules indexed, want 6", indexed)
	}
	ev.Type = "u"
	if got, want := set.Evaluate(ev).Matched, []string{"rb", "rc", "rd", "re", "rf", "rg", "ri"}; !reflect.DeepEqual(got, want) {
		t.Errorf("type u: matched %v, want %v", got, want)
	}
}

func TestRuleErrorDoesNotStopOthers(t *testing.T) {
	set := mustCompile(t, `
rules:
  - name: broken
    when: data.file_path > 1
    actions: [{sink: secops-slack, text: x}]
  - name: fine
    when: vendor == "agility"
    actions: [{sink: secops-slack, text: y}]
`)
	res := set.Evaluate(loadEvent(t, "agility_analysis_done.json"))
	if len(res.Errors) != 1 || res.Errors[0].Rule != "broken" {
		t.Fatalf("errors %v", res.Errors)
	}
	if !reflect.DeepEqual(res.Matched, []string{"fine"}) {
		t.Errorf("matched %v", res.Matched)
	}
	vs := set.Explain(loadEvent(t, "agility_analysis_done.json"))
	if vs[0].Err == nil || vs[0].Matched || !vs[1].Matched {
		t.Errorf("explain %+v", vs)
	}
}

func TestActions(t *testing.T) {
	set := mustCompile(t, `
rules:
  - name: a
    when: vendor == "a"
    actions:
      - {sink: ops-jira, summary: 'one {{ .title }}', project: SEC}
      - {sink: secops-slack, text: x}
  - name: b
    when: vendor == "b"
    actions: [{sink: ops-jira, summary: two, labels: [x]}]
`)
	got := set.Actions("ops-jira")
	if len(got) != 2 {
		t.Fatalf("got %d actions", len(got))
	}
	if a := got[0].(*fakeAction); a.Summary != "one {{ .title }}" || a.Project != "SEC" {
		t.Errorf("first action %+v", a)
	}
	if a := got[1].(*fakeAction); a.Summary != "two" || len(a.Labels) != 1 {
		t.Errorf("second action %+v", a)
	}
	if n := len(set.Actions("secops-slack")); n != 1 {
		t.Errorf("slack actions %d", n)
	}
	if n := len(set.Actions("none")); n != 0 {
		t.Errorf("unknown sink actions %d", n)
	}
}

func TestEvaluateConcurrently(t *testing.T) {
	set := mustCompile(t, `
rules:
  - name: a
    when: vendor == "agility" && data.count_prediction_warning > 1
    actions: [{sink: secops-slack, text: '{{ .data.file_path }}'}]
`)
	ev := loadEvent(t, "agility_analysis_done.json")
	done := make(chan bool)
	for i := 0; i < 8; i++ {
		go func() {
			ok := true
			for j := 0; j < 200; j++ {
				res := set.Evaluate(ev)
				var f map[string]any
				if len(res.Planned) != 1 || json.Unmarshal(res.Planned[0].Action, &f) != nil || f["text"] != "myfile.pcap" {
					ok = false
				}
			}
			done <- ok
		}()
	}
	for i := 0; i < 8; i++ {
		if !<-done {
			t.Error("a concurrent evaluation went wrong")
		}
	}
}
