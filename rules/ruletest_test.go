package rules

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"bridge/bridge"
)

const runnerRules = `
rules:
  - name: agility-warnings
    when: vendor == "agility" && data.count_prediction_warning > 0
    actions:
      - sink: secops-slack
        text: 'AGILITY: {{ .data.count_prediction_warning }} warnings in {{ .data.file_path }}'
  - name: sa-high
    when: vendor == "secureagentics" && severity == "high"
    actions:
      - {sink: secops-slack, text: '{{ .title }}'}
  - name: sa-alerts
    when: type == "alert.triggered"
    actions:
      - sink: ops-jira
        summary: 'alert {{ .subject }}'
        count: 9
        labels: [sa, '{{ .severity }}']
        description: '{{ .data.details }}'
`

func TestRunTestsPassing(t *testing.T) {
	set := mustCompile(t, runnerRules)
	tests, err := LoadTests(filepath.Join("testdata", "ruletests", "tests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tests) != 4 || len(tests[0].Payload) == 0 || tests[1].Line != 10 {
		t.Fatalf("loaded %+v", tests)
	}
	var out strings.Builder
	passed, failed := RunTests(set, tests, normalizeForTest, &out)
	if passed != 4 || failed != 0 {
		t.Errorf("passed %d, failed %d:\n%s", passed, failed, out.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 5 || lines[4] != "4 passed, 0 failed" || lines[0] != "PASS warning analysis goes to slack" {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestRunTestsFailing(t *testing.T) {
	set := mustCompile(t, runnerRules)
	tests, err := LoadTests(filepath.Join("testdata", "ruletests", "failing.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	passed, failed := RunTests(set, tests, normalizeForTest, &out)
	if passed != 1 || failed != 3 {
		t.Errorf("passed %d, failed %d", passed, failed)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		`FAIL wrong rules: rules: matched [agility-warnings], want [agility-warnings, sa-high]`,
		`FAIL wrong field: actions: 2 planned, want 2`,
		`FAIL unknown source: source nosuch: unknown source "nosuch"`,
		`PASS passes`,
		`1 passed, 3 failed`,
	}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", out.String())
	}
	for i := range want {
		if i == 1 {
			continue // checked below
		}
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, lines[i], want[i])
		}
	}
	for _, frag := range []string{
		`action 1 (rule sa-high, sink secops-slack): text is "Secureagentics alert.triggered: ", want "something else"`,
		`action 2 (rule sa-alerts, sink ops-jira): sink ops-jira, want secops-slack`,
		`action 2 (rule sa-alerts, sink ops-jira): nothere is not set, want "x"`,
	} {
		if !strings.Contains(lines[1], frag) {
			t.Errorf("line 2 %q\nlacks %q", lines[1], frag)
		}
	}
	if strings.Contains(lines[1], "summary") {
		t.Errorf("summary matched but is reported: %s", lines[1])
	}
}

func TestRunTestsReportsRuleAndTemplateErrors(t *testing.T) {
	set := mustCompile(t, `
rules:
  - name: broken
    when: data.file_path > 1
    actions: [{sink: secops-slack, text: x}]
  - name: bad-template
    when: vendor == "agility"
    actions: [{sink: secops-slack, text: '{{ .title.x }}'}]
`)
	tests := []Test{{Name: "t", Source: "agility", Payload: []byte(`{"id":"1","event_name":"analysis_done","data":{"file_path":"f"}}`),
		Expect: Expect{HasActions: true, Actions: []map[string]any{{"sink": "secops-slack", "text": "x"}}}}}
	var out strings.Builder
	if _, failed := RunTests(set, tests, normalizeForTest, &out); failed != 1 {
		t.Fatalf("output:\n%s", out.String())
	}
	if s := out.String(); !strings.Contains(s, `rule "broken": when:`) || !strings.Contains(s, "can't evaluate field x") {
		t.Errorf("output:\n%s", s)
	}
}

func TestLoadTestsProblems(t *testing.T) {
	_, err := LoadTests(filepath.Join("testdata", "ruletests", "bad.yaml"))
	var probs bridge.Problems
	if !errors.As(err, &probs) {
		t.Fatalf("error %v is not Problems", err)
	}
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	file := filepath.Join("testdata", "ruletests", "bad.yaml")
	want := []string{
		file + `:7: unknown key "rule": did you mean rules? (known: actions, rules)`,
		file + `:2: test "no payload": payload or payload_file is required`,
		file + `:4: test 2: name is required`,
		file + `:5: test 2: payload_file: open ` + filepath.Join("testdata", "ruletests", "payloads", "missing.json") + `: no such file or directory`,
		file + `:10: test "both": give payload or payload_file, not both`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := LoadTests(filepath.Join("testdata", "ruletests", "nosuch.yaml")); err == nil {
		t.Error("a missing file loads")
	}
}
