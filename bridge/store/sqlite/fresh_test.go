package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"bridge/bridge"
)

// TestFreshClaim: a delivery claimed from the fresh cache is what the same
// claim reads from the database, data included (decoded from the raw body
// when the Event given to Ingest has none; the Event's, which Ingest
// requires to be the same, when it has); once attempted, or pushed out, it
// is read from the database.
func TestFreshClaim(t *testing.T) {
	for _, given := range []bool{false, true} {
		t.Run(fmt.Sprintf("data given %v", given), func(t *testing.T) { testFreshClaim(t, given) })
	}
}

func testFreshClaim(t *testing.T, given bool) {
	s := openTestStore(t, "normal")
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	ev := testEvent("src", "e1", at)
	raw := []byte(`{"id":"e1","data":{"n":9007199254740993,"s":"é"}}`)
	if given {
		ev.Data = bridge.StoredData(raw)
	}
	planned := []bridge.Planned{
		{Rule: "r", Sink: "a", Action: json.RawMessage(`{"x":1}`)},
		{Rule: "r", Index: 1, Sink: "b"},
		{Rule: "r", Index: 2, Sink: "a", Err: errors.New("template: boom")},
	}
	if _, err := s.Ingest(ctx, ev, raw, planned); err != nil {
		t.Fatal(err)
	}
	claim := func(sink string) ([]*bridge.Delivery, []*bridge.DeliveryRecord) {
		t.Helper()
		ids, _, _, err := s.Due(ctx, sink, at.Add(time.Second), 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		ds, recs, err := s.Claim(ctx, ids, at.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return ds, recs
	}
	asJSON := func(ds []*bridge.Delivery, recs []*bridge.DeliveryRecord) string {
		b, err := json.Marshal([]any{ds, recs})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, sink := range []string{"a", "b"} {
		ds, recs := claim(sink)
		if len(ds) != 1 || len(s.fresh.m) == 2 {
			t.Fatalf("sink %s: claimed %d, %d kept", sink, len(ds), len(s.fresh.m))
		}
		if given && reflect.ValueOf(ds[0].Event.Data).Pointer() != reflect.ValueOf(ev.Data).Pointer() {
			t.Errorf("sink %s: the fresh claim decoded the raw body again instead of taking the event's data", sink)
		}
		fresh := asJSON(ds, recs)
		fromDB := asJSON(claim(sink)) // not kept any more: read from the database
		if fresh != fromDB {
			t.Errorf("sink %s: claimed fresh\n\t%s\nfrom the database\n\t%s", sink, fresh, fromDB)
		}
	}
	if len(s.fresh.m) != 0 {
		t.Errorf("%d deliveries kept after their claims", len(s.fresh.m))
	}

	// A retry is read from the database, with its attempt.
	if _, err := s.Ingest(ctx, testEvent("src", "e2", at), raw, []bridge.Planned{{Rule: "r", Sink: "retried"}}); err != nil {
		t.Fatal(err)
	}
	ds, _ := claim("retried")
	if err := s.Record(ctx, []bridge.Outcome{{ID: ds[0].ID, Status: bridge.StatusPending, Error: "503", NextAt: at, At: at}}); err != nil {
		t.Fatal(err)
	}
	if ds, recs := claim("retried"); len(ds) != 1 || ds[0].Attempt != 2 || recs[0].LastError != "503" {
		t.Errorf("retry: %s", asJSON(ds, recs))
	}

	// Past freshMax, the oldest are read from the database.
	for i := range freshMax + 10 {
		if _, err := s.Ingest(ctx, testEvent("src", fmt.Sprint("many-", i), at), raw, []bridge.Planned{{Rule: "r", Sink: "many"}}); err != nil {
			t.Fatal(err)
		}
	}
	ids, _, _, err := s.Due(ctx, "many", at.Add(time.Second), 2000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hits, misses := s.fresh.take(ids, at.Add(time.Second)); len(misses) != 10 || len(hits) != len(ids)-10 {
		t.Errorf("of the first %d of %d: %d kept, %d not", len(ids), freshMax+10, len(hits), len(misses))
	}
}
