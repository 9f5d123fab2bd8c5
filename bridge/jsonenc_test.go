package bridge

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// marshalEventV1 is Event.MarshalJSON as encoding/json does it, the
// reference the hand-written encoder must agree with byte for byte.
func marshalEventV1(e Event) ([]byte, error) {
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

func checkSameEncoding(t *testing.T, name string, ev Event) {
	t.Helper()
	want, werr := marshalEventV1(ev)
	got, gerr := ev.MarshalJSON()
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("%s: error %v, encoding/json's %v", name, gerr, werr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got %s\nwant %s", name, got, want)
	}
	if werr == nil {
		// As json.Marshal(ev) gives it, too.
		if via, err := json.Marshal(ev); err != nil || !bytes.Equal(via, want) {
			t.Fatalf("%s: json.Marshal: %s, %v", name, via, err)
		}
	}
}

// TestAppendJSONMatches: the event encoder writes what encoding/json
// writes, escapes, key order and number formats included.
func TestAppendJSONMatches(t *testing.T) {
	at := time.Date(2024, 8, 21, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	odd := "a\"b\\c\b\f\n\r\t\x00\x1f<>&\u2028\u2029é\xff\xfe日本"
	tests := []struct {
		name string
		ev   Event
	}{
		{"nil data", Event{ID: "1", Time: at, Received: at}},
		{"empty", Event{Data: map[string]any{}}},
		{"odd strings", Event{ID: odd, Source: odd, Vendor: odd, Type: odd, Severity: odd, Title: odd, Subject: odd,
			Time: at, Received: at, Data: map[string]any{odd: odd}}},
		{"values", Event{Data: map[string]any{
			"b": true, "f": false, "n": nil, "i": int64(-42), "max": int64(math.MaxInt64),
			"floats": []any{0.0, -0.0, 1.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.125, -2.5e-300, math.MaxFloat64, math.SmallestNonzeroFloat64},
			"num":    json.Number("123456789012345678901234567890"), "fnum": json.Number("1.5e400"),
			"nested": map[string]any{"z": []any{}, "a": []any{map[string]any{}, nil, "x"}},
			"nilmap": map[string]any(nil), "nilslice": []any(nil),
			"other": []string{"a"}, "int": 7,
		}}},
		{"many keys", Event{Data: func() map[string]any {
			m := map[string]any{}
			for i := range 40 {
				m[string(rune('a'+i%26))+string(rune('A'+i))] = i
			}
			return m
		}()}},
		{"NaN", Event{Data: map[string]any{"x": math.NaN()}}},
		{"bad number", Event{Data: map[string]any{"x": json.Number("1x")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkSameEncoding(t, tt.name, tt.ev) })
	}
}

// FuzzAppendJSON: for any JSON object decoded as the bridge decodes
// webhook bodies, and any strings, the encoder agrees with encoding/json.
func FuzzAppendJSON(f *testing.F) {
	f.Add([]byte(`{"a":[1,2.5,-0,1e400,"x\u2028<>&"],"b":{"c":null,"d":true}}`), "id\x00<", "é\xff")
	f.Add([]byte(`{"n":123456789012345678901234567890,"f":1E-7}`), "", "")
	f.Fuzz(func(t *testing.T, body []byte, id, title string) {
		data, err := DecodeObject(body)
		if err != nil {
			return
		}
		checkSameEncoding(t, "fuzz", Event{ID: id, Title: title, Data: data})
	})
}

// TestAppendJSONInPlace: AppendJSON appends after what b holds, and leaves
// b as it was when the event cannot be encoded.
func TestAppendJSONInPlace(t *testing.T) {
	ev := Event{ID: "e1", Data: map[string]any{"a": int64(1)}}
	want, _ := ev.MarshalJSON()
	got, err := ev.AppendJSON([]byte("line\n"))
	if err != nil || string(got) != "line\n"+string(want) {
		t.Fatalf("AppendJSON = %q, %v", got, err)
	}
	bad := Event{Data: map[string]any{"x": math.Inf(1)}}
	if got, err := bad.AppendJSON([]byte("line\n")); err == nil || string(got) != "line\n" {
		t.Fatalf("AppendJSON of an unencodable event = %q, %v", got, err)
	}
}
