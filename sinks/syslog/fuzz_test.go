package syslog

import (
	"strings"
	"testing"
	"time"

	"bridge/bridge"
)

// FuzzMessage checks that any event text gives a message go-syslog's
// strict parser accepts, with the structured data and CEF fields read back
// unchanged.
func FuzzMessage(f *testing.F) {
	f.Add("evt_1", "secureagentics", "alert.triggered", "Rate limit exceeded", "high")
	f.Add(`a"b\c]d`, `]"\`, "type é 日本\n", "t|=\\\n\r🚨 x=y", "critical")
	f.Add("\xff", "\xef\xbb\xbf", "", "", "")
	f.Fuzz(func(t *testing.T, id, source, typ, title, sev string) {
		ev := &bridge.Event{ID: id, Source: source, Vendor: "v", Type: typ, Title: title, Severity: sev,
			Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Data: map[string]any{"user_id": title, "agent_id": id}}
		valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
		for _, format := range []string{FormatJSON, FormatCEF} {
			for _, withBOM := range []bool{true, false} {
				fm := &formatter{facility: 1, hostname: "h", procID: "1", version: "v", bom: withBOM}
				b, err := fm.message(ev, format)
				if err != nil {
					t.Fatal(err)
				}
				m := parse5424(t, b)
				sd := (*m.StructuredData)[SDID]
				if sd["id"] != valid(id) || sd["source"] != valid(source) || sd["severity"] != valid(sev) {
					t.Fatalf("structured data %q", sd)
				}
				if got := MsgID(typ); (m.MsgID == nil && got != "-") || (m.MsgID != nil && *m.MsgID != got) {
					t.Fatalf("msgid %v, want %q", m.MsgID, got)
				}
				if format != FormatCEF {
					continue
				}
				msg := strings.TrimPrefix(*m.Message, bom)
				hdr, ext := parseCEF(t, msg)
				oneLine := strings.NewReplacer("\r", " ", "\n", " ")
				if hdr[4] != oneLine.Replace(valid(typ)) || hdr[5] != oneLine.Replace(valid(truncRunes(title, maxCEFName))) {
					t.Fatalf("CEF header %q", hdr)
				}
				if ext["externalId"] != valid(id) || ext["suser"] != valid(title) || ext["deviceExternalId"] != valid(id) {
					t.Fatalf("CEF extensions %q", ext)
				}
			}
		}
	})
}
