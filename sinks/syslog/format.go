package syslog

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"bridge/bridge"
)

// Fixed parts of every message.
const (
	// AppName is the APP-NAME of every message.
	AppName = "bridge"
	// SDID is the structured data element every message carries: the
	// event's id, source and severity, so a SIEM can drop duplicates.
	// 32473 is the private enterprise number RFC 5612 reserves for
	// documentation.
	SDID = "bridge@32473"
	// nilValue is RFC 5424's NILVALUE, for a header field that is unknown.
	nilValue = "-"
	// bom is the UTF-8 byte order mark that starts a MSG encoded in UTF-8.
	bom = "\xEF\xBB\xBF"
	// timeLayout is RFC 3339 with at most 6 fractional digits.
	timeLayout = "2006-01-02T15:04:05.999999Z07:00"
	// maxMsgID, maxHostname: RFC 5424 field lengths.
	maxMsgID    = 32
	maxHostname = 255
	// maxCEFName and maxCEFMsg are the lengths ArcSight consumers accept
	// in the Name header field and the msg extension, in characters.
	maxCEFName = 512
	maxCEFMsg  = 1023
)

// Severity returns the syslog severity (RFC 5424 section 6.2.1) of an
// event severity: info 6, low 5, medium 4, high 3, critical 2.
func Severity(s string) int {
	switch s {
	case bridge.SeverityCritical:
		return 2
	case bridge.SeverityHigh:
		return 3
	case bridge.SeverityMedium:
		return 4
	case bridge.SeverityLow:
		return 5
	default:
		return 6
	}
}

// CEFSeverity returns the CEF severity (0..10) of an event severity: info 1,
// low 3, medium 5, high 8, critical 10.
func CEFSeverity(s string) int {
	switch s {
	case bridge.SeverityCritical:
		return 10
	case bridge.SeverityHigh:
		return 8
	case bridge.SeverityMedium:
		return 5
	case bridge.SeverityLow:
		return 3
	default:
		return 1
	}
}

// formatter builds RFC 5424 messages for one sink.
type formatter struct {
	facility int
	hostname string // already valid
	procID   string
	version  string // the bridge's version, for CEF
	bom      bool
	max      int // 0: no limit
}

// message returns one RFC 5424 message for ev, with MSG in the given format,
// cut to the size limit.
func (f *formatter) message(ev *bridge.Event, format string) ([]byte, error) {
	var msg []byte
	switch format {
	case FormatCEF:
		msg = []byte(CEF(ev, f.version))
	case FormatJSON, "":
		// MarshalJSON directly: json.Marshal would check and compact
		// its output again.
		b, err := ev.MarshalJSON()
		if err != nil {
			return nil, bridge.Permanent(fmt.Errorf("syslog: encode event %s: %w", ev.ID, err))
		}
		msg = b
	default:
		return nil, bridge.Permanent(fmt.Errorf("syslog: %q is not a format (use json or cef)", format))
	}

	b := make([]byte, 0, 160+len(ev.ID)+len(ev.Source)+len(msg))
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(f.facility*8+Severity(ev.Severity)), 10)
	b = append(b, ">1 "...)
	b = appendTimestamp(b, ev.Time)
	b = append(b, ' ')
	b = append(b, f.hostname...)
	b = append(b, ' ')
	b = append(b, AppName...)
	b = append(b, ' ')
	b = append(b, f.procID...)
	b = append(b, ' ')
	b = append(b, MsgID(ev.Type)...)
	b = append(b, " ["...)
	b = append(b, SDID...)
	b = appendParam(b, "id", ev.ID)
	b = appendParam(b, "source", ev.Source)
	b = appendParam(b, "severity", ev.Severity)
	b = append(b, "] "...)
	if f.bom {
		b = append(b, bom...)
	}
	head := len(b)
	b = append(b, msg...)
	if f.max > 0 && len(b) > f.max {
		// The header and structured data stay whole, so the message
		// still parses and names its event; only MSG is cut.
		b = b[:max(head, cutUTF8(b, f.max))]
	}
	return b, nil
}

// appendTimestamp appends t in UTC as RFC 3339 with at most 6 fractional
// digits, or NILVALUE when t is unset or outside years 0000..9999.
func appendTimestamp(b []byte, t time.Time) []byte {
	if t.IsZero() || t.Year() < 0 || t.Year() > 9999 {
		return append(b, nilValue...)
	}
	return t.UTC().AppendFormat(b, timeLayout)
}

// appendParam appends ` name="value"` with value escaped as an RFC 5424
// PARAM-VALUE: `"`, `\` and `]` get a backslash; invalid UTF-8 becomes
// U+FFFD.
func appendParam(b []byte, name, value string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, '=', '"')
	value = strings.ToValidUTF8(value, "\uFFFD")
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '"', '\\', ']':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// MsgID returns the event type as a valid RFC 5424 MSGID: every character
// outside printable US-ASCII (33..126) becomes "_", and the result is cut to
// 32 characters. An empty type gives NILVALUE.
func MsgID(typ string) string { return printable(typ, maxMsgID) }

// Hostname returns h as a valid RFC 5424 HOSTNAME, the way MsgID does, cut
// to 255 characters.
func Hostname(h string) string { return printable(h, maxHostname) }

func printable(s string, limit int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() == limit {
			break
		}
		if r < 33 || r > 126 {
			r = '_'
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return nilValue
	}
	return b.String()
}

// cutUTF8 returns the largest length <= n at which b can be cut without
// splitting a UTF-8 character.
func cutUTF8(b []byte, n int) int {
	if n >= len(b) {
		return len(b)
	}
	// Back up over continuation bytes (10xxxxxx) to the start of the
	// character that would be split; at most 3 of them.
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return n
}

// CEF returns the event as an ArcSight CEF line:
//
//	CEF:0|Bridge|bridge|<version>|<type>|<title>|<severity>|<extensions>
//
// The extensions are rt (the event time, epoch milliseconds), externalId
// (the event id), cat (the vendor), cs1 (the source), cs2 (the subject) and,
// where the data has them, suser (user_id, username, user_name or user),
// deviceExternalId (agent_id), fname and filePath (file_path), reason
// (error_message), and last msg (the title, or a summary of the data).
func CEF(ev *bridge.Event, version string) string {
	if version == "" {
		version = "unknown"
	}
	var b strings.Builder
	b.WriteString("CEF:0|Bridge|bridge|")
	b.WriteString(CEFHeader(version))
	b.WriteByte('|')
	b.WriteString(CEFHeader(ev.Type))
	b.WriteByte('|')
	b.WriteString(CEFHeader(truncRunes(ev.Title, maxCEFName)))
	b.WriteByte('|')
	b.WriteString(strconv.Itoa(CEFSeverity(ev.Severity)))
	b.WriteByte('|')

	sep := ""
	ext := func(key, value string) {
		if value == "" {
			return
		}
		b.WriteString(sep)
		b.WriteString(key)
		b.WriteByte('=')
		b.WriteString(CEFExtension(value))
		sep = " "
	}
	if !ev.Time.IsZero() {
		ext("rt", strconv.FormatInt(ev.Time.UnixMilli(), 10))
	}
	ext("externalId", ev.ID)
	ext("cat", ev.Vendor)
	if ev.Source != "" {
		ext("cs1Label", "source")
		ext("cs1", ev.Source)
	}
	if ev.Subject != "" {
		ext("cs2Label", "subject")
		ext("cs2", ev.Subject)
	}
	ext("suser", dataString(ev.Data, "user_id", "username", "user_name", "user"))
	ext("deviceExternalId", dataString(ev.Data, "agent_id"))
	if p := dataString(ev.Data, "file_path"); p != "" {
		ext("fname", path.Base(strings.ReplaceAll(p, `\`, "/")))
		ext("filePath", p)
	}
	ext("reason", dataString(ev.Data, "error_message"))
	msg := ev.Title
	if msg == "" {
		msg = dataSummary(ev.Data)
	}
	ext("msg", truncRunes(msg, maxCEFMsg))
	return b.String()
}

// CEFHeader escapes a CEF header field: `\` and `|` get a backslash, and
// line breaks become spaces (a header field is one line).
func CEFHeader(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch r {
		case '\\', '|':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\r', '\n':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// CEFExtension escapes a CEF extension value: `\` and `=` get a backslash,
// and line breaks are written as \n and \r.
func CEFExtension(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch r {
		case '\\', '=':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// dataString returns the first of keys that data holds as a string, number
// or boolean, as text.
func dataString(data map[string]any, keys ...string) string {
	for _, k := range keys {
		switch v := data[k].(type) {
		case string:
			if v != "" {
				return v
			}
		case int64, float64, json.Number, bool, int:
			return fmt.Sprint(v)
		}
	}
	return ""
}

// dataSummary describes an event without a title: its details or message
// field when it has one, else its data as compact JSON.
func dataSummary(data map[string]any) string {
	if s := dataString(data, "details", "message", "description"); s != "" {
		return s
	}
	if len(data) == 0 {
		return ""
	}
	b, err := json.Marshal(data)
	if err != nil {
		return ""
	}
	return string(b)
}

// truncRunes cuts s to at most n characters.
func truncRunes(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}
