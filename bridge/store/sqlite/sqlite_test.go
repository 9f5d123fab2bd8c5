package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/bridge/store/storetest"
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

// TestStore runs the store suite, with each sync mode: every subtest has a
// database file of its own.
func TestStore(t *testing.T) {
	for _, sync := range []string{"full", "normal"} {
		t.Run("sync="+sync, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) bridge.Store { return openTestStore(t, sync) })
		})
	}
}

// TestWriteRacingClose: a write queued while Close runs, after the writer
// took the last queued ones, is refused instead of waiting forever. The
// window is narrow, so it is tried in many rounds.
func TestWriteRacingClose(t *testing.T) {
	for round := range 40 {
		s := openTestStore(t, "normal")
		var wg sync.WaitGroup
		for w := range 64 {
			wg.Go(func() {
				for i := 0; ; i++ {
					_, err := s.Ingest(context.Background(), testEvent("src", fmt.Sprint(round, "-", w, "-", i), time.Now()), []byte(`{}`), nil)
					if err != nil {
						if !errors.Is(err, bridge.ErrStoreClosed) {
							t.Errorf("write racing Close: %v", err)
						}
						return
					}
				}
			})
		}
		time.Sleep(time.Millisecond)
		s.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: a write racing Close never returned", round)
		}
	}
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

// TestOpenDropsOldIndexes: a database made by an earlier version, with
// the indexes on events.received and every delivery's status, loses them
// on open and gains the one on failed deliveries, whose listing then reads
// through it.
func TestOpenDropsOldIndexes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	old := schema[:strings.Index(schema, "DROP INDEX")] + `
CREATE INDEX events_received ON events (received);
CREATE INDEX deliveries_status ON deliveries (status, id);
DROP INDEX deliveries_failed;`
	if _, err := db.Exec(old); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(bridge.StoreConfig{Path: path, Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.rdb.Query(`SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	got, err := collect(rows, err, scanOne[string])
	want := []string{"deliveries_due", "deliveries_errors", "deliveries_event", "deliveries_failed", "events_source"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("indexes after open: %q, %v; want %q", got, err, want)
	}
	var plan string
	if err := s.rdb.QueryRow(`EXPLAIN QUERY PLAN SELECT d.id FROM deliveries d WHERE d.status = 'failed' ORDER BY d.id DESC LIMIT 50`).
		Scan(new(int), new(int), new(int), &plan); err != nil || !strings.Contains(plan, "deliveries_failed") {
		t.Fatalf("plan of the failed listing: %q, %v", plan, err)
	}
}

// TestPruneInArrivalOrder: Prune walks events in the order they were
// stored, so one stored after a newer event (the clock set back) is kept
// until that one is pruned too; the walk does not stop at kept events
// with pending deliveries.
func TestPruneInArrivalOrder(t *testing.T) {
	s := openTestStore(t, "normal")
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cutoff := t0.Add(time.Hour)
	pending := []bridge.Planned{{Rule: "r", Sink: "x", Action: []byte(`{}`)}}
	for _, e := range []struct {
		id       string
		received time.Time
		planned  []bridge.Planned
	}{
		{"old-1", t0, nil},
		{"old-pending", t0.Add(time.Second), pending},
		{"old-2", t0.Add(2 * time.Second), nil},
		{"new", cutoff.Add(time.Hour), nil},
		{"old-after-new", t0.Add(3 * time.Second), nil}, // the clock was set back
	} {
		if _, err := s.Ingest(ctx, testEvent("src", e.id, e.received), []byte(`{}`), e.planned); err != nil {
			t.Fatal(err)
		}
	}
	left := func() []string {
		t.Helper()
		evs, err := s.Events(ctx, bridge.EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range evs {
			ids = append(ids, e.Event.ID)
		}
		return ids
	}
	if n, err := s.Prune(ctx, cutoff); err != nil || n != 2 {
		t.Fatalf("Prune: %d, %v; want 2", n, err)
	}
	if got := left(); !slices.Equal(got, []string{"old-after-new", "new", "old-pending"}) {
		t.Fatalf("left after the first prune: %q", got)
	}
	if n, err := s.Prune(ctx, cutoff.Add(2*time.Hour)); err != nil || n != 2 {
		t.Fatalf("Prune once the newer event is old too: %d, %v; want 2", n, err)
	}
	if got := left(); !slices.Equal(got, []string{"old-pending"}) {
		t.Fatalf("left after the second prune: %q", got)
	}
}
