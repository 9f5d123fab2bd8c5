package bridge

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var testReceived = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func readExample(t testing.TB, vendor, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", vendor, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSource(t testing.TB, cfg SourceConfig) *Source {
	t.Helper()
	s, err := NewSource(cfg)
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	return s
}

func TestNormalizeExamples(t *testing.T) {
	tests := []struct {
		vendor, file string
		want         Event
	}{
		{VendorAgility, "analysis_done.json", Event{
			ID: "17b1434f-e8d9-4bea-af02-29a346b386a0", Type: "analysis_done",
			Time:     time.Date(2023, 11, 14, 20, 46, 56, 839588000, time.UTC),
			Severity: SeverityMedium, Subject: "c16fa458-c596-496d-8ee5-05761c5fb1b0",
			Title: "AGILITY analysis done: myfile.pcap (2 warnings)",
		}},
		{VendorAgility, "analysis_failed.json", Event{
			ID: "5d0c2a8e-3f71-4c1b-9a36-8e2f4b7d1c90", Type: "analysis_done",
			Time:     time.Date(2023, 11, 15, 8, 12, 3, 417205000, time.UTC),
			Severity: SeverityHigh, Subject: "9e4b7c21-0d5a-4f3e-b812-6a1f0c3d7e55",
			Title: "AGILITY analysis done: myfile.pcap (2 failures, 1 warning)",
		}},
		{VendorAgility, "analysis_error.json", Event{
			ID: "b3a9e6f2-71c4-4d08-8f5e-2c6d9a0b4e17", Type: "analysis_done",
			Time:     time.Date(2023, 11, 15, 9, 30, 12, 4551000, time.UTC),
			Severity: SeverityHigh, Subject: "0f6e2d94-8b3c-4a71-95d2-c7e1a4b8f306",
			Title: "AGILITY analysis failed: capture-2023-11-15.pcap (error: pcap parsing failed: truncated packet at offset 1048576)",
		}},
		{VendorSecureagentics, "alert.triggered.json", Event{
			ID: "evt_abc123", Type: "alert.triggered",
			Time:     time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC),
			Severity: SeverityHigh, Subject: "alrt_xyz",
			Title: "Secureagentics alert triggered: Rate limit exceeded: 150 prompts/min (agent agt_abc123)",
		}},
		{VendorSecureagentics, "policy.violated.json", Event{
			ID: "evt_7Hq2mK9pLx", Type: "policy.violated",
			Time:     time.Date(2024, 1, 15, 11, 2, 47, 0, time.UTC),
			Severity: SeverityHigh, Subject: "alrt_4fd81c",
			Title: "Secureagentics policy violated: Agent attempted to upload a file to an external host (agent agt_abc123)",
		}},
		{VendorSecureagentics, "agent.registered.json", Event{
			ID: "evt_R3gA9tW2vN", Type: "agent.registered",
			Time:     time.Date(2024, 1, 14, 16, 45, 12, 0, time.UTC),
			Severity: SeverityInfo, Subject: "agt_f00d42",
			Title: "Secureagentics agent registered: agent agt_f00d42",
		}},
		{VendorSecureagentics, "agent.error.json", Event{
			ID: "evt_E9rX1bQ6sZ", Type: "agent.error",
			Time:     time.Date(2024, 1, 15, 12, 18, 5, 512000000, time.UTC),
			Severity: SeverityMedium, Subject: "agt_abc123",
			Title: "Secureagentics agent error: Tool call search_tickets timed out after 30s (agent agt_abc123)",
		}},
		{VendorAntly, "profile.Customer-create.json", Event{
			Type:     "profile.Customer:create",
			Time:     time.Date(2024, 8, 21, 10, 15, 0, 0, time.UTC),
			Severity: SeverityInfo, Subject: "12345",
			Title: "Antly profile.Customer:create 12345",
		}},
		{VendorAntly, "profile.Customer-update.json", Event{
			Type:     "profile.Customer:update",
			Time:     time.Date(2024, 8, 22, 14, 3, 27, 0, time.UTC),
			Severity: SeverityInfo, Subject: "12345",
			Title: "Antly profile.Customer:update 12345",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.vendor+"/"+tt.file, func(t *testing.T) {
			body := readExample(t, tt.vendor, tt.file)
			src := mustSource(t, SourceConfig{Name: "src-" + tt.vendor, Vendor: tt.vendor, Token: "t"})
			ev, err := src.Normalize(body, testReceived)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			if tt.vendor == VendorAntly {
				if len(ev.ID) != 32 || strings.Trim(ev.ID, "0123456789abcdef") != "" {
					t.Errorf("antly id = %q, want 32 hex digits", ev.ID)
				}
				tt.want.ID = ev.ID
			}
			got := Event{ID: ev.ID, Type: ev.Type, Time: ev.Time, Severity: ev.Severity, Subject: ev.Subject, Title: ev.Title}
			if !got.Time.Equal(tt.want.Time) || got.Time.Location() != time.UTC {
				t.Errorf("time = %v, want %v (UTC)", got.Time, tt.want.Time)
			}
			got.Time, tt.want.Time = time.Time{}, time.Time{}
			if got.ID != tt.want.ID || got.Type != tt.want.Type || got.Severity != tt.want.Severity ||
				got.Subject != tt.want.Subject || got.Title != tt.want.Title {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if ev.Source != "src-"+tt.vendor || ev.Vendor != tt.vendor || !ev.Received.Equal(testReceived) {
				t.Errorf("source, vendor, received = %q, %q, %v", ev.Source, ev.Vendor, ev.Received)
			}
			if len(ev.Data) == 0 {
				t.Errorf("data is empty")
			}
		})
	}
}

func TestNormalizeKeepsDataUnchanged(t *testing.T) {
	ev, err := normalizeAgility(readExample(t, VendorAgility, "analysis_done.json"), testReceived)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := ev.Data["count_prediction_warning"].(int64); !ok || v != 2 {
		t.Errorf("count_prediction_warning = %#v, want int64 2", ev.Data["count_prediction_warning"])
	}
	if v := ev.Data["final_status"]; v != "true" {
		t.Errorf("final_status = %#v, want the string as sent", v)
	}
	if paths, ok := ev.Data["analyzed_file_paths"].([]any); !ok || len(paths) != 1 || paths[0] != "myfile.pcap" {
		t.Errorf("analyzed_file_paths = %#v", ev.Data["analyzed_file_paths"])
	}
}

func TestAntlyIDIsBodyHash(t *testing.T) {
	body := readExample(t, VendorAntly, "profile.Customer-create.json")
	a, err := normalizeAntly(body, testReceived)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := normalizeAntly(body, testReceived.Add(time.Hour))
	if a.ID != b.ID {
		t.Errorf("the same body gave ids %q and %q", a.ID, b.ID)
	}
	other := []byte(`{"event":"profile.Customer:create","data":{"id":"12345"}}`)
	c, _ := normalizeAntly(other, testReceived)
	if c.ID == a.ID {
		t.Errorf("different bodies gave the same id %q", a.ID)
	}
	// sha256 of `{"event":"x"}`, computed with sha256sum.
	d, _ := normalizeAntly([]byte(`{"event":"x"}`), testReceived)
	if want := "ebc2c4ea03938ee05e18c1a712d9fa02"; d.ID != want {
		t.Errorf("id = %q, want %q", d.ID, want)
	}
}

func TestAgilitySeverity(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"warnings", `{"final_status":"true","count_prediction_warning":2}`, SeverityMedium},
		{"clean", `{"final_status":"true","count_prediction_failure":0,"count_prediction_warning":0}`, SeverityInfo},
		{"bool true", `{"final_status":true}`, SeverityInfo},
		{"string TRUE", `{"final_status":"TRUE"}`, SeverityInfo},
		{"failures", `{"final_status":"true","count_prediction_failure":1}`, SeverityHigh},
		{"failures as string", `{"final_status":"true","count_prediction_failure":"3"}`, SeverityHigh},
		{"failures as float", `{"final_status":"true","count_prediction_failure":0.5}`, SeverityHigh},
		{"error message", `{"final_status":"true","error_message":"boom"}`, SeverityHigh},
		{"blank error message", `{"final_status":"true","error_message":"  "}`, SeverityInfo},
		{"status false string", `{"final_status":"false"}`, SeverityHigh},
		{"status false bool", `{"final_status":false,"count_prediction_warning":1}`, SeverityHigh},
		{"status missing", `{"count_prediction_warning":1}`, SeverityHigh},
		{"status null", `{"final_status":null}`, SeverityHigh},
		{"counts missing", `{"final_status":"true"}`, SeverityInfo},
		{"counts not numbers", `{"final_status":"true","count_prediction_failure":"n/a","count_prediction_warning":[1]}`, SeverityInfo},
		{"no data", ``, SeverityHigh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"id":"a1","event_name":"analysis_done"`
			if tt.data != "" {
				body += `,"data":` + tt.data
			}
			body += "}"
			ev, err := normalizeAgility([]byte(body), testReceived)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Severity != tt.want {
				t.Errorf("severity = %q, want %q", ev.Severity, tt.want)
			}
		})
	}
}

func TestSecureagenticsSeverityAndTitle(t *testing.T) {
	tests := []struct {
		typ, data, sev, title, subject string
	}{
		{"alert.triggered", `{"alert_id":"al1"}`, SeverityHigh, "Secureagentics alert triggered: al1", "al1"},
		{"policy.violated", `{"alert_id":"al1","agent_id":"ag1"}`, SeverityHigh, "Secureagentics policy violated: al1 (agent ag1)", "al1"},
		{"agent.error", `{"agent_id":"ag1","message":"out of\nmemory"}`, SeverityMedium, "Secureagentics agent error: out of memory (agent ag1)", "ag1"},
		{"agent.registered", `{"agent_id":"ag1"}`, SeverityInfo, "Secureagentics agent registered: agent ag1", "ag1"},
		{"agent.updated", `{"agent_id":"ag1","details":"renamed"}`, SeverityInfo, "Secureagentics agent.updated: renamed (agent ag1)", "ag1"},
		{"ping", ``, SeverityInfo, "Secureagentics ping", ""},
		{"webhook.test", `{}`, SeverityInfo, "Secureagentics webhook.test", ""},
		{"alert.triggered", `{"alert_id":42,"details":{"nested":true}}`, SeverityHigh, "Secureagentics alert triggered: 42", "42"},
	}
	for _, tt := range tests {
		t.Run(tt.typ+tt.data, func(t *testing.T) {
			body := `{"id":"evt_1","type":"` + tt.typ + `"`
			if tt.data != "" {
				body += `,"data":` + tt.data
			}
			ev, err := normalizeSecureagentics([]byte(body+"}"), testReceived)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Severity != tt.sev || ev.Title != tt.title || ev.Subject != tt.subject {
				t.Errorf("severity, title, subject = %q, %q, %q; want %q, %q, %q", ev.Severity, ev.Title, ev.Subject, tt.sev, tt.title, tt.subject)
			}
		})
	}
}

// TestSecureagenticsPing checks that the test ping Secureagentics sends when
// a webhook is saved, whatever its exact shape beyond id and type, is taken.
func TestSecureagenticsPing(t *testing.T) {
	for _, body := range []string{
		`{"id":"evt_test","type":"ping"}`,
		`{"id":"evt_test","type":"ping","timestamp":"2024-01-15T10:30:00Z","data":{}}`,
		`{"id":"evt_test","type":"webhook.test","data":null}`,
		`{"id":"evt_test","type":"test","timestamp":null,"data":{"message":"This is a test event"}}`,
		`{"id":"evt_test","type":"alert.triggered","timestamp":"","data":{"alert_id":"alrt_test","agent_id":"agt_test","details":"Test event"},"test":true}`,
	} {
		ev, err := normalizeSecureagentics([]byte(body), testReceived)
		if err != nil {
			t.Errorf("%s: %v", body, err)
			continue
		}
		if ev.ID != "evt_test" || !ValidSeverity(ev.Severity) || ev.Data == nil {
			t.Errorf("%s: got %+v", body, ev)
		}
	}
}

func TestAgilityTitles(t *testing.T) {
	tests := []struct{ typ, data, want string }{
		{"analysis_done", `{"final_status":"true","file_path":"a.pcap"}`, "AGILITY analysis done: a.pcap"},
		{"analysis_done", `{"final_status":"true","analyzed_file_paths":["b.pcap"],"count_prediction_warning":1}`, "AGILITY analysis done: b.pcap (1 warning)"},
		{"analysis_done", `{"final_status":"true","analysis_id":"an1","count_prediction_failure":1}`, "AGILITY analysis done: an1 (1 failure)"},
		{"analysis_done", `{"final_status":"false","file_path":"c.pcap"}`, "AGILITY analysis failed: c.pcap"},
		{"analysis_done", ``, "AGILITY analysis failed"},
		{"analysis_started", `{"file_path":"d.pcap"}`, "AGILITY analysis started: d.pcap"},
		{"analysis_done", `{"final_status":"true","file_path":"` + strings.Repeat("é", 300) + `"}`, "AGILITY analysis done: " + strings.Repeat("é", 176) + "…"},
	}
	for _, tt := range tests {
		body := `{"id":"a1","event_name":"` + tt.typ + `"`
		if tt.data != "" {
			body += `,"data":` + tt.data
		}
		ev, err := normalizeAgility([]byte(body+"}"), testReceived)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Title != tt.want {
			t.Errorf("%s: title = %q, want %q", body, ev.Title, tt.want)
		}
		if n := utf8.RuneCountInString(ev.Title); n > maxTitleRunes {
			t.Errorf("title has %d runes", n)
		}
	}
}

func TestNormalizeTimes(t *testing.T) {
	tests := []struct {
		name, value string
		want        time.Time
	}{
		{"rfc3339 Z", `"2024-01-15T10:30:00Z"`, time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)},
		{"rfc3339 offset", `"2024-01-15T12:30:00.5+02:00"`, time.Date(2024, 1, 15, 10, 30, 0, 5e8, time.UTC)},
		{"no zone is UTC", `"2023-11-14T20:46:56.839588"`, time.Date(2023, 11, 14, 20, 46, 56, 839588000, time.UTC)},
		{"no zone no fraction", `"2023-11-14T20:46:56"`, time.Date(2023, 11, 14, 20, 46, 56, 0, time.UTC)},
		{"space separator", `"2023-11-14 20:46:56.1"`, time.Date(2023, 11, 14, 20, 46, 56, 1e8, time.UTC)},
		{"offset without colon", `"2024-01-15T11:30:00+0100"`, time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)},
		{"epoch seconds", `1705314600`, time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)},
		{"epoch millis", `1705314600250`, time.Date(2024, 1, 15, 10, 30, 0, 25e7, time.UTC)},
		{"missing", ``, testReceived},
		{"null", `null`, testReceived},
		{"garbage", `"yesterday"`, testReceived},
		{"empty", `""`, testReceived},
		{"object", `{}`, testReceived},
		{"negative", `-5`, testReceived},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range []struct {
				vendor, body string
				fn           func([]byte, time.Time) (*Event, error)
			}{
				{VendorAgility, `{"id":"1","event_name":"analysis_done"%s}`, normalizeAgility},
				{VendorSecureagentics, `{"id":"1","type":"alert.triggered"%s}`, normalizeSecureagentics},
				{VendorAntly, `{"event":"profile.Customer:create"%s}`, normalizeAntly},
			} {
				field := ""
				if tt.value != "" {
					key := "timestamp"
					if v.vendor == VendorAgility {
						key = "created"
					}
					field = `,"` + key + `":` + tt.value
				}
				ev, err := v.fn([]byte(strings.Replace(v.body, "%s", field, 1)), testReceived)
				if err != nil {
					t.Fatalf("%s: %v", v.vendor, err)
				}
				if !ev.Time.Equal(tt.want) {
					t.Errorf("%s: time = %v, want %v", v.vendor, ev.Time, tt.want)
				}
			}
		})
	}
}

func TestNormalizeBadRequests(t *testing.T) {
	tests := []struct {
		name, vendor, body, want string
	}{
		{"empty", VendorAgility, ``, "body is empty"},
		{"broken json", VendorAgility, `{"id":`, "body is not valid JSON"},
		{"trailing data", VendorSecureagentics, `{"id":"1","type":"x"} {}`, "body is not valid JSON"},
		{"array", VendorSecureagentics, `[{"id":"1"}]`, "body is not a JSON object"},
		{"string", VendorAntly, `"hello"`, "body is not a JSON object"},
		{"agility no id", VendorAgility, `{"event_name":"analysis_done"}`, `required field "id" is missing`},
		{"agility no event_name", VendorAgility, `{"id":"1"}`, `required field "event_name" is missing`},
		{"agility empty id", VendorAgility, `{"id":"","event_name":"analysis_done"}`, `required field "id" is empty`},
		{"agility numeric type", VendorAgility, `{"id":"1","event_name":7}`, `field "event_name" must be a string`},
		{"secureagentics no id", VendorSecureagentics, `{"type":"alert.triggered"}`, `required field "id" is missing`},
		{"secureagentics null id", VendorSecureagentics, `{"id":null,"type":"alert.triggered"}`, `field "id" must be a string or an integer, got null`},
		{"secureagentics object id", VendorSecureagentics, `{"id":{},"type":"alert.triggered"}`, `field "id" must be a string or an integer, got an object`},
		{"array id", VendorSecureagentics, `{"id":["e"],"type":"x"}`, `field "id" must be a string or an integer, got an array`},
		{"boolean id", VendorAgility, `{"id":false,"event_name":"x"}`, `field "id" must be a string or an integer, got a boolean`},
		{"fractional id", VendorAgility, `{"id":1.5,"event_name":"x"}`, `field "id" must be a string or an integer, got a number with a fraction`},
		{"id with a decimal point", VendorAgility, `{"id":1.0,"event_name":"x"}`, `field "id" must be a string or an integer, got a number with a decimal point or an exponent`},
		{"id with an exponent", VendorSecureagentics, `{"id":1e2,"type":"x"}`, `field "id" must be a string or an integer, got a number with a decimal point or an exponent`},
		{"id beyond float64", VendorSecureagentics, `{"id":1e400,"type":"x"}`, `field "id" must be a string or an integer, got a number with a decimal point or an exponent`},
		{"null type", VendorSecureagentics, `{"id":"1","type":null}`, `field "type" must be a string, got null`},
		{"integer type", VendorSecureagentics, `{"id":"1","type":3}`, `field "type" must be a string, got an integer`},
		{"NUL in id", VendorSecureagentics, `{"id":"evt\u0000","type":"x"}`, `field "id" contains a NUL character`},
		{"NUL in type", VendorAgility, `{"id":"1","event_name":"a\u0000b"}`, `field "event_name" contains a NUL character`},
		{"invalid UTF-8 id", VendorSecureagentics, "{\"id\":\"u\xff\",\"type\":\"x\"}", "body is not valid UTF-8 JSON (invalid UTF-8 at byte offset 8)"},
		{"invalid UTF-8 key", VendorAgility, "{\"id\":\"1\",\"event_name\":\"x\",\"data\":{\"\xe2\x82\":1}}", "body is not valid UTF-8 JSON (invalid UTF-8 at byte offset 36)"},
		{"invalid UTF-8 in antly body", VendorAntly, "{\"event\":\"x\",\"data\":{\"id\":\"\xfe\"}}", "body is not valid UTF-8 JSON (invalid UTF-8 at byte offset 27)"},
		{"invalid UTF-8 outside a string", VendorAntly, "{\"event\":\"x\"}\xff", "body is not valid UTF-8 JSON (invalid UTF-8 at byte offset 13)"},
		{"lone surrogate escape", VendorSecureagentics, `{"id":"u\udfff","type":"x"}`, "body is not valid JSON: invalid surrogate pair"},
		{"duplicate id", VendorSecureagentics, `{"id":"a","type":"x","id":"b"}`, `duplicate key "id" in the envelope`},
		{"duplicate type", VendorSecureagentics, `{"type":"x","id":"a","type":"y"}`, `duplicate key "type" in the envelope`},
		{"duplicate event_name", VendorAgility, `{"id":"a","event_name":"x","event_name":"x"}`, `duplicate key "event_name" in the envelope`},
		{"duplicate event", VendorAntly, `{"event":"a","data":{},"event":"b"}`, `duplicate key "event" in the envelope`},
		{"duplicate data", VendorAgility, `{"id":"a","event_name":"x","data":{"a":1},"data":{}}`, `duplicate key "data" in the envelope`},
		{"duplicate other top-level key", VendorSecureagentics, `{"id":"a","type":"x","timestamp":1,"timestamp":2}`, `duplicate key "timestamp" in the envelope`},
		{"duplicate key in data", VendorAntly, `{"event":"a","data":{"id":"1","id":"2"}}`, `duplicate key "id" in data`},
		{"duplicate key deep in data", VendorSecureagentics, `{"id":"a","type":"x","data":{"items":[{},{"k":{"a b":{"z":1,"z":2}}}]}}`, `duplicate key "z" in data.items[1].k["a b"]`},
		{"secureagentics no type", VendorSecureagentics, `{"id":"evt_1"}`, `required field "type" is missing`},
		{"antly no event", VendorAntly, `{"timestamp":"2024-08-21T10:15:00Z","data":{}}`, `required field "event" is missing`},
		{"data array", VendorAntly, `{"event":"x","data":[1]}`, `field "data" must be a JSON object`},
		{"data string", VendorSecureagentics, `{"id":"1","type":"x","data":"s"}`, `field "data" must be a JSON object`},
		{"huge id", VendorSecureagentics, `{"id":"` + strings.Repeat("x", 600) + `","type":"x"}`, `field "id" is longer than 512 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := mustSource(t, SourceConfig{Name: "s", Vendor: tt.vendor, Insecure: true})
			ev, err := src.Normalize([]byte(tt.body), testReceived)
			if err == nil {
				t.Fatalf("no error; event %+v", ev)
			}
			var bad *BadRequestError
			if !errors.As(err, &bad) {
				t.Fatalf("error %T %v is not a *BadRequestError", err, err)
			}
			if !strings.HasPrefix(bad.Msg, tt.want) {
				t.Errorf("message = %q, want it to start with %q", bad.Msg, tt.want)
			}
		})
	}
}

// TestNormalizeIDs checks the ids that are taken: any string but one with a
// NUL, and integers as their decimal text, however large.
func TestNormalizeIDs(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{`"evt_1"`, "evt_1"},
		{`"u\ufffd"`, "u\ufffd"},
		{"\"u\xef\xbf\xbd\"", "u\ufffd"},
		{`42`, "42"},
		{`-7`, "-7"},
		{`18446744073709551616`, "18446744073709551616"},
	} {
		body := `{"id":` + tc.id + `,"type":"x"}`
		ev, err := normalizeSecureagentics([]byte(body), testReceived)
		if err != nil || ev.ID != tc.want {
			t.Errorf("id %s: %+v, %v; want id %q", tc.id, ev, err, tc.want)
		}
	}
}

func TestNormalizeDataDefaults(t *testing.T) {
	for _, body := range []string{`{"event":"x"}`, `{"event":"x","data":null}`} {
		ev, err := normalizeAntly([]byte(body), testReceived)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Data == nil || len(ev.Data) != 0 {
			t.Errorf("%s: data = %#v, want {}", body, ev.Data)
		}
	}
	ev, err := normalizeAgility([]byte(`{"id":12,"event_name":"analysis_done"}`), testReceived)
	if err != nil || ev.ID != "12" {
		t.Errorf("integer id: %v, %v", ev, err)
	}
}

func TestSeverityOverride(t *testing.T) {
	tests := []struct {
		name, expr, body, want string
	}{
		{"by type", `type endsWith ":delete" ? "medium" : "info"`, `{"event":"profile.Customer:delete"}`, SeverityMedium},
		{"by type, else", `type endsWith ":delete" ? "medium" : "info"`, `{"event":"profile.Customer:create"}`, SeverityInfo},
		{"by data", `data.vip == true ? "critical" : severity`, `{"event":"x","data":{"vip":true}}`, SeverityCritical},
		{"runtime error keeps default", `data.count + 1 > 3 ? "high" : "low"`, `{"event":"x"}`, SeverityInfo},
		{"not a severity keeps default", `data.level`, `{"event":"x","data":{"level":"urgent"}}`, SeverityInfo},
		{"data value that is one", `data.level`, `{"event":"x","data":{"level":"low"}}`, SeverityLow},
		{"non-string keeps default", `data.level`, `{"event":"x","data":{"level":3}}`, SeverityInfo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := mustSource(t, SourceConfig{Name: "antly", Vendor: VendorAntly, Token: "tok", Severity: tt.expr})
			ev, err := src.Normalize([]byte(tt.body), testReceived)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Severity != tt.want {
				t.Errorf("severity = %q, want %q", ev.Severity, tt.want)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"a\n\tb  c\r\n", 10, "a b c"},
		{"  lead", 10, "lead"},
		{"abcdef", 4, "abc…"},
		{"日本語テキスト", 5, "日本語テ…"},
		{"a\u202eb\x00c", 10, "a b c"},
		{"\xff\xfebad", 10, "bad"},
		{"plain words", 11, "plain words"},
		{"plain words", 10, "plain wor…"},
		{"two  spaces", 20, "two spaces"},
		{"trailing ", 20, "trailing"},
		{"tab\there", 20, "tab here"},
		{"del\x7f", 20, "del"},
		{"", 5, ""},
	}
	for _, tt := range tests {
		if got := oneLine(tt.in, tt.max); got != tt.want {
			t.Errorf("oneLine(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

// FuzzOneLine checks that the shortcut for plain lines returns what
// rebuilding the line rune by rune returns.
func FuzzOneLine(f *testing.F) {
	for _, s := range []string{"plain words", "two  spaces", " lead", "trail ", "a\tb", "é", "~}|{", "x\x7f"} {
		f.Add(s, 5)
		f.Add(s, 200)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 2 || max > 1000 {
			return
		}
		if got, want := oneLine(s, max), rebuildLine(s, max); got != want {
			t.Fatalf("oneLine(%q, %d) = %q; rune by rune %q", s, max, got, want)
		}
	})
}

// checkNormalized holds for every normalizer result: an error is a
// *BadRequestError, an event is complete and its title one short line.
func checkNormalized(t *testing.T, ev *Event, err error) {
	if err != nil {
		var bad *BadRequestError
		if !errors.As(err, &bad) || bad.Msg == "" {
			t.Fatalf("error %T %v is not a *BadRequestError", err, err)
		}
		if ev != nil {
			t.Fatalf("event and error")
		}
		return
	}
	if ev.ID == "" || ev.Type == "" || ev.Data == nil || !ValidSeverity(ev.Severity) || ev.Time.IsZero() {
		t.Fatalf("incomplete event %+v", ev)
	}
	if utf8.RuneCountInString(ev.Title) > maxTitleRunes || strings.ContainsAny(ev.Title, "\r\n\t") || !utf8.ValidString(ev.Title) {
		t.Fatalf("bad title %q", ev.Title)
	}
	if _, merr := ev.MarshalJSON(); merr != nil {
		t.Fatalf("marshal: %v", merr)
	}
}

func fuzzNormalizer(f *testing.F, fn func([]byte, time.Time) (*Event, error), seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"data":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := fn(body, testReceived)
		checkNormalized(t, ev, err)
		// What is taken is unambiguous: valid UTF-8, an id without a NUL.
		if err == nil && (!utf8.Valid(body) || strings.IndexByte(ev.ID, 0) >= 0) {
			t.Fatalf("accepted %q as event id %q", body, ev.ID)
		}
	})
}

func FuzzNormalizeAgility(f *testing.F) {
	fuzzNormalizer(f, normalizeAgility,
		readExample(f, VendorAgility, "analysis_done.json"),
		readExample(f, VendorAgility, "analysis_failed.json"),
		readExample(f, VendorAgility, "analysis_error.json"),
		[]byte(`{"id":1,"event_name":"analysis_done","created":1700000000,"data":{"final_status":true,"count_prediction_failure":"2"}}`))
}

func FuzzNormalizeSecureagentics(f *testing.F) {
	fuzzNormalizer(f, normalizeSecureagentics,
		readExample(f, VendorSecureagentics, "alert.triggered.json"),
		readExample(f, VendorSecureagentics, "policy.violated.json"),
		readExample(f, VendorSecureagentics, "agent.registered.json"),
		readExample(f, VendorSecureagentics, "agent.error.json"),
		[]byte(`{"id":"evt_test","type":"ping"}`))
}

func FuzzNormalizeAntly(f *testing.F) {
	fuzzNormalizer(f, normalizeAntly,
		readExample(f, VendorAntly, "profile.Customer-create.json"),
		readExample(f, VendorAntly, "profile.Customer-update.json"))
}

// benchBody is a ~1 KB Secureagentics alert, the shape `bridge bench` sends.
func benchBody(b *testing.B) []byte {
	body, err := json.Marshal(map[string]any{"id": "bench-0a1b2c3d-0000001", "type": "alert.triggered", "timestamp": "2026-11-23T10:00:00Z",
		"data": map[string]any{"alert_id": "alt_7f3e", "agent_id": "agt_abc123", "severity": "high", "details": "Rate limit exceeded: 150 prompts/min",
			"prompt_count": 150, "notes": strings.Repeat("Agent support-triage-bot sent 150 prompts in the last minute. ", 12)}})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkDecode compares the webhook decoder with DecodeObject, which
// checks neither UTF-8 nor duplicate keys, on benchBody.
func BenchmarkDecode(b *testing.B) {
	body := benchBody(b)
	for _, bc := range []struct {
		name   string
		decode func([]byte) (map[string]any, error)
	}{{"lenient", DecodeObject}, {"strict", decodeStrict}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNormalize normalizes benchBody.
func BenchmarkNormalize(b *testing.B) {
	body := benchBody(b)
	received := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := normalizeSecureagentics(body, received); err != nil {
			b.Fatal(err)
		}
	}
}
