package rules

import (
	"fmt"
	"strings"
	"testing"

	"bridge/bridge"
)

// benchRules writes n rules. With indexed, rule i requires type "t<i%100>"
// (so an event of one type has n/100 candidates); otherwise no rule can be
// ruled out by the index. Each also tests a data field and the severity,
// and one rule in a hundred matches.
func benchRules(n int, indexed bool) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := 0; i < n; i++ {
		when := fmt.Sprintf(`data.count > %d && severity == "high"`, 100+i)
		if indexed {
			when = fmt.Sprintf(`type == "t%d" && data.count > %d && severity == "high"`, i%100, 100+i)
		}
		if i%100 == 99 {
			when = strings.Replace(when, fmt.Sprintf("> %d", 100+i), "> 0", 1)
		}
		fmt.Fprintf(&b, "  - name: rule-%d\n    when: '%s'\n    actions:\n      - {sink: secops-slack, text: '{{ .title }} {{ .data.count }}'}\n", i, when)
	}
	return b.String()
}

func benchEvent() *bridge.Event {
	ev := templateEvent()
	ev.Type = "t99"
	ev.Data = map[string]any{"count": int64(5), "details": "x"}
	return ev
}

func BenchmarkEvaluate1000Rules10Candidates(b *testing.B) {
	set := mustCompile(b, benchRules(1000, true))
	ev := benchEvent()
	if res := set.Evaluate(ev); len(res.Matched) != 10 {
		b.Fatalf("matched %d rules, want 10", len(res.Matched))
	}
	ev.Type = "t5" // 10 candidates, none matching
	if res := set.Evaluate(ev); len(res.Matched) != 0 || len(res.Errors) != 0 {
		b.Fatalf("matched %v, errors %v", res.Matched, res.Errors)
	}
	b.ReportAllocs()
	for b.Loop() {
		set.Evaluate(ev)
	}
}

func BenchmarkEvaluate1000Rules10CandidatesMatching(b *testing.B) {
	set := mustCompile(b, benchRules(1000, true))
	ev := benchEvent() // 10 candidates, all matching: 10 rendered actions
	b.ReportAllocs()
	for b.Loop() {
		set.Evaluate(ev)
	}
}

func BenchmarkEvaluate1000RulesAllRun(b *testing.B) {
	set := mustCompile(b, benchRules(1000, false))
	ev := benchEvent()
	if res := set.Evaluate(ev); len(res.Matched) != 10 || len(res.Errors) != 0 {
		b.Fatalf("matched %d rules, errors %v", len(res.Matched), res.Errors)
	}
	b.ReportAllocs()
	for b.Loop() {
		set.Evaluate(ev)
	}
}

func BenchmarkEvaluate1000RulesAllRunMissingKey(b *testing.B) {
	set := mustCompile(b, benchRules(1000, false))
	ev := benchEvent()
	ev.Data = map[string]any{} // every rule reads a missing key
	if res := set.Evaluate(ev); len(res.Matched) != 0 || len(res.Errors) != 0 {
		b.Fatalf("matched %d rules, errors %v", len(res.Matched), res.Errors)
	}
	b.ReportAllocs()
	for b.Loop() {
		set.Evaluate(ev)
	}
}

// BenchmarkEvaluateOneRuleAll is scripts/bench-ingest.sh's +file rule set:
// one rule, `when: 'true'`, one action with a plain field.
func BenchmarkEvaluateOneRuleAll(b *testing.B) {
	set := mustCompile(b, "rules:\n  - name: all\n    when: 'true'\n    actions:\n      - {sink: ops-jira, summary: x}\n")
	ev := benchEvent()
	if res := set.Evaluate(ev); len(res.Planned) != 1 || res.Planned[0].Err != nil {
		b.Fatalf("planned %+v", res.Planned)
	}
	b.ReportAllocs()
	for b.Loop() {
		set.Evaluate(ev)
	}
}
