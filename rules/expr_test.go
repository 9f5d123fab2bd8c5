package rules

import (
	"strings"
	"testing"

	"bridge/bridge"
)

// evalWhen compiles one condition into a one-rule set and runs it.
func evalWhen(t *testing.T, when string, ev *bridge.Event) (bool, []bridge.RuleError) {
	t.Helper()
	rc := []bridge.RuleConfig{{Name: "r", When: when, Line: 1, WhenLine: 1, WhenCol: 7, Actions: []bridge.ActionConfig{
		chatActionConfig(t, "x"),
	}}}
	set, probs := Compile("rules.yaml", rc, testSinks())
	if len(probs) > 0 {
		t.Fatalf("compile %q: %v", when, probs)
	}
	res := set.Evaluate(ev)
	return len(res.Matched) == 1, res.Errors
}

func chatActionConfig(t *testing.T, text string) bridge.ActionConfig {
	t.Helper()
	rc := parseRules(t, "rules:\n  - actions:\n      - sink: secops-slack\n        text: '"+text+"'\n")
	return rc[0].Actions[0]
}

func TestWhenOverVendorPayloads(t *testing.T) {
	tests := []struct {
		name  string
		event string
		when  string
		want  bool
	}{
		{"agility vendor and type", "agility_analysis_done.json", `vendor == "agility" && type == "analysis_done"`, true},
		{"agility int field", "agility_analysis_done.json", `data.count_prediction_warning > 0`, true},
		{"agility int equality", "agility_analysis_done.json", `data.count_prediction_failure == 0`, true},
		{"agility compare to float", "agility_analysis_done.json", `data.unique_nes >= 15.5`, true},
		{"agility failures", "agility_analysis_done.json", `vendor == "agility" && data.count_prediction_failure > 0`, false},
		{"agility string status", "agility_analysis_done.json", `data.final_status == "true"`, true},
		{"agility list contains", "agility_analysis_done.json", `"myfile.pcap" in data.analyzed_file_paths`, true},
		{"agility severity", "agility_analysis_done.json", `severity == "medium"`, true},
		{"agility subject", "agility_analysis_done.json", `subject startsWith "c16fa458"`, true},
		{"agility builtin on list", "agility_analysis_done.json", `len(data.analyzed_file_paths) == 1`, true},
		{"agility time", "agility_analysis_done.json", `time.Year() == 2023 && received > time`, true},
		{"agility empty error message", "agility_analysis_done.json", `data.error_message == ""`, true},
		{"alert triggered", "secureagentics_alert_triggered.json", `type == "alert.triggered" && severity == "high"`, true},
		{"alert details matches", "secureagentics_alert_triggered.json", `data.details matches "(?i)rate limit"`, true},
		{"alert subject is alert id", "secureagentics_alert_triggered.json", `subject == "alrt_xyz"`, true},
		{"policy violated", "secureagentics_policy_violated.json", `type in ["policy.violated", "alert.triggered"]`, true},
		{"policy name", "secureagentics_policy_violated.json", `data.policy contains "pii"`, true},
		{"policy subject falls back to agent", "secureagentics_policy_violated.json", `subject == data.agent_id`, true},
		{"agent registered", "secureagentics_agent_registered.json", `type == "agent.registered" && severity == "info"`, true},
		{"agent registered not error", "secureagentics_agent_registered.json", `type == "agent.error"`, false},
		{"agent error retries", "secureagentics_agent_error.json", `type == "agent.error" && data.retries >= 3`, true},
		{"agent error lower", "secureagentics_agent_error.json", `lower(data.details) contains "timed out"`, true},
		{"antly type", "antly_customer_create.json", `vendor == "antly" && type endsWith ":create"`, true},
		{"antly email", "antly_customer_create.json", `data.email endsWith "@example.com"`, true},
		{"antly not delete", "antly_customer_create.json", `not (type endsWith ":delete")`, true},
		{"antly id is string", "antly_customer_create.json", `subject == "12345"`, true},

		// Missing keys: never an error, simply not matching.
		{"missing greater", "agility_analysis_done.json", `data.missing > 0`, false},
		{"missing less", "agility_analysis_done.json", `data.missing < 0`, false},
		{"missing reversed", "agility_analysis_done.json", `0 <= data.missing`, false},
		{"missing both sides", "agility_analysis_done.json", `data.a > data.b`, false},
		{"missing nested", "agility_analysis_done.json", `data.a.b.c == "x"`, false},
		{"missing nested compare", "agility_analysis_done.json", `data.a.b > 1`, false},
		{"missing or other", "agility_analysis_done.json", `data.missing > 0 || vendor == "agility"`, true},
		{"missing negated", "agility_analysis_done.json", `!(data.missing > 0)`, true},
		{"missing not", "agility_analysis_done.json", `not data.missing`, true},
		{"missing is nil", "agility_analysis_done.json", `data.missing == nil`, true},
		{"missing ternary", "agility_analysis_done.json", `data.missing ? true : false`, false},
		{"missing string op", "agility_analysis_done.json", `data.missing startsWith "x"`, false},
		{"missing arithmetic", "agility_analysis_done.json", `data.missing + 1 > 2`, false},
		{"missing builtin", "agility_analysis_done.json", `lower(data.missing) == "x"`, false},
		{"missing len", "agility_analysis_done.json", `len(data.missing) > 0`, false},
		{"missing in closure", "agility_analysis_done.json", `any(data.analyzed_file_paths, # > "a") && data.nope > 1`, false},
		{"present in closure", "agility_analysis_done.json", `any(data.analyzed_file_paths, # startsWith "my")`, true},
		{"optional chain by hand", "agility_analysis_done.json", `data?.a?.b == nil`, true},
		{"nil coalescing", "agility_analysis_done.json", `(data.missing ?? 5) > 3`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := loadEvent(t, tc.event)
			got, errs := evalWhen(t, tc.when, ev)
			if len(errs) > 0 {
				t.Fatalf("%s: errors %v", tc.when, errs)
			}
			if got != tc.want {
				t.Errorf("%s = %v, want %v", tc.when, got, tc.want)
			}
		})
	}
}

func TestWhenRuntimeErrors(t *testing.T) {
	// Failures not explained by a missing key are errors, and the rule
	// does not match.
	ev := loadEvent(t, "agility_analysis_done.json")
	for _, when := range []string{
		`data.file_path > 3`,                 // string against int
		`data.analyzed_file_paths[5] == "x"`, // index out of range
		`data.file_path.x == "y"`,            // member of a string
		`int(data.file_path) > 1`,            // not a number
	} {
		t.Run(when, func(t *testing.T) {
			got, errs := evalWhen(t, when, ev)
			if got || len(errs) != 1 {
				t.Fatalf("matched %v, errors %v; want one error", got, errs)
			}
			if msg := errs[0].Err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "when: ") {
				t.Errorf("error %q: want one line starting with when:", msg)
			}
		})
	}
}

func TestExtractIndex(t *testing.T) {
	tests := []struct {
		when    string
		indexed bool
		field   int
		values  []string
	}{
		{`vendor == "a"`, true, fieldVendor, []string{"a"}},
		{`"a" == vendor`, true, fieldVendor, []string{"a"}},
		{`vendor == "a" && type == "t"`, true, fieldType, []string{"t"}},
		{`source == "s" and data.x > 1`, true, fieldSource, []string{"s"}},
		{`data.x > 1 && (vendor == "a" && type in ["t", "u"])`, true, fieldType, []string{"t", "u"}},
		{`vendor == "a" && vendor == "b"`, true, fieldVendor, nil},
		{`vendor == "a" || type == "b"`, false, 0, nil},
		{`!(vendor == "a")`, false, 0, nil},
		{`vendor != "a"`, false, 0, nil},
		{`type in ["a", data.x]`, false, 0, nil},
		{`data.vendor == "a"`, false, 0, nil},
		{`vendor == type`, false, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.when, func(t *testing.T) {
			key, ok := extractIndex(tc.when)
			if ok != tc.indexed {
				t.Fatalf("indexed = %v, want %v", ok, tc.indexed)
			}
			if !ok {
				return
			}
			if key.field != tc.field || strings.Join(key.values, ",") != strings.Join(tc.values, ",") {
				t.Errorf("key = %d %v, want %d %v", key.field, key.values, tc.field, tc.values)
			}
		})
	}
}

func TestWhenNullsAndNumbers(t *testing.T) {
	ev := &bridge.Event{Vendor: "v", Data: map[string]any{
		"null": nil, "one": float64(1), "big": int64(1) << 40, "obj": map[string]any{"n": nil, "s": "x"},
	}}
	for when, want := range map[string]bool{
		`data.null > 1`:                       false,
		`data.null == nil`:                    true,
		`data.null.x == nil`:                  true,
		`data.null.x + 1 > 0`:                 false,
		`data["obj"]["s"] == "x"`:             true,
		`data.obj.n < 1`:                      false,
		`upper(data.obj.n) == "X"`:            false,
		`data.one == 1`:                       true,
		`data.one >= 1 && data.big > 1000000`: true,
		`data.big / 2 > 1`:                    true,
	} {
		t.Run(when, func(t *testing.T) {
			got, errs := evalWhen(t, when, ev)
			if len(errs) > 0 || got != want {
				t.Errorf("%s = %v, errors %v; want %v", when, got, errs, want)
			}
		})
	}
	ev.Data = nil
	if got, errs := evalWhen(t, `data.x > 1 || vendor == "v"`, ev); !got || len(errs) > 0 {
		t.Errorf("nil data: %v %v", got, errs)
	}
}
