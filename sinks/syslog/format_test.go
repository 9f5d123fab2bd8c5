package syslog

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"bridge/bridge"
	"bridge/sinks/internal/sinktest"
	"bridge/sinks/internal/tlsconf"

	"github.com/leodido/go-syslog/v4/rfc5424"
	"gopkg.in/yaml.v3"
)

// testEvent is a Secureagentics alert with every field set.
func testEvent(id string) *bridge.Event {
	return &bridge.Event{
		ID:       id,
		Source:   "secureagentics",
		Vendor:   "secureagentics",
		Type:     "alert.triggered",
		Time:     time.Date(2026, 11, 20, 10, 15, 30, 123456789, time.UTC),
		Received: time.Date(2026, 11, 20, 10, 15, 31, 0, time.UTC),
		Severity: bridge.SeverityHigh,
		Title:    "Rate limit exceeded",
		Subject:  "alrt_xyz",
		Data: map[string]any{
			"alert_id": "alrt_xyz",
			"agent_id": "agt_abc123",
			"details":  "Rate limit exceeded: 150 prompts/min",
		},
	}
}

// nastyEvent has every character that needs escaping somewhere, and
// non-ASCII text, in every field a message carries.
func nastyEvent(id string) *bridge.Event {
	ev := testEvent(id + `"q\b]s|p=e`)
	ev.Source = `src]"\|=`
	ev.Type = "alert triggered:é\n"
	ev.Title = "Disk \"full\" on db|01 = 95% \\ é 日本 🚨\nline2\rend"
	ev.Subject = "subj=1|2\\3\n"
	ev.Data = map[string]any{
		"user_id":       "jo=e|\\ 日本",
		"agent_id":      "agt]\"x",
		"file_path":     `C:\captures\é 🚨.pcap`,
		"error_message": "line1\nline2",
		"details":       "ä]\"\\",
		"count":         int64(2),
	}
	return ev
}

func TestSeverity(t *testing.T) {
	for _, tc := range []struct {
		sev       string
		sys, cef  int
		pri0, pri int // PRI with facility user (1) and local4 (20)
	}{
		{bridge.SeverityInfo, 6, 1, 14, 166},
		{bridge.SeverityLow, 5, 3, 13, 165},
		{bridge.SeverityMedium, 4, 5, 12, 164},
		{bridge.SeverityHigh, 3, 8, 11, 163},
		{bridge.SeverityCritical, 2, 10, 10, 162},
	} {
		t.Run(tc.sev, func(t *testing.T) {
			if got := Severity(tc.sev); got != tc.sys {
				t.Errorf("Severity = %d, want %d", got, tc.sys)
			}
			if got := CEFSeverity(tc.sev); got != tc.cef {
				t.Errorf("CEFSeverity = %d, want %d", got, tc.cef)
			}
			for _, f := range []struct{ facility, pri int }{{1, tc.pri0}, {20, tc.pri}} {
				fm := &formatter{facility: f.facility, hostname: "h", procID: "1"}
				ev := testEvent("e1")
				ev.Severity = tc.sev
				b, err := fm.message(ev, FormatJSON)
				if err != nil {
					t.Fatal(err)
				}
				m := parse5424(t, b)
				if int(*m.Priority) != f.pri {
					t.Errorf("facility %d: PRI = %d, want %d", f.facility, *m.Priority, f.pri)
				}
			}
		})
	}
}

func TestParseFacility(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		bad  bool
	}{
		{"kern", 0, false}, {"user", 1, false}, {"daemon", 3, false}, {"auth", 4, false},
		{"authpriv", 10, false}, {"local0", 16, false}, {"LOCAL4", 20, false}, {"local7", 23, false},
		{"20", 20, false}, {"0", 0, false}, {"23", 23, false},
		{"24", 0, true}, {"-1", 0, true}, {"local8", 0, true}, {"", 0, true}, {"locals", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseFacility(tc.in)
			if (err != nil) != tc.bad || got != tc.want {
				t.Errorf("ParseFacility(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.bad)
			}
		})
	}
}

func TestMsgID(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"valid", "profile.Customer:create", "profile.Customer:create"},
		{"agility", "analysis_done", "analysis_done"},
		{"space and controls", "alert triggered\t\n", "alert_triggered__"},
		{"non-ASCII", "é日本🚨x", "____x"},
		{"DEL and NUL", "a\x7fb\x00c", "a_b_c"},
		{"invalid UTF-8", "a\xffb", "a_b"},
		{"cut to 32", strings.Repeat("abcdefghij", 4), "abcdefghijabcdefghijabcdefghijab"},
		{"cut after replacing", strings.Repeat("é", 40), strings.Repeat("_", 32)},
		{"exactly 32", strings.Repeat("x", 32), strings.Repeat("x", 32)},
		{"empty", "", "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MsgID(tc.in); got != tc.want {
				t.Errorf("MsgID(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	if got := Hostname(strings.Repeat("h", 300)); len(got) != 255 {
		t.Errorf("Hostname cut to %d characters, want 255", len(got))
	}
	if got := Hostname("my host"); got != "my_host" {
		t.Errorf("Hostname(%q) = %q", "my host", got)
	}
}

// TestMessageLayout pins the exact bytes of a message.
func TestMessageLayout(t *testing.T) {
	fm := &formatter{facility: 16, hostname: "bridge-01", procID: "4242", version: "1.2.3", bom: true}
	ev := testEvent("evt_abc123")
	got, err := fm.message(ev, FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(ev)
	want := `<131>1 2026-11-20T10:15:30.123456Z bridge-01 bridge 4242 alert.triggered ` +
		`[bridge@32473 id="evt_abc123" source="secureagentics" severity="high"] ` + "\xEF\xBB\xBF" + string(js)
	if string(got) != want {
		t.Errorf("message\n got %q\nwant %q", got, want)
	}

	fm.bom = false
	got, _ = fm.message(ev, FormatCEF)
	want = `<131>1 2026-11-20T10:15:30.123456Z bridge-01 bridge 4242 alert.triggered ` +
		`[bridge@32473 id="evt_abc123" source="secureagentics" severity="high"] ` +
		`CEF:0|Bridge|bridge|1.2.3|alert.triggered|Rate limit exceeded|8|rt=1795169730123 externalId=evt_abc123 ` +
		`cat=secureagentics cs1Label=source cs1=secureagentics cs2Label=subject cs2=alrt_xyz ` +
		`deviceExternalId=agt_abc123 msg=Rate limit exceeded`
	if string(got) != want {
		t.Errorf("cef message\n got %q\nwant %q", got, want)
	}
}

func TestTimestamp(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   time.Time
		want string
	}{
		{"nanoseconds cut to micro", time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), "2026-01-02T03:04:05.123456Z"},
		{"no fraction", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05Z"},
		{"trailing zeros dropped", time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC), "2026-01-02T03:04:05.12Z"},
		{"converted to UTC", time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 2*3600)), "2026-01-02T01:04:05Z"},
		{"zero is NILVALUE", time.Time{}, "-"},
		{"year 10000 is NILVALUE", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendTimestamp(nil, tc.in)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestNastyMessageParses checks the escaping of every field against
// go-syslog's strict parser, with the BOM and without.
func TestNastyMessageParses(t *testing.T) {
	for _, format := range []string{FormatJSON, FormatCEF} {
		for _, withBOM := range []bool{true, false} {
			fm := &formatter{facility: 20, hostname: "h", procID: "1", version: "v|1", bom: withBOM}
			ev := nastyEvent("id")
			b, err := fm.message(ev, format)
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.Valid(b) {
				t.Errorf("%s: message is not valid UTF-8", format)
			}
			m := parse5424(t, b)
			checkMessage(t, m, ev, format, "v|1", withBOM)
		}
	}
}

func TestParamEscaping(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`plain`, ` k="plain"`},
		{`a"b`, ` k="a\"b"`},
		{`a\b`, ` k="a\\b"`},
		{`a]b`, ` k="a\]b"`},
		{`"\]`, ` k="\"\\\]"`},
		{`[=é 日本`, ` k="[=é 日本"`},
		{"bad\xffutf8", ` k="bad` + "\uFFFD" + `utf8"`},
	} {
		if got := string(appendParam(nil, "k", tc.in)); got != tc.want {
			t.Errorf("appendParam(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestCEFEscaping is the escaping table, with the reference vectors.
func TestCEFEscaping(t *testing.T) {
	t.Run("header", func(t *testing.T) {
		for _, tc := range []struct{ in, want string }{
			{"Disk full on db|01", `Disk full on db\|01`},
			{`back\slash`, `back\\slash`},
			{`\|`, `\\\|`},
			{"a=b", "a=b"},
			{"line1\nline2\r\nx", "line1 line2  x"},
			{"é 日本 🚨", "é 日本 🚨"},
		} {
			if got := CEFHeader(tc.in); got != tc.want {
				t.Errorf("CEFHeader(%q) = %q, want %q", tc.in, got, tc.want)
			}
		}
	})
	t.Run("extension", func(t *testing.T) {
		for _, tc := range []struct{ in, want string }{
			{"usage=95% line1\nline2", `usage\=95% line1\nline2`},
			{"https://x/y?a=b", `https://x/y?a\=b`},
			{"act=bang = !", `act\=bang \= !`},
			{`back\slash`, `back\\slash`},
			{"404 | not found", "404 | not found"},
			{"cr\rlf\n", `cr\rlf\n`},
			{`\=`, `\\\=`},
			{"é 日本 🚨", "é 日本 🚨"},
		} {
			if got := CEFExtension(tc.in); got != tc.want {
				t.Errorf("CEFExtension(%q) = %q, want %q", tc.in, got, tc.want)
			}
		}
	})
	t.Run("reference line", func(t *testing.T) {
		// The reference test vector, built from its raw values.
		got := "CEF:0|Acme|WebhookBridge|1.4.2|alert.disk_full|" + CEFHeader("Disk full on db|01") + "|7|" +
			"rt=1795440882000 shost=db01 msg=" + CEFExtension("usage=95% line1\nline2") +
			" cs1Label=ticket cs1=SEC-42 request=" + CEFExtension("https://x/y?a=b")
		want := `CEF:0|Acme|WebhookBridge|1.4.2|alert.disk_full|Disk full on db\|01|7|rt=1795440882000 shost=db01 msg=usage\=95% line1\nline2 cs1Label=ticket cs1=SEC-42 request=https://x/y?a\=b`
		if got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
		hdr, ext := parseCEF(t, want)
		if hdr[5] != "Disk full on db|01" || ext["msg"] != "usage=95% line1\nline2" || ext["request"] != "https://x/y?a=b" {
			t.Errorf("test parser reads %q %q", hdr, ext)
		}
	})
}

func TestCEFLine(t *testing.T) {
	t.Run("agility", func(t *testing.T) {
		ev := &bridge.Event{ID: "17b1434f", Source: "agility", Vendor: "agility", Type: "analysis_done",
			Time: time.UnixMilli(1700000000123).UTC(), Severity: bridge.SeverityMedium, Title: "Analysis done: 2 warnings",
			Subject: "c16fa458",
			Data: map[string]any{"analysis_id": "c16fa458", "file_path": "uploads/myfile.pcap",
				"user_id": "00000000-0000-0000-0000-000000000000", "error_message": ""}}
		want := `CEF:0|Bridge|bridge|2.0.0|analysis_done|Analysis done: 2 warnings|5|rt=1700000000123 externalId=17b1434f ` +
			`cat=agility cs1Label=source cs1=agility cs2Label=subject cs2=c16fa458 suser=00000000-0000-0000-0000-000000000000 ` +
			`fname=myfile.pcap filePath=uploads/myfile.pcap msg=Analysis done: 2 warnings`
		if got := CEF(ev, "2.0.0"); got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	})
	t.Run("no title: data summary", func(t *testing.T) {
		ev := testEvent("e")
		ev.Title = ""
		_, ext := parseCEF(t, CEF(ev, ""))
		if ext["msg"] != "Rate limit exceeded: 150 prompts/min" {
			t.Errorf("msg = %q", ext["msg"])
		}
		ev.Data = map[string]any{"id": "12345", "name": "John"}
		_, ext = parseCEF(t, CEF(ev, ""))
		if ext["msg"] != `{"id":"12345","name":"John"}` {
			t.Errorf("msg = %q", ext["msg"])
		}
	})
	t.Run("long title cut by characters", func(t *testing.T) {
		ev := testEvent("e")
		ev.Title = strings.Repeat("日", 2000)
		hdr, ext := parseCEF(t, CEF(ev, ""))
		if n := utf8.RuneCountInString(hdr[5]); n != maxCEFName {
			t.Errorf("name has %d characters, want %d", n, maxCEFName)
		}
		if n := utf8.RuneCountInString(ext["msg"]); n != maxCEFMsg {
			t.Errorf("msg has %d characters, want %d", n, maxCEFMsg)
		}
	})
	t.Run("nasty values round-trip", func(t *testing.T) {
		ev := nastyEvent("x")
		hdr, ext := parseCEF(t, CEF(ev, "1.0|b"))
		checkCEF(t, hdr, ext, ev, "1.0|b")
	})
}

func TestCutUTF8(t *testing.T) {
	s := []byte("aé日🚨") // 1 + 2 + 3 + 4 bytes
	for n, want := range map[int]int{0: 0, 1: 1, 2: 1, 3: 3, 4: 3, 5: 3, 6: 6, 7: 6, 8: 6, 9: 6, 10: 10, 11: 10} {
		if got := cutUTF8(s, n); got != want {
			t.Errorf("cutUTF8(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestTruncation(t *testing.T) {
	ev := testEvent("evt_trunc")
	ev.Title = strings.Repeat("日本🚨é", 300)
	full, err := (&formatter{facility: 1, hostname: "h", procID: "1", bom: true}).message(ev, FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	for limit := 480; limit < 520; limit++ {
		fm := &formatter{facility: 1, hostname: "h", procID: "1", bom: true, max: limit}
		b, err := fm.message(ev, FormatJSON)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > limit || len(b) < limit-3 || !utf8.Valid(b) || string(full[:len(b)]) != string(b) {
			t.Fatalf("limit %d: %d bytes, valid UTF-8 %v, prefix of the whole %v",
				limit, len(b), utf8.Valid(b), string(full[:len(b)]) == string(b))
		}
		m := parse5424(t, b)
		if (*m.StructuredData)[SDID]["id"] != "evt_trunc" {
			t.Fatalf("limit %d: structured data lost", limit)
		}
	}
	// A header longer than the limit is kept whole, without MSG.
	ev.ID = strings.Repeat("i", 600)
	b, _ := (&formatter{facility: 1, hostname: "h", procID: "1", bom: true, max: 480}).message(ev, FormatJSON)
	if m := parse5424(t, b); (*m.StructuredData)[SDID]["id"] != ev.ID {
		t.Error("long id was cut")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := func(c *Config) {}
	for _, tc := range []struct {
		name   string
		edit   func(c *Config)
		fields []string
	}{
		{"defaults with an address", ok, nil},
		{"udp", func(c *Config) { c.Network = NetworkUDP; c.MaxMessageSize = 65507 }, nil},
		{"tls with files", func(c *Config) {
			c.Network = NetworkTLS
			c.TLS = tlsconf.Config{CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem", ServerName: "siem"}
		}, nil},
		{"named port", func(c *Config) { c.Address = "siem.example:syslog" }, nil},
		{"facility number", func(c *Config) { c.Facility = "20" }, nil},
		{"no address", func(c *Config) { c.Address = "" }, []string{"address"}},
		{"no port", func(c *Config) { c.Address = "siem.example" }, []string{"address"}},
		{"bad port", func(c *Config) { c.Address = "siem.example:99999" }, []string{"address"}},
		{"bad network", func(c *Config) { c.Network = "relp" }, []string{"network"}},
		{"bad format", func(c *Config) { c.Format = "leef" }, []string{"format"}},
		{"bad facility", func(c *Config) { c.Facility = "local9" }, []string{"facility"}},
		{"hostname with a space", func(c *Config) { c.Hostname = "my host" }, []string{"hostname"}},
		{"tiny max", func(c *Config) { c.MaxMessageSize = 100 }, []string{"max_message_size"}},
		{"udp too big", func(c *Config) { c.Network = NetworkUDP; c.MaxMessageSize = 70000 }, []string{"max_message_size"}},
		{"tls section without tls", func(c *Config) { c.TLS.CAFile = "ca.pem" }, []string{"tls"}},
		{"cert without key", func(c *Config) { c.Network = NetworkTLS; c.TLS.CertFile = "c.pem" }, []string{"tls.cert_file"}},
		{"zero batch", func(c *Config) { c.BatchSize = 0 }, []string{"batch_size"}},
		{"everything wrong", func(c *Config) { c.Network = "x"; c.Address = ""; c.Format = "x"; c.Facility = "x" },
			[]string{"network", "address", "format", "facility"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConfig()
			c.Address = "siem.example:6514"
			tc.edit(c)
			got := sinktest.Fields(c.Validate())
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("fields with problems = %v, want %v (%v)", got, tc.fields, c.Validate())
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	c := NewConfig()
	src := "address: siem:514\nnetwork: udp\nfacility: 20\nbom: false\ntls: {}\n"
	if err := yaml.Unmarshal([]byte(src), c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Facility != "20" || c.BOM || c.Format != FormatJSON || c.BatchSize != DefaultBatchSize || c.maxMessageSize() != DefaultUDPMaxMessageSize {
		t.Errorf("decoded %+v", c)
	}
	if p := bridge.CheckKeys(sinktest.YAMLNode(t, "address: x\nformt: cef\ntls: {ca: x}\n"), c); len(p) != 2 {
		t.Errorf("unknown keys found: %v", p)
	}
}

func TestActionValidate(t *testing.T) {
	for format, bad := range map[string]bool{"": false, "json": false, "cef": false, "{{ .data.f }}": false, "leef": true} {
		a := &Action{Format: format}
		if err := a.Validate(NewConfig()); (err != nil) != bad {
			t.Errorf("format %q: %v", format, err)
		}
	}
	var a Action
	d := &bridge.Delivery{Action: json.RawMessage(`{"format":"cef"}`)}
	if err := d.DecodeAction(&a); err != nil || a.Format != "cef" {
		t.Errorf("decode: %v %+v", err, a)
	}
}

// parse5424 parses one message with go-syslog's strict parser, requiring a
// compliant MSG (UTF-8 after a BOM, or no BOM).
func parse5424(t *testing.T, b []byte) *rfc5424.SyslogMessage {
	t.Helper()
	m, err := rfc5424.NewParser(rfc5424.WithCompliantMsg()).Parse(b)
	if err != nil {
		t.Fatalf("parse %q: %v", b, err)
	}
	return m.(*rfc5424.SyslogMessage)
}

// checkMessage checks a parsed message against the event it was made of.
func checkMessage(t *testing.T, m *rfc5424.SyslogMessage, ev *bridge.Event, format, version string, withBOM bool) {
	t.Helper()
	if m.Version != 1 || *m.Appname != AppName || m.Timestamp == nil || !m.Timestamp.Equal(ev.Time.Truncate(time.Microsecond)) {
		t.Errorf("header: version %d app %v time %v", m.Version, m.Appname, m.Timestamp)
	}
	if *m.Severity != uint8(Severity(ev.Severity)) {
		t.Errorf("severity %d, want %d", *m.Severity, Severity(ev.Severity))
	}
	if *m.MsgID != MsgID(ev.Type) {
		t.Errorf("msgid %q, want %q", *m.MsgID, MsgID(ev.Type))
	}
	sd := (*m.StructuredData)[SDID]
	if sd["id"] != ev.ID || sd["source"] != ev.Source || sd["severity"] != ev.Severity || len(sd) != 3 {
		t.Errorf("structured data %q", sd)
	}
	if m.Message == nil {
		t.Fatal("no MSG")
	}
	msg, hadBOM := strings.CutPrefix(*m.Message, bom)
	if hadBOM != withBOM {
		t.Errorf("MSG starts with a BOM: %v, want %v", hadBOM, withBOM)
	}
	switch format {
	case FormatCEF:
		hdr, ext := parseCEF(t, msg)
		checkCEF(t, hdr, ext, ev, version)
	default:
		var got bridge.Event
		if err := json.Unmarshal([]byte(msg), &got); err != nil {
			t.Fatalf("MSG is not the event's JSON: %v: %q", err, msg)
		}
		want, _ := json.Marshal(ev)
		again, _ := json.Marshal(&got)
		if string(want) != string(again) {
			t.Errorf("MSG event\n got %s\nwant %s", again, want)
		}
	}
}

// checkCEF checks a parsed CEF line against its event.
func checkCEF(t *testing.T, hdr []string, ext map[string]string, ev *bridge.Event, version string) {
	t.Helper()
	oneLine := func(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }
	wantHdr := []string{"CEF:0", "Bridge", "bridge", version, oneLine(ev.Type), oneLine(ev.Title), "8"}
	if strings.Join(hdr, "\x00") != strings.Join(wantHdr, "\x00") {
		t.Errorf("CEF header %q, want %q", hdr, wantHdr)
	}
	want := map[string]string{
		"rt": "1795169730123", "externalId": ev.ID, "cat": ev.Vendor,
		"cs1Label": "source", "cs1": ev.Source, "cs2Label": "subject", "cs2": ev.Subject,
		"suser": "jo=e|\\ 日本", "deviceExternalId": "agt]\"x", "fname": "é 🚨.pcap",
		"filePath": `C:\captures\é 🚨.pcap`, "reason": "line1\nline2", "msg": ev.Title,
	}
	for k, v := range want {
		if ext[k] != v {
			t.Errorf("CEF %s = %q, want %q", k, ext[k], v)
		}
	}
	if len(ext) != len(want) {
		t.Errorf("CEF extensions %q", ext)
	}
}

// parseCEF splits a CEF line into its 7 header fields and its extensions,
// undoing the escaping, as a CEF consumer does.
func parseCEF(t *testing.T, line string) ([]string, map[string]string) {
	t.Helper()
	var hdr []string
	var cur strings.Builder
	i := 0
	for ; i < len(line) && len(hdr) < 7; i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line) && (line[i+1] == '\\' || line[i+1] == '|'):
			cur.WriteByte(line[i+1])
			i++
		case c == '\\':
			t.Fatalf("unknown header escape at %d in %q", i, line)
		case c == '|':
			hdr = append(hdr, cur.String())
			cur.Reset()
		case c == '\r' || c == '\n':
			t.Fatalf("line break in the header of %q", line)
		default:
			cur.WriteByte(c)
		}
	}
	if len(hdr) != 7 {
		t.Fatalf("%q has %d header fields", line, len(hdr))
	}
	rest := line[i:]
	if strings.ContainsAny(rest, "\r\n") {
		t.Fatalf("raw line break in the extensions of %q", line)
	}
	// Every unescaped '=' ends a key; the key starts after the last space.
	var eqs []int
	for j := 0; j < len(rest); j++ {
		if rest[j] == '\\' {
			j++
			continue
		}
		if rest[j] == '=' {
			eqs = append(eqs, j)
		}
	}
	ext := map[string]string{}
	keyStart := 0
	for n, eq := range eqs {
		key := rest[keyStart:eq]
		end := len(rest)
		if n+1 < len(eqs) {
			end = strings.LastIndexByte(rest[:eqs[n+1]], ' ')
			keyStart = end + 1
		}
		if strings.ContainsAny(key, " \\") {
			t.Fatalf("bad key %q in %q", key, line)
		}
		v, err := unescapeExt(rest[eq+1 : end])
		if err != nil {
			t.Fatalf("%s in %q", err, line)
		}
		ext[key] = v
	}
	return hdr, ext
}

func unescapeExt(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", errors.New("trailing backslash")
		}
		i++
		switch s[i] {
		case '\\', '=':
			b.WriteByte(s[i])
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", errors.New("unknown escape \\" + string(s[i]))
		}
	}
	return b.String(), nil
}
