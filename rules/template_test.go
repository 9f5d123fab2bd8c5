package rules

import (
	"strings"
	"testing"
	"time"

	"bridge/bridge"
)

func templateEvent() *bridge.Event {
	return &bridge.Event{
		ID: "evt_1", Source: "sa", Vendor: "secureagentics", Type: "alert.triggered",
		Time:     time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC),
		Received: time.Date(2024, 1, 15, 10, 30, 1, 500000000, time.UTC),
		Severity: "high", Title: "Rate limit exceeded", Subject: "alrt_xyz",
		Data: map[string]any{
			"details": "  Rate limit exceeded: 150 prompts/min ",
			"count":   int64(150),
			"ratio":   0.25,
			"tags":    []any{"a", "b", nil, int64(3)},
			"empty":   "",
			"zero":    int64(0),
			"nested":  map[string]any{"k": "v", "deep": map[string]any{"x": "y"}},
			"null":    nil,
			"epoch":   int64(1705314600),
			"when":    "2024-01-15T10:30:00Z",
			"name":    "john doe-smith",
			"html":    "<b>&</b>",
			"emoji":   "héllo wörld",
		},
	}
}

func renderOne(t *testing.T, text string, ev *bridge.Event) (string, error) {
	t.Helper()
	tmpl, err := parseTemplate("text", text)
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	v, err := tmpl.render(ev.Map())
	if err != nil {
		return "", err
	}
	if tmpl.fast != nil {
		// The fast path must print what text/template prints.
		var b strings.Builder
		if err := tmpl.t.Execute(&b, ev.Map()); err != nil || b.String() != v {
			t.Errorf("fast path printed %q, text/template %q (%v)", v, b.String(), err)
		}
	}
	return v.(string), nil
}

func TestTemplateFunctions(t *testing.T) {
	tests := []struct{ tmpl, want string }{
		{`{{ .title }} ({{ .subject }})`, `Rate limit exceeded (alrt_xyz)`},
		{`{{ .data.count }} {{ .data.ratio }}`, `150 0.25`},
		{`{{ .time }}`, `2024-01-15T10:30:00Z`},
		{`{{ .data.tags }} {{ .data.nested }} {{ .data.ratio }}`, `[a b <nil> 3] map[deep:map[x:y] k:v] 0.25`},
		{`{{ .time.Year }}`, `2024`},
		{`{{ .received }}`, `2024-01-15T10:30:01.5Z`},
		{`{{ json .data.nested }}`, `{"deep":{"x":"y"},"k":"v"}`},
		{`{{ .data.tags | json }}`, `["a","b",null,3]`},
		{`{{ json .time }}`, `"2024-01-15T10:30:00Z"`},
		{`{{ toJson .subject }}`, `"alrt_xyz"`},
		{`{{ .data.missing | default "n/a" }}`, `n/a`},
		{`{{ .data.empty | default "n/a" }}`, `n/a`},
		{`{{ .data.zero | default 7 }}`, `7`},
		{`{{ .data.count | default 7 }}`, `150`},
		{`{{ default "d" .title }}`, `Rate limit exceeded`},
		{`{{ coalesce .data.missing .data.empty .subject }}`, `alrt_xyz`},
		{`{{ empty .data.missing }} {{ empty .title }}`, `true false`},
		{`{{ upper .severity }} {{ .subject | upper }}`, `HIGH ALRT_XYZ`},
		{`{{ lower "ABC" }} {{ .data.missing | lower }}`, `abc `},
		{`{{ title .data.name }}`, `John Doe-Smith`},
		{`[{{ trim .data.details }}]`, `[Rate limit exceeded: 150 prompts/min]`},
		{`{{ trimPrefix "alrt_" .subject }} {{ trimSuffix "_xyz" .subject }}`, `xyz alrt`},
		{`{{ trunc 4 .title }}`, `Rate`},
		{`{{ .title | trunc 4 }}`, `Rate`},
		{`{{ trunc -8 .title }}`, `exceeded`},
		{`{{ trunc 3 .data.emoji }}`, `hél`},
		{`{{ trunc 100 .title }}`, `Rate limit exceeded`},
		{`{{ trunc .data.zero .title }}`, ``},
		{`{{ replace " " "-" .title }}`, `Rate-limit-exceeded`},
		{`{{ contains "limit" .title }} {{ hasPrefix "Rate" .title }} {{ hasSuffix "x" .title }}`, `true true false`},
		{`{{ join "," .data.tags }}`, `a,b,3`},
		{`{{ .data.tags | join "+" }}`, `a+b+3`},
		{`{{ join "," .data.missing }}|{{ join "," .title }}`, `|Rate limit exceeded`},
		{`{{ join "/" (splitList "." .type) }}`, `alert/triggered`},
		{`{{ quote .subject }} {{ squote .subject }}`, `"alrt_xyz" 'alrt_xyz'`},
		{`{{ quote .data.html }}`, `"<b>&</b>"`},
		{`{{ date "2006-01-02 15:04" .time }}`, `2024-01-15 10:30`},
		{`{{ date "15:04:05" .data.epoch }}`, `10:30:00`},
		{`{{ date "Jan 2" .data.when }}`, `Jan 15`},
		{`{{ date "Jan 2" .data.missing }}`, ``},
		{`{{ toString .data.count }}{{ toString .data.missing }}{{ toString .data.ratio }}`, `1500.25`},
		{`{{ if eq .severity "high" }}page{{ else }}mail{{ end }}`, `page`},
		{`{{ range .data.tags }}<{{ . }}>{{ end }}`, `<a><b><><3>`},
		{`{{ with .data.nested }}{{ .k }}{{ .nope }}{{ end }}`, `v`},
		{`{{ $s := .subject }}{{ $s }}`, `alrt_xyz`},
		{`{{ index .data "count" }}{{ index .data "nope" }}`, `150`},
		{`{{ printf "%s/%d" .subject .data.count }}`, `alrt_xyz/150`},
		{`{{ define "x" }}[{{ .data.nope }}]{{ end }}{{ template "x" . }}`, `[]`},
	}
	ev := templateEvent()
	for _, tc := range tests {
		t.Run(tc.tmpl, func(t *testing.T) {
			got, err := renderOne(t, tc.tmpl, ev)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTemplateMissingKeys(t *testing.T) {
	ev := templateEvent()
	for _, tmpl := range []string{
		`{{ .nope }}`,
		`{{ .data.missing }}`,
		`{{ .data.missing.deeper.still }}`,
		`{{ .data.nested.missing }}`,
		`{{ .data.nested.deep.missing }}`,
		`{{ .data.null }}`,
		`{{ if .data.missing }}yes{{ end }}`,
		`{{ .data.missing | upper }}`,
	} {
		t.Run(tmpl, func(t *testing.T) {
			got, err := renderOne(t, tmpl, ev)
			if err != nil || got != "" {
				t.Errorf("got %q, %v; want empty", got, err)
			}
		})
	}
	ev.Data = nil
	if got, err := renderOne(t, `[{{ .data.x.y }}]`, ev); err != nil || got != "[]" {
		t.Errorf("nil data: got %q, %v", got, err)
	}
}

func TestTemplateRuntimeErrorFailsOnlyThatAction(t *testing.T) {
	set := mustCompile(t, `
rules:
  - name: r
    when: vendor == "secureagentics"
    actions:
      - {sink: secops-slack, text: 'ok {{ .subject }}'}
      - {sink: secops-slack, text: '{{ .title.nope }}'}
      - {sink: ops-jira, summary: '{{ trunc "x" .title }}'}
      - {sink: secops-slack, text: 'still {{ .severity }}'}
  - name: next
    when: severity == "high"
    actions: [{sink: secops-slack, text: next}]
`)
	res := set.Evaluate(templateEvent())
	if len(res.Planned) != 5 || len(res.Errors) != 0 {
		t.Fatalf("planned %d, errors %v", len(res.Planned), res.Errors)
	}
	for i, want := range []string{`{"text":"ok alrt_xyz"}`, "", "", `{"text":"still high"}`, `{"text":"next"}`} {
		p := res.Planned[i]
		if string(p.Action) != want {
			t.Errorf("action %d = %s, want %s", i, p.Action, want)
		}
		if (want == "") != (p.Err != nil) {
			t.Errorf("action %d err = %v", i, p.Err)
		}
	}
	if msg := res.Planned[1].Err.Error(); !strings.Contains(msg, "text") || !strings.Contains(msg, "can't evaluate field nope") {
		t.Errorf("template error %q", msg)
	}
	if msg := res.Planned[2].Err.Error(); !strings.Contains(msg, `trunc: "x" is not a number`) {
		t.Errorf("template error %q", msg)
	}
}

func TestActionValues(t *testing.T) {
	set := mustCompile(t, `
rules:
  - name: r
    when: "true"
    actions:
      - sink: ops-jira
        summary: '{{ .subject }} <&>'
        count: 7
        urgent: false
        labels: [fixed, '{{ .severity }}', 3]
        fields:
          customfield_1: '{{ .data.count }}'
          customfield_2: 2.5
          "{{ .type }}": literal key
          nested: {list: ['{{ .vendor }}'], none: null}
`)
	res := set.Evaluate(templateEvent())
	want := `{"count":7,"fields":{"customfield_1":"150","customfield_2":2.5,"nested":{"list":["secureagentics"],"none":null},"{{ .type }}":"literal key"},"labels":["fixed","high",3],"summary":"alrt_xyz <&>","urgent":false}`
	if got := string(res.Planned[0].Action); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestAppendStringMatchesEncoder(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "tab\tnew\nline", "\x01", "héllo", "<&>", "\u2028", "bad \xff utf8"} {
		want, err := encodeJSON(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

func TestActionMergeKeysAndExplainFields(t *testing.T) {
	set := mustCompile(t, `
defaults: &defaults
  project: SEC
  summary: 'default {{ .subject }}'
more: &more
  labels: [a]
  project: OTHER
rules:
  - name: r
    when: "true"
    actions:
      - sink: ops-jira
        <<: [*defaults, *more]
        summary: 'own "{{ .data.emoji }}"'
`)
	res := set.Evaluate(templateEvent())
	want := `{"labels":["a"],"project":"SEC","summary":"own \"héllo wörld\""}`
	if got := string(res.Planned[0].Action); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	v := set.Explain(templateEvent())[0]
	if f := v.Actions[0].Fields; f["project"] != "SEC" || f["summary"] != `own "héllo wörld"` {
		t.Errorf("explain fields %v", f)
	}
}
