package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"bridge/bridge"
)

// The Set is what the pipeline needs.
var _ bridge.RuleSet = (*Set)(nil)

// fakeConfig is a sink config for tests.
type fakeConfig struct {
	Project string `yaml:"project"`
}

func (c *fakeConfig) Validate() error { return nil }

// fakeAction is a Jira-like action struct for tests.
type fakeAction struct {
	Project     string         `yaml:"project" json:"project"`
	Summary     string         `yaml:"summary" json:"summary"`
	Description string         `yaml:"description" json:"description"`
	Labels      []string       `yaml:"labels" json:"labels"`
	Count       int            `yaml:"count" json:"count"`
	Urgent      bool           `yaml:"urgent" json:"urgent"`
	Fields      map[string]any `yaml:"fields" json:"fields"`
	OnDuplicate string         `yaml:"on_duplicate" json:"on_duplicate"`
	Dedupe      *string        `yaml:"dedupe" json:"dedupe"`
}

func (a *fakeAction) Validate(cfg bridge.SinkConfig) error {
	var errs []error
	if a.Project == "" && cfg.(*fakeConfig).Project == "" {
		errs = append(errs, bridge.FieldError("project", "is required (or set project on the sink)"))
	}
	if a.Summary == "" {
		errs = append(errs, bridge.FieldError("summary", "is required"))
	}
	switch a.OnDuplicate {
	case "", "comment", "skip":
	default:
		errs = append(errs, bridge.FieldErrorf("on_duplicate", "%q is not comment or skip", a.OnDuplicate))
	}
	return errors.Join(errs...)
}

// chatAction is a Slack-like action struct for tests.
type chatAction struct {
	Channel  string `yaml:"channel" json:"channel"`
	Text     string `yaml:"text" json:"text"`
	ThreadBy string `yaml:"thread_by" json:"thread_by"`
}

func (a *chatAction) Validate(bridge.SinkConfig) error {
	if a.Text == "" {
		return bridge.FieldError("text", "is required")
	}
	return nil
}

type nopConfig struct{}

func (nopConfig) Validate() error { return nil }

func testSinks() map[string]SinkInfo {
	tracker := &bridge.SinkType{
		NewConfig: func() bridge.SinkConfig { return &fakeConfig{} },
		NewAction: func() bridge.Action { return &fakeAction{} },
	}
	chat := &bridge.SinkType{
		NewConfig: func() bridge.SinkConfig { return nopConfig{} },
		NewAction: func() bridge.Action { return &chatAction{} },
	}
	return map[string]SinkInfo{
		"ops-jira":     {Type: tracker, Config: &fakeConfig{Project: "OPS"}},
		"bare-jira":    {Type: tracker, Config: &fakeConfig{}},
		"secops-slack": {Type: chat, Config: nopConfig{}},
	}
}

// parseRules reads a `rules:` document the way the config loader does,
// filling the lines and the column where each `when` starts.
func parseRules(t testing.TB, src string) []bridge.RuleConfig {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("test rules: %v", err)
	}
	seq := mappingValue(doc.Content[0], "rules")
	var out []bridge.RuleConfig
	for _, rn := range seq.Content {
		rc := bridge.RuleConfig{Line: rn.Line}
		for i := 0; i+1 < len(rn.Content); i += 2 {
			k, v := rn.Content[i], rn.Content[i+1]
			switch k.Value {
			case "name":
				rc.Name = v.Value
			case "when":
				rc.When = v.Value
				rc.WhenLine, rc.WhenCol = v.Line, v.Column
				switch {
				case v.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0:
					rc.WhenCol++
				case v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
					// The expression starts on the next line, at its indentation.
					next := strings.Split(src, "\n")[v.Line]
					rc.WhenLine, rc.WhenCol = v.Line+1, len(next)-len(strings.TrimLeft(next, " "))+1
				}
			case "stop":
				rc.Stop = v.Value == "true"
			case "actions":
				for _, an := range v.Content {
					ac := bridge.ActionConfig{Node: an, Line: an.Line}
					if s := mappingValue(an, "sink"); s != nil {
						ac.Sink = s.Value
					}
					rc.Actions = append(rc.Actions, ac)
				}
			}
		}
		out = append(out, rc)
	}
	return out
}

// mustCompile compiles a rules document and fails the test on problems.
func mustCompile(t testing.TB, src string) *Set {
	t.Helper()
	set, probs := Compile("rules.yaml", parseRules(t, src), testSinks())
	if len(probs) > 0 {
		t.Fatalf("compile: %v", probs)
	}
	return set
}

// loadEvent normalizes a vendor example from testdata into an Event, the
// way SPEC 4.1 describes (enough of it for rule tests).
func loadEvent(t testing.TB, name string) *bridge.Event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := normalizeForTest(strings.SplitN(name, "_", 2)[0], b)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// normalizeForTest is a small stand-in for the real normalizers; source
// names equal vendor names.
func normalizeForTest(source string, body []byte) (*bridge.Event, error) {
	obj, err := bridge.DecodeObject(body)
	if err != nil {
		return nil, err
	}
	data, _ := obj["data"].(map[string]any)
	if data == nil {
		data = map[string]any{}
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	parseTime := func(s string) time.Time {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
			if tm, err := time.Parse(layout, s); err == nil {
				return tm.UTC()
			}
		}
		return time.Time{}
	}
	ev := &bridge.Event{Source: source, Vendor: source, Data: data, Severity: "info",
		Received: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	switch source {
	case "agility":
		ev.ID, ev.Type, ev.Time = str(obj, "id"), str(obj, "event_name"), parseTime(str(obj, "created"))
		ev.Subject = str(data, "analysis_id")
		ev.Title = fmt.Sprintf("AGILITY analysis %s of %s done", ev.Subject, str(data, "file_path"))
		switch {
		case data["count_prediction_failure"] != int64(0) || str(data, "error_message") != "" || str(data, "final_status") != "true":
			ev.Severity = "high"
		case data["count_prediction_warning"] != int64(0):
			ev.Severity = "medium"
		}
	case "secureagentics":
		ev.ID, ev.Type, ev.Time = str(obj, "id"), str(obj, "type"), parseTime(str(obj, "timestamp"))
		ev.Subject = str(data, "alert_id")
		if ev.Subject == "" {
			ev.Subject = str(data, "agent_id")
		}
		ev.Title = fmt.Sprintf("Secureagentics %s: %s", ev.Type, str(data, "details"))
		switch ev.Type {
		case "policy.violated", "alert.triggered":
			ev.Severity = "high"
		case "agent.error":
			ev.Severity = "medium"
		}
	case "antly":
		ev.ID, ev.Type, ev.Time = "0123456789abcdef0123456789abcdef", str(obj, "event"), parseTime(str(obj, "timestamp"))
		ev.Subject = str(data, "id")
		ev.Title = "Antly " + ev.Type
	default:
		return nil, fmt.Errorf("unknown source %q", source)
	}
	return ev, nil
}
