// Package bridge is the core of the bridge: the Event model, the config,
// the webhook receivers, the durable store and the delivery pipeline.
// It never imports a sink package; cmd/bridge wires sinks in.
package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Severities, lowest first. An Event's Severity is always one of these.
const (
	SeverityInfo     = "info"
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// Severities lists the valid severities, lowest first.
var Severities = []string{SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}

// ValidSeverity reports whether s is one of Severities.
func ValidSeverity(s string) bool {
	for _, v := range Severities {
		if s == v {
			return true
		}
	}
	return false
}

// Event is one vendor webhook, normalized. It is what rules and templates see
// and what SIEM sinks carry. Events are read-only once built.
type Event struct {
	ID       string         // the vendor's event id, or a hash of the body when it has none
	Source   string         // the configured source name
	Vendor   string         // agility, secureagentics or antly
	Type     string         // the vendor's event type, as sent
	Time     time.Time      // when it happened (vendor timestamp, UTC when it had no zone)
	Received time.Time      // when the bridge received it
	Severity string         // one of Severities
	Title    string         // one human line
	Subject  string         // the main object's id
	Data     map[string]any // the vendor's data object; numbers are int64 or float64
}

// Map returns the event as the map templates and rules see: the field names
// of SPEC 4.1 (id, source, vendor, type, time, received, severity, title,
// subject, data).
func (e *Event) Map() map[string]any {
	return map[string]any{
		"id":       e.ID,
		"source":   e.Source,
		"vendor":   e.Vendor,
		"type":     e.Type,
		"time":     e.Time,
		"received": e.Received,
		"severity": e.Severity,
		"title":    e.Title,
		"subject":  e.Subject,
		"data":     e.Data,
	}
}

// eventJSON is the JSON object SIEM sinks and `--json` listings carry.
type eventJSON struct {
	ID       string         `json:"id"`
	Source   string         `json:"source"`
	Vendor   string         `json:"vendor"`
	Type     string         `json:"type"`
	Time     string         `json:"time"`
	Received string         `json:"received"`
	Severity string         `json:"severity"`
	Title    string         `json:"title"`
	Subject  string         `json:"subject"`
	Data     map[string]any `json:"data"`
}

// MarshalJSON encodes the event as the SPEC's JSON object, times in RFC 3339:
// the bytes json.Marshal gives for an eventJSON, written without
// reflection (see appendJSONValue), as the file and SIEM sinks encode
// every event they deliver.
func (e Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 256+len(e.Title)+len(e.Subject)+len(e.ID)))
}

// AppendJSON appends what MarshalJSON returns to b: a sink writing many
// events into one buffer encodes each in place. On an error b is returned
// as it was.
func (e Event) AppendJSON(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, `{"id":`...)
	b = appendJSONString(b, e.ID)
	b = append(b, `,"source":`...)
	b = appendJSONString(b, e.Source)
	b = append(b, `,"vendor":`...)
	b = appendJSONString(b, e.Vendor)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, e.Type)
	b = append(b, `,"time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano) // digits and -:.TZ only: nothing to escape
	b = append(b, `","received":"`...)
	b = e.Received.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","severity":`...)
	b = appendJSONString(b, e.Severity)
	b = append(b, `,"title":`...)
	b = appendJSONString(b, e.Title)
	b = append(b, `,"subject":`...)
	b = appendJSONString(b, e.Subject)
	b = append(b, `,"data":`...)
	if e.Data == nil {
		b = append(b, "{}"...)
	} else {
		out, err := appendJSONObject(b, e.Data)
		if err != nil {
			return b[:start], err
		}
		b = out
	}
	return append(b, '}'), nil
}

// UnmarshalJSON decodes the SPEC's JSON object, as MarshalJSON writes it.
func (e *Event) UnmarshalJSON(b []byte) error {
	var v struct {
		eventJSON
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, v.Time)
	if err != nil {
		return fmt.Errorf("event time: %w", err)
	}
	r, err := time.Parse(time.RFC3339Nano, v.Received)
	if err != nil {
		return fmt.Errorf("event received: %w", err)
	}
	data := map[string]any{}
	if len(v.Data) > 0 && string(v.Data) != "null" {
		d, err := DecodeObject(v.Data)
		if err != nil {
			return fmt.Errorf("event data: %w", err)
		}
		data = d
	}
	*e = Event{ID: v.ID, Source: v.Source, Vendor: v.Vendor, Type: v.Type, Time: t, Received: r,
		Severity: v.Severity, Title: v.Title, Subject: v.Subject, Data: data}
	return nil
}

// DecodeObject decodes a JSON object, keeping numbers exact: integers become
// int64, other numbers float64 (integers too large for int64 stay json.Number).
// It fails when b is not a single JSON object. It builds the tree from
// jsontext's tokens, which is about twice as fast as encoding/json's decoding
// into any; duplicate names (the last wins) and invalid UTF-8 (replaced with
// U+FFFD) are taken as encoding/json takes them, so that a body stored before
// webhooks were checked strictly still reads back. Webhook bodies are decoded
// by decodeStrict instead.
func DecodeObject(b []byte) (map[string]any, error) {
	m, err := decodeObject(b, false)
	if err != nil {
		return nil, jsonError(err)
	}
	return m, nil
}

// decodeStrict is DecodeObject for a webhook body, whose strings and names
// must be as I-JSON (RFC 7493) has them: it also refuses invalid UTF-8, a \u
// escape of half a surrogate pair (both would become U+FFFD, so two distinct
// ids would read the same) and a name given twice in one object, at any
// depth (a *duplicateKeyError saying where). Its errors are jsontext's,
// errNotObject, errTrailingData and *duplicateKeyError, for decodeBody to
// put in words.
func decodeStrict(b []byte) (map[string]any, error) { return decodeObject(b, true) }

var (
	errNotObject    = errors.New("not a JSON object")
	errTrailingData = errors.New("unexpected data after the JSON value")
)

func decodeObject(b []byte, strict bool) (map[string]any, error) {
	dec := decoders.Get().(*jsontext.Decoder)
	defer decoders.Put(dec)
	// A *bytes.Buffer is read in place, without a copy. Duplicate names are
	// found by tree.value at no cost; jsontext's check adds about 5%.
	dec.Reset(bytes.NewBuffer(b), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(!strict))
	if dec.PeekKind() != '{' {
		if _, err := dec.ReadValue(); err != nil {
			return nil, err
		}
		return nil, errNotObject
	}
	t := tree{dec: dec, strict: strict, text: string(b)}
	v, err := t.value()
	if err != nil {
		return nil, err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, errTrailingData
	}
	return v.(map[string]any), nil
}

var decoders = sync.Pool{New: func() any { return new(jsontext.Decoder) }}

// jsonError says what is wrong with the JSON, without jsontext's prefix.
func jsonError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return errors.New(strings.TrimPrefix(err.Error(), "jsontext: "))
}

// duplicateKeyError is a name given twice in one object of a webhook body.
type duplicateKeyError struct {
	key  string
	path []string // where the object is: ".name" or "[index]", innermost first
}

func (e *duplicateKeyError) Error() string {
	if len(e.path) == 0 {
		return fmt.Sprintf("duplicate key %q in the envelope", e.key)
	}
	var b strings.Builder
	for i := len(e.path) - 1; i >= 0; i-- {
		b.WriteString(e.path[i])
	}
	return fmt.Sprintf("duplicate key %q in %s", e.key, strings.TrimPrefix(b.String(), "."))
}

// within adds one step of the path to a duplicateKeyError coming up from
// inside a value; other errors pass as they are.
func within(err error, step string) error {
	if d, ok := err.(*duplicateKeyError); ok {
		d.path = append(d.path, step)
	}
	return err
}

// pathName is a key as a step of a path, written as rules write it:
// .name, or ["odd name"] when it is not an identifier.
func pathName(key string) string {
	for i, c := range key {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return "[" + strconv.Quote(key) + "]"
		}
	}
	if key == "" {
		return `[""]`
	}
	return "." + key
}

// tree builds the value at dec's position into maps, slices, strings,
// bools, nil and numbers (see DecodeObject). strict refuses a name given
// twice in one object.
//
// Strings and numbers are read as raw values, not tokens: jsontext has
// checked a string by then, but its Token.String checks it again, a byte at
// a time, to learn whether it has escapes (a webhook's long texts made that
// a fifth of the handler's CPU). A string with no backslash (one IndexByte
// finds none) is its bytes between the quotes, already valid UTF-8 when
// strict, and is cut from text, one copy of the whole input, so that the
// tree's strings cost one allocation between them rather than one each.
// Others are unquoted as Token.String does, invalid UTF-8 becoming U+FFFD.
type tree struct {
	dec    *jsontext.Decoder
	strict bool
	text   string // the input, which dec reads in place
}

func (t *tree) value() (any, error) {
	switch t.dec.PeekKind() {
	case '"':
		return t.string()
	case '0':
		s, err := t.raw()
		if err != nil {
			return nil, err
		}
		return number(s), nil
	}
	tok, err := t.dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case '{':
		m := map[string]any{}
		for t.dec.PeekKind() != '}' {
			key, err := t.string()
			if err != nil {
				return nil, err
			}
			v, err := t.value()
			if err != nil {
				return nil, within(err, pathName(key))
			}
			n := len(m)
			m[key] = v
			if t.strict && len(m) == n { // the map did not grow: key was there already
				return nil, &duplicateKeyError{key: key}
			}
		}
		_, err = t.dec.ReadToken()
		return m, err
	case '[':
		a := []any{}
		for t.dec.PeekKind() != ']' {
			v, err := t.value()
			if err != nil {
				return nil, within(err, "["+strconv.Itoa(len(a))+"]")
			}
			a = append(a, v)
		}
		_, err = t.dec.ReadToken()
		return a, err
	case 't', 'f':
		return tok.Bool(), nil
	default: // 'n', null; the others were read above
		return nil, nil
	}
}

// string reads the string (or object name) at dec's position.
func (t *tree) string() (string, error) {
	s, err := t.raw()
	if err != nil {
		return "", err
	}
	inner := s[1 : len(s)-1]
	if strings.IndexByte(inner, '\\') < 0 && (t.strict || utf8.ValidString(inner)) {
		return inner, nil
	}
	b, _ := jsontext.AppendUnquote(nil, s) // its only error: invalid UTF-8, replaced
	return string(b), nil
}

// raw reads the value at dec's position and returns its text, cut from
// t.text.
func (t *tree) raw() (string, error) {
	v, err := t.dec.ReadValue()
	if err != nil {
		return "", err
	}
	end := int(t.dec.InputOffset())
	return t.text[end-len(v) : end], nil
}

// number converts a JSON number literal: int64 when it is an integer that
// fits, else float64, else (an integer beyond int64, or a float beyond
// float64) the exact json.Number.
func number(s string) any {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	if isIntegerLiteral(s) {
		return json.Number(s)
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) {
		return f
	}
	return json.Number(s)
}

func isIntegerLiteral(s string) bool {
	for i, c := range s {
		if c == '-' && i == 0 {
			continue
		}
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != "" && s != "-"
}
