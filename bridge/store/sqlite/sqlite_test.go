package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bridge/bridge"
)

func openTestStore(t testing.TB, sync string) *Store {
	t.Helper()
	s, err := Open(bridge.StoreConfig{Path: filepath.Join(t.TempDir(), "s.db"), Sync: sync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testEvent(source, id string, received time.Time) *bridge.Event {
	return &bridge.Event{ID: id, Source: source, Vendor: "antly", Type: "profile.Customer:create", Severity: "info",
		Title: "t " + id, Subject: id, Time: received, Received: received}
}

// TestIngestConcurrent posts many events at once, each twice: every event
// is stored exactly once and the second copy is reported a duplicate.
func TestIngestConcurrent(t *testing.T) {
	s := openTestStore(t, "full")
	var woken sync.Map
	s.SetOnCommit(func(sinks map[string]bool) {
		for k := range sinks {
			woken.Store(k, true)
		}
	})
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	dups, news := 0, 0
	now := time.Now()
	for i := 0; i < n*2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprintf("e%d", i%n)
			planned := []bridge.Planned{{Rule: "r", Sink: "out", Action: json.RawMessage(`{}`)}}
			dup, err := s.Ingest(context.Background(), testEvent("src", id, now), []byte(`{"event":"x","data":{"n":1}}`), planned)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			if dup {
				dups++
			} else {
				news++
			}
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if news != n || dups != n {
		t.Fatalf("new %d, duplicates %d; want %d each", news, dups, n)
	}
	evs, _ := s.Events(context.Background(), bridge.EventFilter{})
	ds, _ := s.Deliveries(context.Background(), bridge.DeliveryFilter{})
	if len(evs) != n || len(ds) != n {
		t.Errorf("%d events, %d deliveries stored; want %d each", len(evs), len(ds), n)
	}
	if _, ok := woken.Load("out"); !ok {
		t.Error("OnCommit did not name the sink with new deliveries")
	}
	if evs[0].Event.Data["n"] != int64(1) {
		t.Errorf("data not rebuilt from the raw body: %v", evs[0].Event.Data)
	}
}

func TestTemplateErrorStoredFailed(t *testing.T) {
	s := openTestStore(t, "normal")
	planned := []bridge.Planned{{Rule: "r", Sink: "out", Err: fmt.Errorf(`template: summary:1: executing "summary" at <.x>: boom`)}}
	if _, err := s.Ingest(context.Background(), testEvent("src", "e1", time.Now()), []byte(`{}`), planned); err != nil {
		t.Fatal(err)
	}
	ds, _ := s.Deliveries(context.Background(), bridge.DeliveryFilter{})
	if len(ds) != 1 || ds[0].Status != bridge.StatusFailed || ds[0].LastError == "" {
		t.Fatalf("template failure not stored as a failed delivery: %+v", ds)
	}
}

func TestSinkState(t *testing.T) {
	s := openTestStore(t, "normal")
	ctx := context.Background()
	a, b := s.SinkState("a"), s.SinkState("b")
	if err := a.Put(ctx, "k", "1"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := a.Get(ctx, "k"); err != nil || !ok || v != "1" {
		t.Fatalf("get: %q %v %v", v, ok, err)
	}
	if _, ok, _ := b.Get(ctx, "k"); ok {
		t.Fatal("state leaked between sinks")
	}
	a.Put(ctx, "k", "2")
	if v, _, _ := a.Get(ctx, "k"); v != "2" {
		t.Fatalf("overwrite: %q", v)
	}
	a.Delete(ctx, "k")
	if _, ok, _ := a.Get(ctx, "k"); ok {
		t.Fatal("delete did not delete")
	}
}

// TestSinkLocks: every instance of one sink name gets the same locks (a
// key held through one is held for the other), other names their own.
func TestSinkLocks(t *testing.T) {
	s := openTestStore(t, "normal")
	ctx := context.Background()
	unlock, err := s.SinkLocks("jira").Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.SinkLocks("jira").Lock(short, "k"); err == nil {
		t.Fatal("a second instance of the sink took a key the first holds")
	}
	other, err := s.SinkLocks("slack").Lock(ctx, "k")
	if err != nil {
		t.Fatalf("another sink's key waited: %v", err)
	}
	other()
	unlock()
	again, err := s.SinkLocks("jira").Lock(ctx, "k")
	if err != nil {
		t.Fatalf("the key stayed held after its unlock: %v", err)
	}
	again()
}

func TestPrune(t *testing.T) {
	s := openTestStore(t, "normal")
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	s.Ingest(ctx, testEvent("src", "old-done", old), []byte(`{}`), nil)
	s.Ingest(ctx, testEvent("src", "old-pending", old), []byte(`{}`), []bridge.Planned{{Rule: "r", Sink: "out", Action: json.RawMessage(`{}`)}})
	s.Ingest(ctx, testEvent("src", "new", time.Now()), []byte(`{}`), nil)
	n, err := s.Prune(ctx, time.Now().Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want 1 (an event with a pending delivery is kept)", n, err)
	}
	evs, _ := s.Events(ctx, bridge.EventFilter{})
	if len(evs) != 2 || evs[0].Event.ID != "new" {
		t.Errorf("left %+v", evs)
	}
	if got, _ := s.Events(ctx, bridge.EventFilter{Source: "src", Limit: 1}); len(got) != 1 || got[0].Event.ID != "new" {
		t.Errorf("limit/newest first: %+v", got)
	}
}

// TestDueAndLoad: Due lists due ids oldest first without those in flight,
// up to the limit, and says when the next one is due; Load reads them with
// their events and leaves out one that is no longer pending.
func TestDueAndLoad(t *testing.T) {
	s := openTestStore(t, "full")
	ctx := context.Background()
	t0 := time.Unix(1_700_000_000, 0)
	for i := 1; i <= 5; i++ {
		ev := testEvent("src", fmt.Sprintf("e%d", i), t0.Add(time.Duration(i)*time.Second))
		raw := []byte(fmt.Sprintf(`{"event":"x","data":{"n":%d}}`, i))
		if _, err := s.Ingest(ctx, ev, raw, []bridge.Planned{{Rule: "r", Sink: "out", Action: json.RawMessage(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Deliveries 1..5 became due at t0+1s..t0+5s; at t0+4s, 1..4 are due.
	ids, oldest, next, err := s.Due(ctx, "out", t0.Add(4*time.Second), 2, map[int64]bool{1: true})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[2 3]" || !oldest.Equal(t0.Add(2*time.Second)) || !next.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("Due = %v, oldest %v, next %v; want [2 3], t0+2s, t0+5s", ids, oldest, next)
	}
	if err := s.Record(ctx, []bridge.Outcome{{ID: 3, Status: bridge.StatusDelivered, At: t0}}); err != nil {
		t.Fatal(err)
	}
	ds, recs, err := s.Claim(ctx, []int64{4, 2, 3}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || len(recs) != 2 || ds[0].ID != 2 || ds[1].ID != 4 {
		t.Fatalf("Load = %+v; want deliveries 2 and 4 (3 was delivered)", ds)
	}
	if ds[0].Event.ID != "e2" || ds[0].Event.Data["n"] != int64(2) || ds[0].Attempt != 1 || recs[1].EventID != "e4" {
		t.Errorf("Load: delivery 2 = %+v, event %+v; record 4 = %+v", ds[0], ds[0].Event, recs[1])
	}
}

// BenchmarkIngest measures stored events per second through group commit
// with every commit synced (sync: full).
func BenchmarkIngest(b *testing.B) {
	s := openTestStore(b, "full")
	raw := []byte(`{"id":"x","type":"alert.triggered","data":{"alert_id":"a","details":"` + string(make([]byte, 0)) + `"}}`)
	planned := []bridge.Planned{{Rule: "r", Sink: "out", Action: json.RawMessage(`{"text":"x"}`)}}
	now := time.Now()
	var i int64
	var mu sync.Mutex
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			i++
			id := fmt.Sprintf("e%d", i)
			mu.Unlock()
			if _, err := s.Ingest(context.Background(), testEvent("src", id, now), raw, planned); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestLastWriteError fills the database (a low max_page_count makes SQLite
// answer "database or disk is full") until an Ingest fails: the store must
// remember that failure, Ping must not clear it while the database is still
// full (its probe needs free pages, as an event does), and the first write
// that succeeds, a probe or an event, must clear it.
func TestLastWriteError(t *testing.T) {
	s := openTestStore(t, "full") // outcomes of durable writes are known after the sync
	ctx := context.Background()
	if at, err := s.LastWriteError(); err != nil || !at.IsZero() {
		t.Fatalf("new store: %v %v", at, err)
	}
	if _, err := s.wdb.Exec("PRAGMA max_page_count = 1"); err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"event":"x","data":{"pad":"` + strings.Repeat("x", 3000) + `"}}`)
	fill := func() error {
		t.Helper()
		for i := 0; i < 100; i++ {
			if _, err := s.Ingest(ctx, testEvent("src", fmt.Sprintf("e%d-%d", time.Now().UnixNano(), i), time.Now()), raw, nil); err != nil {
				return err
			}
		}
		t.Fatal("100 events of 3 KB stored in a full database")
		return nil
	}
	before := time.Now()
	ingestErr := fill()
	at, err := s.LastWriteError()
	if err == nil || err.Error() != ingestErr.Error() || at.Before(before) {
		t.Fatalf("after a failed Ingest (%v): last write error %v at %v", ingestErr, err, at)
	}
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "database or disk is full") {
		t.Fatalf("Ping of a full database: %v", err)
	}
	if _, err := s.LastWriteError(); err == nil {
		t.Fatal("a failed probe cleared the last write error")
	}
	if _, err := s.wdb.Exec("PRAGMA max_page_count = 1000000"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping with room again: %v", err)
	}
	if at, err := s.LastWriteError(); err != nil || !at.IsZero() {
		t.Fatalf("a successful probe left the last write error: %v %v", at, err)
	}
	// Full again, and this time an event clears it.
	if _, err := s.wdb.Exec("PRAGMA max_page_count = 1"); err != nil {
		t.Fatal(err)
	}
	fill()
	if _, err := s.wdb.Exec("PRAGMA max_page_count = 1000000"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ingest(ctx, testEvent("src", "after", time.Now()), raw, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LastWriteError(); err != nil {
		t.Fatalf("a stored event left the last write error: %v", err)
	}
}

// TestWriteOutcomeOrder: the syncer reports a batch's outcome after the
// writer may have committed (or failed) later batches; an older outcome
// must not overwrite a newer one.
func TestWriteOutcomeOrder(t *testing.T) {
	s := openTestStore(t, "normal")
	full := fmt.Errorf("database or disk is full")
	s.writeFailed(2, full)
	s.writeOK(1) // batch 1's sync ends after batch 2 failed
	if _, err := s.LastWriteError(); err != full {
		t.Fatalf("an older success cleared a newer failure: %v", err)
	}
	s.writeFailed(1, fmt.Errorf("sync: i/o error"))
	if _, err := s.LastWriteError(); err != full {
		t.Fatalf("an older failure replaced a newer one: %v", err)
	}
	s.writeOK(3)
	if _, err := s.LastWriteError(); err != nil {
		t.Fatalf("a newer success left the failure: %v", err)
	}
}
