package bridge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// BadRequestError is a webhook body the bridge cannot take: not JSON, not an
// object, a required field missing. Msg says what is wrong, for the 400
// answer the vendor sees.
type BadRequestError struct {
	Msg string
}

func (e *BadRequestError) Error() string { return e.Msg }

func badRequest(format string, args ...any) error {
	return &BadRequestError{Msg: fmt.Sprintf(format, args...)}
}

// Limits on what a vendor's identifiers may be. An id is a storage key and a
// dedupe key; one longer than this is not an id but garbage.
const (
	maxIDBytes    = 512
	maxTypeBytes  = 256
	maxTitleRunes = 200
)

// decodeBody decodes a webhook body into its top-level object, saying what is
// wrong when it is not one. The body must be valid UTF-8 with no key given
// twice (see decodeStrict): a decoder that patched either up would let two
// distinct events read the same, and one of them be dropped as a duplicate.
func decodeBody(body []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("body is empty: expected a JSON object")
	}
	m, err := decodeStrict(body)
	if err == nil {
		return m, nil
	}
	var dup *duplicateKeyError
	switch {
	case !utf8.Valid(body):
		return nil, badRequest("body is not valid UTF-8 JSON (invalid UTF-8 at byte offset %d)", invalidUTF8At(body))
	case errors.As(err, &dup):
		return nil, badRequest("%v", dup)
	case errors.Is(err, errNotObject):
		return nil, badRequest("body is not a JSON object")
	}
	return nil, badRequest("body is not valid JSON: %v", jsonError(err))
}

// invalidUTF8At returns the offset of the first byte of b that is not part
// of a UTF-8 character, or -1.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// requiredString reads a required top-level field that must be a non-empty
// string without a NUL. An id may also be sent as an integer; it is then
// used as its decimal text. Any other number is refused rather than turned
// into text: 1.0 and 1, or two integers past float64's precision, would
// otherwise be one id.
func requiredString(m map[string]any, key string, max int, allowInt bool) (string, error) {
	v, ok := m[key]
	if !ok {
		return "", badRequest("required field %q is missing", key)
	}
	s, ok := v.(string)
	if !ok {
		if s, ok = integerText(v); !ok || !allowInt {
			want := "a string"
			if allowInt {
				want = "a string or an integer"
			}
			return "", badRequest("field %q must be %s, got %s", key, want, describe(v))
		}
	}
	if strings.TrimSpace(s) == "" {
		return "", badRequest("required field %q is empty", key)
	}
	if len(s) > max {
		return "", badRequest("field %q is longer than %d bytes", key, max)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", badRequest("field %q contains a NUL character", key)
	}
	return s, nil
}

// integerText is the decimal text of a JSON integer (as DecodeObject gives
// it: int64, or json.Number beyond int64); ok is false for anything else.
func integerText(v any) (string, bool) {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10), true
	case json.Number:
		return string(x), isIntegerLiteral(string(x))
	}
	return "", false
}

// describe says in words what kind of JSON value v is, for an error.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case int64:
		return "an integer"
	case float64:
		if x != math.Trunc(x) {
			return "a number with a fraction"
		}
		return "a number with a decimal point or an exponent"
	case json.Number:
		if isIntegerLiteral(string(x)) {
			return "an integer"
		}
		return "a number with a decimal point or an exponent"
	}
	return fmt.Sprintf("%T", v)
}

// dataObject returns the payload's data object: {} when absent or null, an
// error when it is anything but an object.
func dataObject(m map[string]any) (map[string]any, error) {
	v, ok := m["data"]
	if !ok || v == nil {
		return map[string]any{}, nil
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, badRequest("field \"data\" must be a JSON object")
	}
	return d, nil
}

// eventTimeLayouts are the timestamp forms accepted, tried in order: RFC 3339
// (any fraction), ISO 8601 without a zone (UTC), with a space instead of T,
// and with a numeric offset without a colon.
var eventTimeLayouts = [...]string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
}

// eventTime reads a vendor timestamp: a string in one of eventTimeLayouts (a
// time without a zone is UTC), or a number of seconds (milliseconds when
// above 1e12) since the Unix epoch. It falls back to received when the value
// is missing or unreadable, so an odd timestamp never loses an event. The
// result is in UTC.
func eventTime(v any, received time.Time) time.Time {
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		for _, layout := range eventTimeLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC()
			}
		}
	case int64:
		return epochTime(float64(x), received)
	case float64:
		return epochTime(x, received)
	}
	return received
}

func epochTime(n float64, received time.Time) time.Time {
	if n <= 0 || math.IsNaN(n) || math.IsInf(n, 0) {
		return received
	}
	if n > 1e12 {
		n /= 1000
	}
	if n > 1e11 { // beyond year 5000: not a timestamp
		return received
	}
	sec, frac := math.Modf(n)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// idText renders an identifier-like value (a string or a number) as text; ""
// for anything else.
func idText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	}
	return ""
}

// stringOf returns v when it is a string, else "".
func stringOf(v any) string {
	s, _ := v.(string)
	return s
}

// numberOf reads a count: a JSON number or a string holding one. ok is false
// when v is missing or not a number.
func numberOf(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && !math.IsNaN(f)
	}
	return 0, false
}

// countOf reads a count as an integer for a title; 0 when missing.
func countOf(v any) int64 {
	f, ok := numberOf(v)
	if !ok || f < 0 || f > math.MaxInt32 {
		return 0
	}
	return int64(f)
}

// isTrue reports whether a vendor's boolean is true: the JSON true, or the
// string "true" in any case (AGILITY sends strings).
func isTrue(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return strings.EqualFold(strings.TrimSpace(x), "true")
	}
	return false
}

// oneLine makes s a single readable line: control and format characters
// and runs of white space become one space, and it is cut to max runes,
// ending in "…" when cut.
func oneLine(s string, max int) string {
	if isPlainLine(s, max) {
		return s
	}
	return rebuildLine(s, max)
}

// rebuildLine is oneLine rune by rune.
func rebuildLine(s string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
		if b.Len() > 4*max+8 { // already too long: stop reading a huge input
			break
		}
	}
	out := b.String()
	if utf8.RuneCountInString(out) > max {
		out = string([]rune(out)[:max-1]) + "…"
	}
	return out
}

// isPlainLine reports whether oneLine would return s as it is: printable
// ASCII of at most max bytes, with single spaces between words. Most titles
// are, and the check costs far less than rebuilding them rune by rune.
func isPlainLine(s string, max int) bool {
	if len(s) > max || s == "" || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == ' ' && s[i+1] == ' ' {
			return false
		}
	}
	return true
}

// cutTitle makes a title one line of at most maxTitleRunes runes.
func cutTitle(s string) string { return oneLine(s, maxTitleRunes) }

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.FormatInt(n, 10) + " " + word + "s"
}

// envelope decodes what every vendor's webhook shares: a JSON object with a
// required id (unless idKey is empty: the vendor sends none), a required
// type, and an optional data object.
func envelope(body []byte, idKey, typeKey string) (m map[string]any, id, typ string, data map[string]any, err error) {
	if m, err = decodeBody(body); err != nil {
		return nil, "", "", nil, err
	}
	if idKey != "" {
		if id, err = requiredString(m, idKey, maxIDBytes, true); err != nil {
			return nil, "", "", nil, err
		}
	}
	if typ, err = requiredString(m, typeKey, maxTypeBytes, false); err != nil {
		return nil, "", "", nil, err
	}
	if data, err = dataObject(m); err != nil {
		return nil, "", "", nil, err
	}
	return m, id, typ, data, nil
}

// normalizeAgility turns an AGILITY webhook into an Event. Required: id and
// event_name. Time: created (no zone: UTC). Subject: data.analysis_id.
func normalizeAgility(body []byte, received time.Time) (*Event, error) {
	m, id, typ, data, err := envelope(body, "id", "event_name")
	if err != nil {
		return nil, err
	}
	return &Event{
		ID:       id,
		Vendor:   VendorAgility,
		Type:     typ,
		Time:     eventTime(m["created"], received),
		Received: received,
		Severity: agilitySeverity(data),
		Title:    agilityTitle(typ, data),
		Subject:  idText(data["analysis_id"]),
		Data:     data,
	}, nil
}

// agilityFailed reports whether an analysis did not finish well: its
// final_status is neither true nor "true", or it carries an error message.
func agilityFailed(data map[string]any) bool {
	return !isTrue(data["final_status"]) || strings.TrimSpace(stringOf(data["error_message"])) != ""
}

// agilitySeverity is SPEC 4.1's default: high for failed predictions, an
// error message or a final_status that is not true; medium for warnings;
// else info. A missing final_status counts as not true.
func agilitySeverity(data map[string]any) string {
	if f, ok := numberOf(data["count_prediction_failure"]); ok && f > 0 {
		return SeverityHigh
	}
	if agilityFailed(data) {
		return SeverityHigh
	}
	if w, ok := numberOf(data["count_prediction_warning"]); ok && w > 0 {
		return SeverityMedium
	}
	return SeverityInfo
}

// agilityTitle reads like "AGILITY analysis done: myfile.pcap (2 failures,
// 1 warning)" or "AGILITY analysis failed: myfile.pcap (error: disk full)".
func agilityTitle(typ string, data map[string]any) string {
	object := stringOf(data["file_path"])
	if object == "" {
		if paths, ok := data["analyzed_file_paths"].([]any); ok && len(paths) > 0 {
			object = stringOf(paths[0])
		}
	}
	if object == "" {
		object = idText(data["analysis_id"])
	}
	var b strings.Builder
	b.WriteString("AGILITY ")
	if typ == "analysis_done" {
		if agilityFailed(data) {
			b.WriteString("analysis failed")
		} else {
			b.WriteString("analysis done")
		}
	} else {
		b.WriteString(strings.ReplaceAll(typ, "_", " "))
	}
	if object != "" {
		b.WriteString(": ")
		b.WriteString(object)
	}
	var notes []string
	if n := countOf(data["count_prediction_failure"]); n > 0 {
		notes = append(notes, plural(n, "failure"))
	}
	if n := countOf(data["count_prediction_warning"]); n > 0 {
		notes = append(notes, plural(n, "warning"))
	}
	if msg := strings.TrimSpace(stringOf(data["error_message"])); msg != "" {
		notes = append(notes, "error: "+oneLine(msg, 120))
	}
	if len(notes) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(notes, ", "))
		b.WriteString(")")
	}
	return cutTitle(b.String())
}

// secureagenticsLabels are readable names of the documented event types.
func secureagenticsLabel(typ string) string {
	switch typ {
	case "alert.triggered":
		return "alert triggered"
	case "policy.violated":
		return "policy violated"
	case "agent.registered":
		return "agent registered"
	case "agent.error":
		return "agent error"
	}
	return typ
}

// normalizeSecureagentics turns a Secureagentics webhook into an Event.
// Required: id and type. Time: timestamp. Subject: data.alert_id, else
// data.agent_id. A test ping is an ordinary event of its own type (often not
// one of the documented ones): it is accepted with severity info.
func normalizeSecureagentics(body []byte, received time.Time) (*Event, error) {
	m, id, typ, data, err := envelope(body, "id", "type")
	if err != nil {
		return nil, err
	}
	subject := idText(data["alert_id"])
	if subject == "" {
		subject = idText(data["agent_id"])
	}
	sev := SeverityInfo
	switch typ {
	case "policy.violated", "alert.triggered":
		sev = SeverityHigh
	case "agent.error":
		sev = SeverityMedium
	}
	return &Event{
		ID:       id,
		Vendor:   VendorSecureagentics,
		Type:     typ,
		Time:     eventTime(m["timestamp"], received),
		Received: received,
		Severity: sev,
		Title:    secureagenticsTitle(typ, data),
		Subject:  subject,
		Data:     data,
	}, nil
}

// secureagenticsTitle reads like "Secureagentics alert triggered: Rate limit
// exceeded: 150 prompts/min (agent agt_abc123)": the vendor's own text
// (data.details, else message or error) when there is one, else the ids.
func secureagenticsTitle(typ string, data map[string]any) string {
	var b strings.Builder
	b.WriteString("Secureagentics ")
	b.WriteString(secureagenticsLabel(typ))
	text := ""
	for _, k := range [...]string{"details", "message", "error", "description"} {
		if s := strings.TrimSpace(stringOf(data[k])); s != "" {
			text = s
			break
		}
	}
	agent := idText(data["agent_id"])
	alert := idText(data["alert_id"])
	switch {
	case text != "":
		b.WriteString(": ")
		b.WriteString(oneLine(text, maxTitleRunes))
		if agent != "" {
			b.WriteString(" (agent " + agent + ")")
		}
	case alert != "" && agent != "":
		b.WriteString(": " + alert + " (agent " + agent + ")")
	case alert != "":
		b.WriteString(": " + alert)
	case agent != "":
		b.WriteString(": agent " + agent)
	}
	return cutTitle(b.String())
}

// normalizeAntly turns an Antly webhook into an Event. Required: event. Antly
// sends no event id, so the id is the first 32 hex digits of the SHA-256 of
// the raw body: a retry of the same body is a duplicate. Time: timestamp.
// Subject: data.id.
func normalizeAntly(body []byte, received time.Time) (*Event, error) {
	m, _, typ, data, err := envelope(body, "", "event")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	subject := idText(data["id"])
	title := "Antly " + typ
	if subject != "" {
		title += " " + subject
	}
	return &Event{
		ID:       hex.EncodeToString(sum[:])[:32],
		Vendor:   VendorAntly,
		Type:     typ,
		Time:     eventTime(m["timestamp"], received),
		Received: received,
		Severity: SeverityInfo,
		Title:    cutTitle(title),
		Subject:  subject,
		Data:     data,
	}, nil
}
