package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
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
