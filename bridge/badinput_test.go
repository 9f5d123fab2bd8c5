package bridge

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestWebhookRefusesAmbiguousBodies posts, signed, bodies a lenient decoder
// would patch up (invalid UTF-8, a key given twice, an id that is not one)
// and checks each is a 400 saying what is wrong, with nothing stored.
func TestWebhookRefusesAmbiguousBodies(t *testing.T) {
	ts := newTestServer(t)
	sig := func(b string) map[string]string { return map[string]string{"X-Secureagentics-Signature": sign(b)} }
	cases := []struct {
		name, body, want string
	}{
		{"invalid UTF-8 in the id", "{\"id\":\"u\xff\",\"type\":\"alert.triggered\"}", "body is not valid UTF-8 JSON (invalid UTF-8 at byte offset 8)"},
		{"other invalid UTF-8 in the id", "{\"id\":\"u\xfe\",\"type\":\"alert.triggered\"}", "body is not valid UTF-8 JSON (invalid UTF-8 at byte offset 8)"},
		{"invalid UTF-8 in data", "{\"id\":\"e1\",\"type\":\"t\",\"data\":{\"k\":\"\xc3\x28\"}}", "body is not valid UTF-8 JSON"},
		{"half a surrogate pair", `{"id":"u\ud800","type":"alert.triggered"}`, "body is not valid JSON: invalid surrogate pair"},
		{"id twice", `{"id":"e1","type":"t","id":"e2"}`, `duplicate key "id" in the envelope`},
		{"type twice", `{"id":"e1","type":"t","type":"u"}`, `duplicate key "type" in the envelope`},
		{"data twice", `{"id":"e1","type":"t","data":{},"data":{"a":1}}`, `duplicate key "data" in the envelope`},
		{"key twice in data", `{"id":"e1","type":"t","data":{"x":{"a":1,"a":2}}}`, `duplicate key "a" in data.x`},
		{"NUL in the id", `{"id":"e\u00001","type":"t"}`, `field "id" contains a NUL character`},
		{"fractional id", `{"id":1.5,"type":"t"}`, `field "id" must be a string or an integer, got a number with a fraction`},
		{"boolean id", `{"id":true,"type":"t"}`, `field "id" must be a string or an integer, got a boolean`},
		{"null id", `{"id":null,"type":"t"}`, `field "id" must be a string or an integer, got null`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := ts.post(t, "POST", "/webhooks/sa", c.body, sig(c.body))
			if a.status != 400 || !strings.HasPrefix(a.body["error"], c.want) {
				t.Errorf("answer %d %v, want 400 starting with %q", a.status, a.body, c.want)
			}
		})
	}
	// AGILITY and Antly bodies go through the same decoder.
	for _, c := range []struct{ path, body, want string }{
		{"/webhooks/ag?token=agility-token", `{"id":"a1","event_name":"analysis_done","event_name":"x"}`, `duplicate key "event_name" in the envelope`},
		{"/webhooks/ag?token=agility-token", "{\"id\":\"a\xff\",\"event_name\":\"analysis_done\"}", "body is not valid UTF-8 JSON"},
		{"/webhooks/limited", `{"event":"profile.Customer:create","event":"profile.Customer:delete"}`, `duplicate key "event" in the envelope`},
	} {
		a := ts.post(t, "POST", c.path, c.body, map[string]string{"X-Antly-Token": "t"})
		if a.status != 400 || !strings.HasPrefix(a.body["error"], c.want) {
			t.Errorf("%s %q: answer %d %v, want 400 starting with %q", c.path, c.body, a.status, a.body, c.want)
		}
	}
	if n := ts.countEvents(t); n != 0 {
		t.Errorf("%d events stored, want 0: bad input must store nothing", n)
	}
	if got := testutil.ToFloat64(ts.metrics.Webhooks.WithLabelValues("sa", OutcomeInvalid)); got != float64(len(cases)) {
		t.Errorf("bridge_webhooks_total{source=sa,outcome=invalid} = %v, want %d", got, len(cases))
	}

	// The signature is checked first: a forged body is a 401 whatever it holds.
	forged := "{\"id\":\"u\xff\",\"type\":\"t\"}"
	if a := ts.post(t, "POST", "/webhooks/sa", forged, sig("other")); a.status != 401 {
		t.Errorf("invalid UTF-8 with a wrong signature: %d %v, want 401", a.status, a.body)
	}

	// A real U+FFFD in an id is an id like any other, and is stored once.
	good := `{"id":"u\ufffd","type":"alert.triggered"}`
	for _, want := range []string{"accepted", "duplicate"} {
		if a := ts.post(t, "POST", "/webhooks/sa", good, sig(good)); a.status != 200 || a.body["status"] != want {
			t.Errorf("U+FFFD id: %d %v, want 200 %s", a.status, a.body, want)
		}
	}
	evs, err := ts.store.Events(context.Background(), EventFilter{})
	if err != nil || len(evs) != 1 || evs[0].Event.ID != "u\ufffd" {
		t.Errorf("stored events %+v %v, want the one with id \"u\\ufffd\"", evs, err)
	}
}
