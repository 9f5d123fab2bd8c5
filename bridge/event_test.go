package bridge

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// decodeObjectV1 is DecodeObject as encoding/json does it, the reference the
// faster decoder must agree with.
func decodeObjectV1(b []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	// Anything but white space after the value is refused (dec.More alone
	// lets a stray "}" or "]" through).
	if dec.Decode(&v) != nil || len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	return convertV1(m).(map[string]any), true
}

func convertV1(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = convertV1(e)
		}
	case []any:
		for i, e := range x {
			x[i] = convertV1(e)
		}
	case json.Number:
		return number(string(x))
	}
	return v
}

func TestDecodeObject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]any
		err  string
	}{
		{in: `{"a":1,"b":-2.5,"c":"x","d":[true,null,{}],"e":{"f":9223372036854775807}}`,
			want: map[string]any{"a": int64(1), "b": -2.5, "c": "x", "d": []any{true, nil, map[string]any{}}, "e": map[string]any{"f": int64(9223372036854775807)}}},
		{in: `{"big":18446744073709551616,"exp":1e400,"f":1e2}`, want: map[string]any{"big": json.Number("18446744073709551616"), "exp": json.Number("1e400"), "f": 100.0}},
		{in: ` {"a":1,"a":2} `, want: map[string]any{"a": int64(2)}},
		{in: "{\"s\":\"\xff\"}", want: map[string]any{"s": "\ufffd"}},
		{in: `[1]`, err: "not a JSON object"},
		{in: `"x"`, err: "not a JSON object"},
		{in: `{"a":1} {}`, err: "unexpected data after the JSON value"},
		{in: `{"a":1}x`, err: "unexpected data after the JSON value"},
		{in: `{}}`, err: "unexpected data after the JSON value"},
		{in: `{"a":`, err: "unexpected EOF"},
		{in: `{"a" 1}`, err: "invalid character"},
		{in: ``, err: "unexpected EOF"},
	} {
		got, err := DecodeObject([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("DecodeObject(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("DecodeObject(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
}

// TestDecodeStrict checks what the webhook decoder refuses beyond
// DecodeObject, and that it says where a key was given twice.
func TestDecodeStrict(t *testing.T) {
	for _, tc := range []struct {
		in  string
		err string // "" : decodes as DecodeObject does
	}{
		{in: `{"a":1,"b":{"a":[{"a":2}]},"c":"\ufffd\ud83d\ude00"}`},
		{in: "{\"s\":\"\xef\xbf\xbd\"}"},
		{in: "{\"s\":\"\xff\"}", err: "invalid UTF-8"},
		{in: "{\"\xff\":1}", err: "invalid UTF-8"},
		{in: `{"s":"\ud800"}`, err: "invalid surrogate pair"},
		{in: `{"s":"\udc00\ud800"}`, err: "invalid surrogate pair"},
		{in: `{"a":1,"a":1}`, err: `duplicate key "a" in the envelope`},
		{in: `{"d":{"x":1,"y":2,"x":3}}`, err: `duplicate key "x" in d`},
		{in: `{"d":[1,{"e":{"f":{},"f":{}}}]}`, err: `duplicate key "f" in d[1].e`},
		{in: `{"":{"1x":{"":1,"":2}}}`, err: `duplicate key "" in [""]["1x"]`},
		{in: `[1,1]`, err: "not a JSON object"},
		{in: `{"a":1}{}`, err: "unexpected data after the JSON value"},
	} {
		got, err := decodeStrict([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("decodeStrict(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		want, werr := DecodeObject([]byte(tc.in))
		if err != nil || werr != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("decodeStrict(%q) = %#v, %v; DecodeObject %#v, %v", tc.in, got, err, want, werr)
		}
	}
}

// FuzzDecodeObject checks DecodeObject against encoding/json: the same
// inputs are refused, and the same objects come out.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[1.5,"x",null,true,{"c":{}}]}`, `{"a":"\u00e9\ud83d\ude00"}`, `[]`, `{"a":1}{}`,
		`{"n":-0,"m":1E+2,"big":123456789012345678901234567890}`, "{\"s\":\"\xc3\x28\"}", `{"a":"\ud800"}`, `{"a":1,"a":{"b":2}}`,
		`{"d":{"x":[{"k":1,"k":2}]}}`, "{\"s\":\"\xef\xbf\xbd\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeObject(b)
		want, ok := decodeObjectV1(b)
		if ok != (err == nil) {
			t.Fatalf("DecodeObject(%q): err %v, encoding/json ok %v", b, err, ok)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("DecodeObject(%q) = %#v; encoding/json %#v", b, got, want)
		}
		// decodeStrict takes what both DecodeObject and RFC 7493 (UTF-8,
		// whole surrogate pairs, unique names) take, to the same tree.
		strict, serr := decodeStrict(b)
		if wantOK := ok && jsontext.Value(b).IsValid(); wantOK != (serr == nil) {
			t.Fatalf("decodeStrict(%q): err %v, want ok %v", b, serr, wantOK)
		}
		if serr == nil && !reflect.DeepEqual(strict, got) {
			t.Fatalf("decodeStrict(%q) = %#v; DecodeObject %#v", b, strict, got)
		}
	})
}
