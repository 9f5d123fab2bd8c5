// Package bridge is the core of the bridge: the Event model, the config,
// the webhook receivers, the durable store and the delivery pipeline.
// It never imports a sink package; cmd/bridge wires sinks in.
package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
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

// MarshalJSON encodes the event as the SPEC's JSON object, times in RFC 3339.
func (e Event) MarshalJSON() ([]byte, error) {
	data := e.Data
	if data == nil {
		data = map[string]any{}
	}
	return json.Marshal(eventJSON{
		ID: e.ID, Source: e.Source, Vendor: e.Vendor, Type: e.Type,
		Time:     e.Time.UTC().Format(time.RFC3339Nano),
		Received: e.Received.UTC().Format(time.RFC3339Nano),
		Severity: e.Severity, Title: e.Title, Subject: e.Subject, Data: data,
	})
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
// It fails when b is not a single JSON object.
func DecodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not a JSON object")
	}
	return convertNumbers(m).(map[string]any), nil
}

// convertNumbers turns json.Number values into int64 or float64, in place.
func convertNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = convertNumbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = convertNumbers(e)
		}
		return x
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		if f, err := strconv.ParseFloat(string(x), 64); err == nil && !math.IsInf(f, 0) {
			if _, ierr := strconv.ParseInt(string(x), 10, 64); ierr != nil && isIntegerLiteral(string(x)) {
				return x // an integer beyond int64: keep it exact
			}
			return f
		}
		return x
	default:
		return v
	}
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
