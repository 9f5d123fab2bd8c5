package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"bridge/bridge"
	"bridge/bridge/store/postgres"
	"bridge/bridge/store/postgres/pgtest"
	"bridge/bridge/store/storetest"
)

var _ bridge.Store = (*postgres.Store)(nil)

// base is when the tests' events are received.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func open(t testing.TB, url string, cfg postgres.Config) *postgres.Store {
	t.Helper()
	cfg.URL = url
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := postgres.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// event is a test event with id, received at base plus offset.
func event(id string, offset time.Duration) (*bridge.Event, []byte) {
	raw := fmt.Appendf(nil, `{"id":%q,"type":"alert.triggered","data":{"alert_id":"A-%s","count":3}}`, id, id)
	return &bridge.Event{ID: id, Source: "sa", Vendor: "secureagentics", Type: "alert.triggered", Time: base.Add(-time.Minute),
		Received: base.Add(offset), Severity: "high", Title: "alert " + id, Subject: "A-" + id, Data: bridge.StoredData(raw)}, raw
}

func plan(sinks ...string) []bridge.Planned {
	var out []bridge.Planned
	for i, sk := range sinks {
		out = append(out, bridge.Planned{Rule: "r", Index: i, Sink: sk, Action: json.RawMessage(`{"text":"hi"}`)})
	}
	return out
}

func ingest(t testing.TB, s *postgres.Store, id string, offset time.Duration, planned []bridge.Planned) {
	t.Helper()
	ev, raw := event(id, offset)
	dup, err := s.Ingest(context.Background(), ev, raw, planned)
	if err != nil || dup {
		t.Fatalf("ingest %s: duplicate %v, %v", id, dup, err)
	}
}

func deliveries(t testing.TB, s *postgres.Store, f bridge.DeliveryFilter) []*bridge.DeliveryRecord {
	t.Helper()
	ds, err := s.Deliveries(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// sqlConn connects to the test database directly, for looking behind the
// store's back.
func sqlConn(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("fresh, then again", func(t *testing.T) {
		url := pgtest.TestDatabase(t)
		if err := postgres.Migrate(ctx, url); err != nil {
			t.Fatal(err)
		}
		if err := postgres.Migrate(ctx, url); err != nil {
			t.Fatalf("second run: %v", err)
		}
		open(t, url, postgres.Config{})
		var versions []int32
		if err := sqlConn(t, url).QueryRow(ctx, `SELECT array_agg(version ORDER BY version) FROM bridge_schema`).Scan(&versions); err != nil {
			t.Fatal(err)
		}
		if len(versions) != postgres.SchemaVersion || versions[len(versions)-1] != int32(postgres.SchemaVersion) {
			t.Errorf("bridge_schema versions %v, want 1..%d once each", versions, postgres.SchemaVersion)
		}
	})
	t.Run("three replicas starting at once", func(t *testing.T) {
		url := pgtest.TestDatabase(t)
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for range 3 {
			wg.Go(func() {
				s, err := postgres.Open(ctx, postgres.Config{URL: url})
				if err == nil {
					s.Close()
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		var n int
		if err := sqlConn(t, url).QueryRow(ctx, `SELECT count(*) FROM bridge_schema`).Scan(&n); err != nil || n != postgres.SchemaVersion {
			t.Errorf("bridge_schema has %d rows (%v), want %d", n, err, postgres.SchemaVersion)
		}
	})
	t.Run("a newer schema is refused", func(t *testing.T) {
		url := pgtest.TestDatabase(t)
		if err := postgres.Migrate(ctx, url); err != nil {
			t.Fatal(err)
		}
		newer := postgres.SchemaVersion + 1
		if _, err := sqlConn(t, url).Exec(ctx, `INSERT INTO bridge_schema (version) VALUES ($1)`, newer); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("postgres store: the database schema is version %d; this bridge knows up to %d: upgrade the bridge", newer, postgres.SchemaVersion)
		err := postgres.Migrate(ctx, url)
		if err == nil || err.Error() != want || !errors.Is(err, postgres.ErrSchemaNewer) {
			t.Errorf("Migrate: %v, want %q", err, want)
		}
		_, err = postgres.Open(ctx, postgres.Config{URL: url})
		if err == nil || err.Error() != want {
			t.Errorf("Open: %v, want %q", err, want)
		}
	})
}

// TestIngestDuplicateAcrossReplicas posts one event 200 times at once to
// two stores: exactly one is accepted, with one set of deliveries.
func TestIngestDuplicateAcrossReplicas(t *testing.T) {
	t.Parallel()
	url := pgtest.TestDatabase(t)
	stores := []*postgres.Store{open(t, url, postgres.Config{}), open(t, url, postgres.Config{})}
	planned := plan("jira", "slack")
	planned = append(planned, bridge.Planned{Rule: "r2", Index: 0, Sink: "jira", Err: errors.New(`template: summary: map has no entry for key "x"`)})
	var accepted, duplicates atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			ev, raw := event("same", 0)
			<-start
			dup, err := stores[i%2].Ingest(context.Background(), ev, raw, planned)
			switch {
			case err != nil:
				t.Error(err)
			case dup:
				duplicates.Add(1)
			default:
				accepted.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if accepted.Load() != 1 || duplicates.Load() != 199 {
		t.Errorf("accepted %d, duplicates %d; want 1 and 199", accepted.Load(), duplicates.Load())
	}
	evs, err := stores[1].Events(context.Background(), bridge.EventFilter{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("events: %d, %v", len(evs), err)
	}
	ds := deliveries(t, stores[0], bridge.DeliveryFilter{})
	if len(ds) != 3 {
		t.Fatalf("%d deliveries, want 3", len(ds))
	}
	slices.Reverse(ds) // oldest first
	for i, want := range []struct{ sink, status, lastError string }{
		{"jira", bridge.StatusPending, ""},
		{"slack", bridge.StatusPending, ""},
		{"jira", bridge.StatusFailed, `template: summary: map has no entry for key "x"`},
	} {
		if d := ds[i]; d.Sink != want.sink || d.Status != want.status || d.LastError != want.lastError || d.EventID != "same" {
			t.Errorf("delivery %d: %+v, want %+v", i, d, want)
		}
	}
}

// TestStore runs the store suite on one database: every subtest opens a
// store of its own on it, and keeps to its own sources and sinks.
func TestStore(t *testing.T) {
	t.Parallel()
	url := pgtest.TestDatabase(t)
	storetest.Run(t, func(t *testing.T) bridge.Store { return open(t, url, postgres.Config{}) })
}

// TestClaimExclusive has two stores work one queue at once: no delivery is
// claimed twice, and every one is delivered.
func TestClaimExclusive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.TestDatabase(t)
	stores := []*postgres.Store{open(t, url, postgres.Config{}), open(t, url, postgres.Config{})}
	const n = 300
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := w; i < n; i += 6 {
				ingest(t, stores[0], fmt.Sprint(i), 0, plan("siem"))
			}
		})
	}
	wg.Wait()

	now := base.Add(time.Minute)
	var mu sync.Mutex
	claimed := map[int64]int{}
	for w := range 6 {
		s := stores[w%2]
		wg.Go(func() {
			for {
				ids, _, _, err := s.Due(ctx, "siem", now, 20, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ids) == 0 {
					return
				}
				ds, _, err := s.Claim(ctx, ids, now)
				if err != nil {
					t.Error(err)
					return
				}
				outs := make([]bridge.Outcome, len(ds))
				mu.Lock()
				for i, d := range ds {
					claimed[d.ID]++
					outs[i] = bridge.Outcome{ID: d.ID, Status: bridge.StatusDelivered, At: now}
				}
				mu.Unlock()
				if err := s.Record(ctx, outs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(claimed) != n {
		t.Errorf("%d deliveries claimed, want %d", len(claimed), n)
	}
	for id, k := range claimed {
		if k != 1 {
			t.Errorf("delivery %d claimed %d times", id, k)
		}
	}
	if ds := deliveries(t, stores[1], bridge.DeliveryFilter{Status: bridge.StatusDelivered}); len(ds) != n {
		t.Errorf("%d delivered, want %d", len(ds), n)
	}
	for _, d := range deliveries(t, stores[1], bridge.DeliveryFilter{}) {
		if d.Attempts != 1 {
			t.Errorf("delivery %d: %d attempts", d.ID, d.Attempts)
		}
	}
}

// TestLeaseTakeover: a replica that stops renewing loses its deliveries to
// another once the lease has run out, and its late outcome is not applied.
func TestLeaseTakeover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.TestDatabase(t)
	lease := time.Minute
	var taken atomic.Int32
	a := open(t, url, postgres.Config{Lease: lease, Replica: "a"})
	b := open(t, url, postgres.Config{Lease: lease, Replica: "b", OnTakeover: func(sink string) {
		if sink == "jira" {
			taken.Add(1)
		}
	}})
	ingest(t, a, "e1", 0, plan("jira"))
	t0 := base.Add(time.Second)
	ids, _, _, err := a.Due(ctx, "jira", t0, 10, nil)
	if err != nil || len(ids) != 1 {
		t.Fatalf("due: %v, %v", ids, err)
	}
	id := ids[0]
	if ds, _, err := a.Claim(ctx, ids, t0); err != nil || len(ds) != 1 {
		t.Fatalf("a's claim: %v, %v", ds, err)
	}

	// While a's lease lives, b sees nothing due and claims nothing.
	mid := t0.Add(lease / 2)
	ids, _, nextAt, err := b.Due(ctx, "jira", mid, 10, nil)
	if err != nil || len(ids) != 0 || !nextAt.Equal(t0.Add(lease)) {
		t.Errorf("b's due while a holds the lease: %v, next %v (want %v), %v", ids, nextAt, t0.Add(lease), err)
	}
	if ds, _, err := b.Claim(ctx, []int64{id}, mid); err != nil || len(ds) != 0 {
		t.Errorf("b claimed a's live lease: %v, %v", ds, err)
	}
	// a renews at mid: the lease now ends at mid+lease.
	if lost, err := a.Renew(ctx, []int64{id}, mid); err != nil || len(lost) != 0 {
		t.Errorf("a's renew: lost %v, %v", lost, err)
	}
	if ds, _, _ := b.Claim(ctx, []int64{id}, t0.Add(lease+time.Millisecond)); len(ds) != 0 {
		t.Errorf("b claimed a renewed lease")
	}

	// a goes quiet; once the renewed lease has run out, b takes over.
	after := mid.Add(lease + time.Millisecond)
	ids, _, _, _ = b.Due(ctx, "jira", after, 10, nil)
	ds, _, err := b.Claim(ctx, ids, after)
	if err != nil || len(ds) != 1 || ds[0].ID != id || ds[0].Attempt != 1 {
		t.Fatalf("b's takeover: %v, %v", ds, err)
	}
	if taken.Load() != 1 {
		t.Errorf("OnTakeover called %d times, want 1", taken.Load())
	}
	if lost, err := a.Renew(ctx, []int64{id}, after); err != nil || !slices.Equal(lost, []int64{id}) {
		t.Errorf("a's renew after the takeover: lost %v, %v", lost, err)
	}
	// a's late outcome is not applied; b's is.
	if err := a.Record(ctx, []bridge.Outcome{{ID: id, Status: bridge.StatusFailed, Error: "a's timeout", At: after}}); err != nil {
		t.Fatal(err)
	}
	if d := deliveries(t, a, bridge.DeliveryFilter{})[0]; d.Status != bridge.StatusPending || d.Attempts != 0 {
		t.Errorf("a's stale outcome was applied: %+v", d)
	}
	if err := b.Record(ctx, []bridge.Outcome{{ID: id, Status: bridge.StatusDelivered, Result: "OPS-7", At: after}}); err != nil {
		t.Fatal(err)
	}
	// Once recorded by b, a's outcome still changes nothing.
	if err := a.Record(ctx, []bridge.Outcome{{ID: id, Status: bridge.StatusFailed, Error: "a's timeout", At: after}}); err != nil {
		t.Fatal(err)
	}
	if d := deliveries(t, a, bridge.DeliveryFilter{})[0]; d.Status != bridge.StatusDelivered || d.Attempts != 1 || d.Result != "OPS-7" {
		t.Errorf("after b's outcome: %+v", d)
	}
}

// waitListening waits until n stores' listeners are LISTENing on url's
// database.
func waitListening(t *testing.T, url string, n int) {
	t.Helper()
	c := sqlConn(t, url)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var k int
		if err := c.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE '%LISTEN bridge_due'`).Scan(&k); err != nil {
			t.Fatal(err)
		}
		if k >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d listeners after 10s", k, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// woken collects the sinks a store's commit callback is told of.
type woken struct {
	ch chan map[string]bool
}

func listenOn(s *postgres.Store) *woken {
	w := &woken{ch: make(chan map[string]bool, 100)}
	s.SetOnCommit(func(sinks map[string]bool) { w.ch <- sinks })
	return w
}

// expect waits up to within for every sink in want to be told of.
func (w *woken) expect(t *testing.T, within time.Duration, want ...string) {
	t.Helper()
	left := map[string]bool{}
	for _, sk := range want {
		left[sk] = true
	}
	timer := time.NewTimer(within)
	defer timer.Stop()
	for len(left) > 0 {
		select {
		case m := <-w.ch:
			for sk := range m {
				delete(left, sk)
			}
		case <-timer.C:
			t.Fatalf("not woken for %v within %v", left, within)
		}
	}
}

// quiet checks that nothing more is told within d.
func (w *woken) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-w.ch:
		t.Errorf("woken again for %v", m)
	case <-time.After(d):
	}
}

// TestNotifyAcrossStores: a store learns within a second of deliveries
// another made due, by ingest or by replay (from a process that listens to
// nothing, as `bridge replay`), and of its own commits once.
func TestNotifyAcrossStores(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.TestDatabase(t)
	a, b := open(t, url, postgres.Config{}), open(t, url, postgres.Config{})
	cli := open(t, url, postgres.Config{})
	wa, wb := listenOn(a), listenOn(b)
	waitListening(t, url, 2)

	ingest(t, a, "e1", 0, plan("jira", "slack"))
	wb.expect(t, time.Second, "jira", "slack")
	wa.expect(t, time.Second, "jira", "slack")
	wa.quiet(t, 300*time.Millisecond) // its own notification is not a second wake

	// A failed delivery wakes nobody; its replay wakes every listener.
	ingest(t, a, "e2", 0, []bridge.Planned{{Rule: "r", Sink: "splunk", Err: errors.New("bad")}})
	wb.quiet(t, 200*time.Millisecond)
	if ids, err := cli.Replay(ctx, nil, base.Add(time.Hour)); err != nil || len(ids) != 1 {
		t.Fatalf("replay: %v, %v", ids, err)
	}
	wb.expect(t, time.Second, "splunk")
	wa.expect(t, time.Second, "splunk")

	// A duplicate wakes nobody.
	ev, raw := event("e1", 0)
	if dup, err := a.Ingest(ctx, ev, raw, plan("jira")); err != nil || !dup {
		t.Fatalf("duplicate: %v, %v", dup, err)
	}
	wb.quiet(t, 200*time.Millisecond)

	// A sink name too long for a notification is stored all the same (its
	// deliveries are found by polling), and the other sinks are notified.
	long := strings.Repeat("s", 8100)
	ingest(t, a, "e3", 0, plan(long, "slack"))
	wb.expect(t, time.Second, "slack")
	if ds := deliveries(t, b, bridge.DeliveryFilter{Sink: long}); len(ds) != 1 || ds[0].Status != bridge.StatusPending {
		t.Errorf("deliveries to a sink with a long name: %+v", ds)
	}
}

// TestSinkLocksAcrossStores: a key held by one store blocks the other until
// released; the wait ends with its context.
func TestSinkLocksAcrossStores(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.TestDatabase(t)
	a, b := open(t, url, postgres.Config{}), open(t, url, postgres.Config{})
	la, lb := a.SinkLocks("jira"), b.SinkLocks("jira")
	if a.SinkLocks("jira") != la {
		t.Error("SinkLocks returned another Locker for the same sink")
	}
	unlockA, err := la.Lock(ctx, "OPS:1")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the wait ends at the deadline", func(t *testing.T) {
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := lb.Lock(wctx, "OPS:1"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("lock held elsewhere: %v, want the deadline", err)
		}
		if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
			t.Errorf("gave up after %v", d)
		}
	})
	t.Run("the wait ends when cancelled", func(t *testing.T) {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := lb.Lock(wctx, "OPS:1")
			done <- err
		}()
		time.Sleep(100 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled wait: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("cancelled wait did not end")
		}
	})
	t.Run("other keys and sinks are free", func(t *testing.T) {
		for _, l := range []struct {
			l   bridge.Locker
			key string
		}{{lb, "OPS:2"}, {b.SinkLocks("slack"), "OPS:1"}} {
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			u, err := l.l.Lock(wctx, l.key)
			cancel()
			if err != nil {
				t.Errorf("lock %s: %v", l.key, err)
				continue
			}
			u()
		}
	})

	got := make(chan func(), 1)
	go func() {
		u, err := lb.Lock(ctx, "OPS:1")
		if err != nil {
			t.Error(err)
			u = func() {}
		}
		got <- u
	}()
	select {
	case <-got:
		t.Fatal("b took the lock while a held it")
	case <-time.After(200 * time.Millisecond):
	}
	unlockA()
	unlockA() // a second call does nothing
	select {
	case u := <-got:
		u()
	case <-time.After(3 * time.Second):
		t.Fatal("b did not get the lock after a released it")
	}
	// Nothing is left held or waiting, on the server either.
	c := sqlConn(t, url)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
			WHERE l.locktype = 'advisory' AND d.datname = current_database()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d advisory locks left", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// In one process, waiters queue locally and take no connection.
	u, _ := la.Lock(ctx, "OPS:3")
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			u, err := la.Lock(ctx, "OPS:3")
			if err == nil {
				u()
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	var waiting int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
		WHERE l.locktype = 'advisory' AND d.datname = current_database() AND NOT l.granted`).Scan(&waiting); err != nil {
		t.Fatal(err)
	}
	if waiting != 0 {
		t.Errorf("%d waits on the server for a key held in this process", waiting)
	}
	u()
	wg.Wait()
}

func TestStateAcrossStores(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.TestDatabase(t)
	a, b := open(t, url, postgres.Config{}).SinkState("jira"), open(t, url, postgres.Config{})
	if err := a.Put(ctx, "key:1", "OPS-1"); err != nil {
		t.Fatal(err)
	}
	get := func(st bridge.State, want string, wantOK bool) {
		t.Helper()
		v, ok, err := st.Get(ctx, "key:1")
		if err != nil || v != want || ok != wantOK {
			t.Errorf("get: %q %v %v, want %q %v", v, ok, err, want, wantOK)
		}
	}
	get(b.SinkState("jira"), "OPS-1", true)
	get(b.SinkState("slack"), "", false)
	if err := b.SinkState("jira").Put(ctx, "key:1", "OPS-2"); err != nil {
		t.Fatal(err)
	}
	get(a, "OPS-2", true)
	if err := b.SinkState("jira").Delete(ctx, "key:1"); err != nil {
		t.Fatal(err)
	}
	get(a, "", false)
}

// TestPrune deletes finished old events over several batches and keeps
// those with a pending delivery.
func TestPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, pgtest.TestDatabase(t), postgres.Config{})
	const old = 2500 // more than two batches
	failed := []bridge.Planned{{Rule: "r", Sink: "jira", Err: errors.New("bad")}}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < old; i += 8 {
				planned := failed
				if i%10 == 0 { // one event in ten still has work
					planned = append(slices.Clone(failed), bridge.Planned{Rule: "r", Index: 1, Sink: "slack", Action: json.RawMessage(`{}`)})
				}
				ingest(t, s, fmt.Sprint("old-", i), time.Duration(i)*time.Millisecond, planned)
			}
		})
	}
	wg.Wait()
	for i := range 5 {
		ingest(t, s, fmt.Sprint("new-", i), 48*time.Hour, failed)
	}
	n, err := s.Prune(ctx, base.Add(24*time.Hour))
	if err != nil || n != old-old/10 {
		t.Fatalf("prune: %d, %v; want %d", n, err, old-old/10)
	}
	evs, _ := s.Events(ctx, bridge.EventFilter{})
	if len(evs) != old/10+5 {
		t.Errorf("%d events left, want %d", len(evs), old/10+5)
	}
	if ds := deliveries(t, s, bridge.DeliveryFilter{Status: bridge.StatusPending}); len(ds) != old/10 {
		t.Errorf("%d pending deliveries left, want %d", len(ds), old/10)
	}
	// As in the SQLite store, the finished deliveries of a kept event go.
	if ds := deliveries(t, s, bridge.DeliveryFilter{Status: bridge.StatusFailed}); len(ds) != 5 {
		t.Errorf("%d failed deliveries left, want the 5 new ones", len(ds))
	}
	if n, err := s.Prune(ctx, base.Add(24*time.Hour)); err != nil || n != 0 {
		t.Errorf("second prune: %d, %v", n, err)
	}
}

func TestImport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, pgtest.TestDatabase(t), postgres.Config{})
	e1, raw1 := event("e1", 0)
	e2, raw2 := event("e2", time.Second)
	at := func(d time.Duration) time.Time { return base.Add(d) }
	evs := []postgres.ImportedEvent{
		{Event: e1, Raw: raw1, Deliveries: []postgres.ImportedDelivery{
			{Rule: "r", Index: 0, Sink: "jira", Action: json.RawMessage(`{"summary":"x"}`), Status: bridge.StatusDelivered, Attempts: 2,
				Result: "OPS-1", Created: at(0), WindowStart: at(0), NextAt: at(time.Minute), Updated: at(time.Minute)},
			{Rule: "r", Index: 1, Sink: "slack", Status: bridge.StatusPending, Attempts: 1, LastError: "ratelimited",
				Created: at(0), WindowStart: at(0), NextAt: at(time.Hour), Updated: at(time.Minute)},
		}},
		{Event: e2, Raw: raw2, Deliveries: []postgres.ImportedDelivery{
			{Rule: "q", Index: 0, Sink: "splunk", Status: bridge.StatusFailed, Attempts: 9, LastError: "403: forbidden",
				Created: at(time.Second), WindowStart: at(time.Second), NextAt: at(time.Second), Updated: at(2 * time.Second)},
		}},
	}
	w := listenOn(s)
	c, err := s.Import(ctx, evs)
	if err != nil || c != (postgres.ImportCounts{Events: 2, Deliveries: 3}) {
		t.Fatalf("import: %+v, %v", c, err)
	}
	w.expect(t, time.Second, "slack")
	if c, err := s.Import(ctx, evs); err != nil || c != (postgres.ImportCounts{}) {
		t.Errorf("second import: %+v, %v", c, err)
	}
	ds := deliveries(t, s, bridge.DeliveryFilter{})
	if len(ds) != 3 {
		t.Fatalf("%d deliveries", len(ds))
	}
	slices.Reverse(ds)
	if d := ds[0]; d.Status != bridge.StatusDelivered || d.Attempts != 2 || d.Result != "OPS-1" || !d.NextAt.Equal(at(time.Minute)) ||
		string(d.Action) != `{"summary":"x"}` {
		t.Errorf("delivered one: %+v", d)
	}
	if d := ds[2]; d.Status != bridge.StatusFailed || d.LastError != "403: forbidden" || !d.Updated.Equal(at(2*time.Second)) || d.EventID != "e2" {
		t.Errorf("failed one: %+v", d)
	}
	// The pending one is due when it was, and claimable.
	ids, _, _, _ := s.Due(ctx, "slack", at(time.Hour), 10, nil)
	if claimed, _, err := s.Claim(ctx, ids, at(time.Hour)); err != nil || len(claimed) != 1 || claimed[0].Attempt != 2 {
		t.Errorf("claim of the imported pending delivery: %v, %v", claimed, err)
	}
	if dup, err := s.Ingest(ctx, e1, raw1, plan("jira")); err != nil || !dup {
		t.Errorf("ingest of an imported event: duplicate %v, %v", dup, err)
	}

	// State: a key written here already is kept.
	if err := s.SinkState("jira").Put(ctx, "k2", "newer"); err != nil {
		t.Fatal(err)
	}
	rows := []postgres.StateRow{{Sink: "jira", Key: "k1", Value: "OPS-1", Updated: at(0)}, {Sink: "jira", Key: "k2", Value: "older", Updated: at(0)}}
	if n, err := s.ImportState(ctx, rows); err != nil || n != 1 {
		t.Errorf("import state: %d, %v", n, err)
	}
	if n, err := s.ImportState(ctx, rows); err != nil || n != 0 {
		t.Errorf("second import state: %d, %v", n, err)
	}
	for k, want := range map[string]string{"k1": "OPS-1", "k2": "newer"} {
		if v, _, _ := s.SinkState("jira").Get(ctx, k); v != want {
			t.Errorf("state %s = %q, want %q", k, v, want)
		}
	}
}

// TestPasswordNeverInErrors opens bad URLs carrying a password.
func TestPasswordNeverInErrors(t *testing.T) {
	t.Parallel()
	const secret = "Sup3r-S3cret"
	odd := "p@ss:w/rd%" + secret
	cases := []struct{ name, url, prefix string }{
		{"closed port", "postgres://bridge:" + secret + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "postgres store: connect to 127.0.0.1:1/db: "},
		{"escaped password", "postgres://bridge:" + url.QueryEscape(odd) + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "postgres store: connect to 127.0.0.1:1/db: "},
		{"bad port", "postgres://bridge:" + secret + "@127.0.0.1:port/db", "postgres store: invalid URL: "},
		{"broken host", "postgres://bridge:" + secret + "@[::1/db", "postgres store: invalid URL: "},
		{"bad sslmode", "postgres://bridge:" + secret + "@127.0.0.1:5432/db?sslmode=sometimes", "postgres store: invalid URL: "},
		{"bad pool setting", "postgres://bridge:" + secret + "@127.0.0.1:5432/db?pool_max_conns=many", "postgres store: invalid URL: "},
		{"keyword form", "host=127.0.0.1 port=1 dbname=db user=bridge password=" + secret + " connect_timeout=2", "postgres store: connect to 127.0.0.1:1/db: "},
		{"password parameter", "postgres://bridge@127.0.0.1:1/db?password=" + secret + "&connect_timeout=2", "postgres store: connect to 127.0.0.1:1/db: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := postgres.Open(context.Background(), postgres.Config{URL: c.url})
			merr := postgres.Migrate(context.Background(), c.url)
			for _, err := range []error{err, merr} {
				if err == nil {
					t.Fatal("no error")
				}
				if msg := err.Error(); strings.Contains(msg, secret) || strings.Contains(msg, "S3cret") {
					t.Errorf("the password is in %q", msg)
				}
			}
			if !strings.HasPrefix(err.Error(), c.prefix) {
				t.Errorf("Open: %q, want it to start %q", err, c.prefix)
			}
		})
	}
}

// closedPort returns a local port nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestUnreachable: with the database gone, every call fails promptly; when
// it is back, the same store works again.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.TestDatabase(t)

	t.Run("open", func(t *testing.T) {
		start := time.Now()
		_, err := postgres.Open(ctx, postgres.Config{URL: pgtest.WithHost(t, dbURL, closedPort(t))})
		if err == nil || !strings.HasPrefix(err.Error(), "postgres store: connect to 127.0.0.1:") {
			t.Errorf("open: %v", err)
		}
		if d := time.Since(start); d > 6*time.Second {
			t.Errorf("open took %v", d)
		}
	})

	u, _ := url.Parse(dbURL)
	proxy := pgtest.NewProxy(t, u.Host)
	timeout := time.Second
	s := open(t, pgtest.WithHost(t, dbURL, proxy.Addr()), postgres.Config{Timeout: timeout})
	direct := open(t, dbURL, postgres.Config{})
	w := listenOn(s)
	waitListening(t, dbURL, 1)
	ingest(t, s, "before", 0, plan("jira"))
	w.expect(t, time.Second, "jira")
	ids, _, _, _ := s.Due(ctx, "jira", base.Add(time.Minute), 10, nil)

	// calls are every method of the store, each reporting its error.
	n := 0
	calls := map[string]func() error{
		"ingest": func() error {
			n++
			ev, raw := event(fmt.Sprint("during-", n), 0)
			_, err := s.Ingest(ctx, ev, raw, plan("jira"))
			return err
		},
		"events":     func() error { _, err := s.Events(ctx, bridge.EventFilter{}); return err },
		"deliveries": func() error { _, err := s.Deliveries(ctx, bridge.DeliveryFilter{}); return err },
		"pending":    func() error { _, err := s.PendingCounts(ctx); return err },
		"due":        func() error { _, _, _, err := s.Due(ctx, "jira", base, 10, nil); return err },
		"claim":      func() error { _, _, err := s.Claim(ctx, ids, base.Add(time.Minute)); return err },
		"renew":      func() error { _, err := s.Renew(ctx, ids, base.Add(time.Minute)); return err },
		"record":     func() error { return s.Record(ctx, []bridge.Outcome{{ID: -1, Status: bridge.StatusDelivered}}) },
		"replay":     func() error { _, err := s.Replay(ctx, []int64{-1}, base); return err },
		"prune":      func() error { _, err := s.Prune(ctx, base.Add(-time.Hour)); return err },
		"state get":  func() error { _, _, err := s.SinkState("jira").Get(ctx, "k"); return err },
		"state put":  func() error { return s.SinkState("jira").Put(ctx, "k", "v") },
		"state del":  func() error { return s.SinkState("jira").Delete(ctx, "k") },
		"ping":       func() error { return s.Ping(ctx) },
		"lock": func() error {
			lctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			u, err := s.SinkLocks("jira").Lock(lctx, "k")
			if err == nil {
				u()
			}
			return err
		},
	}
	down := func(t *testing.T) {
		var wg sync.WaitGroup
		for name, call := range calls {
			wg.Go(func() {
				start := time.Now()
				err := call()
				if err == nil {
					t.Errorf("%s: no error", name)
				}
				if d := time.Since(start); d > timeout+2*time.Second {
					t.Errorf("%s took %v", name, d)
				}
				t.Logf("%s: %v", name, err)
			})
		}
		wg.Wait()
		if _, err := s.LastWriteError(); err == nil {
			t.Error("LastWriteError is nil")
		}
	}
	up := func(t *testing.T) {
		proxy.Restore()
		deadline := time.Now().Add(15 * time.Second)
		for s.Ping(ctx) != nil {
			if time.Now().After(deadline) {
				t.Fatal("the store did not come back")
			}
			time.Sleep(50 * time.Millisecond)
		}
		for name, call := range calls {
			if err := call(); err != nil {
				t.Errorf("%s after the database came back: %v", name, err)
			}
		}
		if _, err := s.LastWriteError(); err != nil {
			t.Errorf("LastWriteError after the database came back: %v", err)
		}
	}

	t.Run("connection cut", func(t *testing.T) {
		proxy.Cut()
		down(t)
		up(t)
	})
	t.Run("network silent", func(t *testing.T) {
		proxy.Hang()
		down(t)
		proxy.Cut() // the hung connections go, as a TCP timeout would end them
		up(t)
	})
	// The listener reconnected: another store's ingest wakes s again.
	for len(w.ch) > 0 {
		<-w.ch
	}
	waitListening(t, dbURL, 1)
	ingest(t, direct, "after", 0, plan("slack"))
	w.expect(t, time.Second, "slack")
}

func BenchmarkIngest(b *testing.B) {
	s := open(b, pgtest.TestDatabase(b), postgres.Config{})
	planned := plan("jira", "slack")
	_, raw := event("x", 0)
	var n atomic.Int64
	b.SetParallelism(8) // webhooks arrive concurrently; each waits for a commit
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ev, _ := event(fmt.Sprint(n.Add(1)), 0)
			if _, err := s.Ingest(context.Background(), ev, raw, planned); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// holdWriters locks the events table from a connection of its own, so that
// every batch of s's writers waits, and ingests blockers until no writer is
// left idle: whatever is ingested next queues, and goes in one batch once
// release is called. It returns the blockers' results (read after release).
// Blockers use ctx; the last one queued, the others in flight.
func holdWriters(t *testing.T, ctx context.Context, s *postgres.Store, url string) (release func(), blockers []chan error) {
	t.Helper()
	c := sqlConn(t, url)
	tx, err := c.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), `LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	mon := sqlConn(t, url)
	waiting := func() int {
		var n int
		if err := mon.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := range 16 {
		before := waiting()
		res := make(chan error, 1)
		blockers = append(blockers, res)
		go func() {
			ev, raw := event(fmt.Sprintf("blocker-%d", i), 0)
			_, err := s.Ingest(ctx, ev, raw, nil)
			res <- err
		}()
		rose := false
		for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if waiting() > before {
				rose = true
				break
			}
		}
		if !rose {
			break // every writer waits: this blocker is queued
		}
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if err := tx.Commit(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(release)
	return release, blockers
}

// TestIngestBatch ingests, in one batch, an event twice (one accepted, the
// other a duplicate, with the deliveries of the accepted one only), one
// stored before (a duplicate), two the database refuses (a NUL byte in a
// text field, an id too long for the index: each fails alone, with the
// database's error) and new ones (stored); one whose caller gave up while
// it waited in the queue returns at once and is not stored.
func TestIngestBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.TestDatabase(t)
	s := open(t, url, postgres.Config{})
	w := listenOn(s)
	ingest(t, s, "old", 0, plan("c"))
	w.expect(t, time.Second, "c")

	release, blockers := holdWriters(t, ctx, s, url)
	type result struct {
		name string
		dup  bool
		err  error
	}
	results := make(chan result, 16)
	post := func(name string, ev *bridge.Event, raw []byte, planned []bridge.Planned) {
		go func() {
			dup, err := s.Ingest(ctx, ev, raw, planned)
			results <- result{name, dup, err}
		}()
	}
	for _, name := range []string{"twice-a", "twice-b"} {
		// Rules of their own: both sets of deliveries could be stored.
		ev, raw := event("twice", 0)
		sink := strings.TrimPrefix(name, "twice-")
		post(name, ev, raw, []bridge.Planned{{Rule: "r-" + sink, Sink: sink, Action: json.RawMessage(`{}`)}})
	}
	ev, raw := event("old", 0)
	post("old", ev, raw, plan("c"))
	// Text PostgreSQL refuses (invalid UTF-8; the receivers never let it
	// through, but the store must not fail the batch for it).
	ev, raw = event("badtext", 0)
	ev.Title = "bad\xfftitle"
	post("badtext", ev, raw, plan("n"))
	ev, raw = event(noise(3000), 0)
	post("long", ev, raw, plan("l"))
	// Refused, then the same id again, fixed: stored.
	ev, raw = event("fixed", 0)
	ev.Subject = "\xff"
	post("fixed-bad", ev, raw, plan("f"))
	time.Sleep(20 * time.Millisecond)
	ev, raw = event("fixed", 0)
	post("fixed", ev, raw, plan("f"))
	for _, name := range []string{"ok1", "ok2"} {
		ev, raw := event(name, 0)
		post(name, ev, raw, plan("d"))
	}
	gctx, cancel := context.WithCancel(ctx)
	gone := make(chan error, 1)
	go func() {
		ev, raw := event("gone", 0)
		_, err := s.Ingest(gctx, ev, raw, plan("g"))
		gone <- err
	}()
	time.Sleep(100 * time.Millisecond) // all queued
	cancel()
	select {
	case err := <-gone:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("gone: %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Error("a caller that gave up while queued did not return")
	}
	select {
	case r := <-results:
		t.Fatalf("%s answered before its batch could commit: %+v", r.name, r)
	default:
	}
	release()

	got := map[string]result{}
	for range 9 {
		select {
		case r := <-results:
			got[r.name] = r
		case <-time.After(10 * time.Second):
			t.Fatalf("answers: %+v", got)
		}
	}
	for i, res := range blockers {
		if err := <-res; err != nil {
			t.Errorf("blocker %d: %v", i, err)
		}
	}
	if r := got["badtext"]; r.err == nil || !strings.Contains(r.err.Error(), "(SQLSTATE 22021)") || !strings.HasPrefix(r.err.Error(), "postgres store: ingest: ") {
		t.Errorf("badtext: %+v, want SQLSTATE 22021", r)
	}
	if r := got["long"]; r.err == nil || !strings.Contains(r.err.Error(), "(SQLSTATE 54000)") {
		t.Errorf("long: %+v, want SQLSTATE 54000", r)
	}
	if r := got["fixed-bad"]; r.err == nil || !strings.Contains(r.err.Error(), "(SQLSTATE 22021)") {
		t.Errorf("fixed-bad: %+v, want SQLSTATE 22021", r)
	}
	for _, name := range []string{"ok1", "ok2", "fixed"} {
		if r := got[name]; r.err != nil || r.dup {
			t.Errorf("%s: %+v, want accepted", name, r)
		}
	}
	if r := got["old"]; r.err != nil || !r.dup {
		t.Errorf("old: %+v, want duplicate", r)
	}
	a, b := got["twice-a"], got["twice-b"]
	if a.err != nil || b.err != nil || a.dup == b.dup {
		t.Fatalf("twice: %+v and %+v, want one accepted and one duplicate", a, b)
	}
	winner := "a"
	if a.dup {
		winner = "b"
	}
	if ds := deliveries(t, s, bridge.DeliveryFilter{EventID: "twice"}); len(ds) != 1 || ds[0].Sink != winner {
		t.Errorf("deliveries of twice: %+v, want one to %s", ds, winner)
	}
	var ids []string
	if err := sqlConn(t, url).QueryRow(ctx, `SELECT array_agg(id ORDER BY id) FROM events WHERE id NOT LIKE 'blocker-%'`).Scan(&ids); err != nil {
		t.Fatal(err)
	}
	if want := []string{"fixed", "ok1", "ok2", "old", "twice"}; !slices.Equal(ids, want) {
		t.Errorf("stored %v, want %v", ids, want)
	}
	w.expect(t, time.Second, winner, "d")
	if ds := deliveries(t, s, bridge.DeliveryFilter{Sink: "c"}); len(ds) != 1 {
		t.Errorf("%d deliveries to c, want the first event's only", len(ds))
	}
	ingest(t, s, "after", 0, nil)
	if _, err := s.LastWriteError(); err != nil {
		t.Errorf("LastWriteError after a stored event: %v", err)
	}
}

// noise is n letters that do not compress, so that an index entry of them
// is n bytes long.
func noise(n int) string {
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = 'a' + byte(x%26)
	}
	return string(b)
}

// TestIngestInFlight: a caller whose context ends while its event's batch
// is in flight gets the commit's outcome, not its context's error (and one
// whose event was still queued, its context's error); Close stores what was
// queued before it, and refuses what comes after.
func TestIngestInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.TestDatabase(t)
	s := open(t, url, postgres.Config{})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	release, blockers := holdWriters(t, short, s, url)
	ev, raw := event("queued", 0)
	queued := make(chan error, 1)
	go func() {
		_, err := s.Ingest(ctx, ev, raw, plan("x"))
		queued <- err
	}()
	time.Sleep(50 * time.Millisecond)
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	time.Sleep(50 * time.Millisecond)
	if _, err := s.Ingest(ctx, ev, raw, nil); !errors.Is(err, bridge.ErrStoreClosed) {
		t.Errorf("ingest after Close: %v, want ErrStoreClosed", err)
	}
	<-short.Done()
	last := blockers[len(blockers)-1]
	select {
	case err := <-last:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("blocker queued when its context ended: %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(time.Second):
		t.Errorf("a blocker queued when its context ended did not return")
	}
	select {
	case <-closed:
		t.Fatal("Close returned before the queued event was stored")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err := <-queued; err != nil {
		t.Errorf("queued before Close: %v", err)
	}
	for i, res := range blockers[:len(blockers)-1] {
		if err := <-res; err != nil {
			t.Errorf("blocker %d, in flight past its caller's context: %v", i, err)
		}
	}
	<-closed
	var ids []string
	if err := sqlConn(t, url).QueryRow(ctx, `SELECT array_agg(id ORDER BY id) FROM events`).Scan(&ids); err != nil {
		t.Fatal(err)
	}
	want := []string{"queued"}
	for i := range blockers[:len(blockers)-1] {
		want = append(want, fmt.Sprintf("blocker-%d", i))
	}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("stored %v, want %v", ids, want)
	}
}

// BenchmarkIngestConcurrent is the load of `bridge bench --concurrency 32`
// on the store alone: 32 webhooks in flight, with no deliveries (as the
// benchmark's bridge has no rules), and with two each; and one at a time,
// for the latency of an ack on a quiet store.
func BenchmarkIngestConcurrent(b *testing.B) {
	b.Run("32 no deliveries", func(b *testing.B) { benchIngest(b, 32, nil) })
	b.Run("32 two deliveries", func(b *testing.B) { benchIngest(b, 32, plan("jira", "slack")) })
	b.Run("1 no deliveries", func(b *testing.B) { benchIngest(b, 1, nil) })
	b.Run("1 two deliveries", func(b *testing.B) { benchIngest(b, 1, plan("jira", "slack")) })
}

func benchIngest(b *testing.B, concurrency int, planned []bridge.Planned) {
	s := open(b, pgtest.TestDatabase(b), postgres.Config{})
	_, raw := event("x", 0)
	var n atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range concurrency {
		wg.Go(func() {
			for i := n.Add(1); i <= int64(b.N); i = n.Add(1) {
				ev, _ := event(fmt.Sprint(i), 0)
				if _, err := s.Ingest(context.Background(), ev, raw, planned); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkInsertFloor is what PostgreSQL itself costs, through pgx, with
// no store around it: the floor under any PostgreSQL ingest on the machine
// measured. "row per commit" is a trivial INSERT (a bigserial and a short
// text) from 32 connections at once, one durable commit each, as a store
// committing each webhook alone does at best; "32 rows per commit" inserts
// the same rows 32 to a statement (unnest) from one connection; "events, 32
// per commit" inserts rows of the events table (its five indexes, the
// benchmark's body) the same way, as group commit does at best. Measure the
// database's CPU per row around it (as scripts/bench-replicas.sh does) for
// the floor per event.
func BenchmarkInsertFloor(b *testing.B) {
	ctx := context.Background()
	b.Run("row per commit", func(b *testing.B) {
		url := pgtest.TestDatabase(b)
		c := sqlConn(b, url)
		if _, err := c.Exec(ctx, `CREATE TABLE floor (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
			b.Fatal(err)
		}
		conns := make([]*pgx.Conn, 32)
		for i := range conns {
			conns[i] = sqlConn(b, url)
		}
		var n atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		for _, c := range conns {
			wg.Go(func() {
				for i := n.Add(1); i <= int64(b.N); i = n.Add(1) {
					if _, err := c.Exec(ctx, `INSERT INTO floor (v) VALUES ($1)`, "event"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("32 rows per commit", func(b *testing.B) {
		url := pgtest.TestDatabase(b)
		c := sqlConn(b, url)
		if _, err := c.Exec(ctx, `CREATE TABLE floor (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
			b.Fatal(err)
		}
		vs := slices.Repeat([]string{"event"}, 32)
		b.ResetTimer()
		for i := 0; i < b.N; i += len(vs) {
			if _, err := c.Exec(ctx, `INSERT INTO floor (v) SELECT unnest($1::text[])`, vs[:min(len(vs), b.N-i)]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("events, 32 per commit", func(b *testing.B) {
		url := pgtest.TestDatabase(b)
		open(b, url, postgres.Config{}).Close() // the schema
		c := sqlConn(b, url)
		_, raw := event("x", 0)
		const k = 32
		ids := make([]string, k)
		raws := slices.Repeat([][]byte{raw}, k)
		b.ResetTimer()
		for i := 0; i < b.N; i += k {
			m := min(k, b.N-i)
			for j := range m {
				ids[j] = fmt.Sprint(i + j)
			}
			if _, err := c.Exec(ctx, `INSERT INTO events (source, id, vendor, type, time, received, severity, title, subject, raw)
				SELECT 'sa', id, 'secureagentics', 'alert.triggered', 0, 0, 'high', 'alert ' || id, 'A-' || id, raw
				FROM unnest($1::text[], $2::bytea[]) AS u (id, raw)
				ON CONFLICT (source, id) DO NOTHING`, ids[:m], raws[:m]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// TestIngestStalledBatch: a batch waiting for another transaction (a
// replica storing the same event, not committed yet) holds up the events
// queued behind it for a moment only; the waiting one ends as that
// transaction does.
func TestIngestStalledBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.TestDatabase(t)
	s := open(t, url, postgres.Config{})
	other, err := sqlConn(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx)
	if _, err := other.Exec(ctx, `INSERT INTO events (source, id, vendor, type, time, received, severity, title, subject, raw)
		VALUES ('sa', 'held', 'secureagentics', 'alert.triggered', 0, 0, 'high', '', '', '')`); err != nil {
		t.Fatal(err)
	}
	held := make(chan error, 1)
	go func() {
		ev, raw := event("held", 0)
		dup, err := s.Ingest(ctx, ev, raw, nil)
		if err == nil && dup {
			err = errors.New("duplicate of an event whose insert was rolled back")
		}
		held <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	ingest(t, s, "next", 0, plan("x"))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("an event queued behind a waiting batch took %v", d)
	}
	select {
	case err := <-held:
		t.Fatalf("the batch waiting for the other transaction returned: %v", err)
	default:
	}
	if err := other.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-held; err != nil {
		t.Errorf("held: %v", err)
	}
}

// TestNULText: a NUL in a title, a subject or a sink's error, which a text
// column refuses, is stored as U+FFFD instead of failing the webhook (a 503
// the vendor would retry for ever) or the outcome (a delivery sent again
// and again).
func TestNULText(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.TestDatabase(t), postgres.Config{})
	ctx := context.Background()
	ev, raw := event("nul", 0)
	ev.Title, ev.Subject = "disk\x00full", "host\x00"
	if dup, err := s.Ingest(ctx, ev, raw, plan("out")); err != nil || dup {
		t.Fatalf("Ingest: duplicate %v, %v", dup, err)
	}
	got, _, err := s.Event(ctx, ev.Source, ev.ID)
	if err != nil || got.Event.Title != "disk\uFFFDfull" || got.Event.Subject != "host\uFFFD" {
		t.Fatalf("stored %+v, %v", got, err)
	}
	ds := deliveries(t, s, bridge.DeliveryFilter{})
	now := time.Now()
	if claimed, _, err := s.Claim(ctx, []int64{ds[0].ID}, now); err != nil || len(claimed) != 1 {
		t.Fatalf("Claim: %d, %v", len(claimed), err)
	}
	if err := s.Record(ctx, []bridge.Outcome{{ID: ds[0].ID, Status: bridge.StatusFailed, Error: "HTTP 400: bad\x00byte", NextAt: now, At: now}}); err != nil {
		t.Fatal(err)
	}
	if d := deliveries(t, s, bridge.DeliveryFilter{})[0]; d.Status != bridge.StatusFailed || d.LastError != "HTTP 400: bad\uFFFDbyte" {
		t.Errorf("recorded %+v", d)
	}
}

// chainPlan plans rule "r": an action to first (id "a0"), then one to
// then, after it.
func chainPlan(first, then string) []bridge.Planned {
	p := plan(first, then)
	p[0].ID = "a0"
	p[1].After, p[1].AfterIndex = "a0", 0
	return p
}

// sinksWoken collects the sinks w is told of until every one of want was,
// then for settle more, and returns them all.
func (w *woken) sinksWoken(t *testing.T, within, settle time.Duration, want ...string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for slices.ContainsFunc(want, func(sk string) bool { return !got[sk] }) {
		select {
		case m := <-w.ch:
			for sk := range m {
				got[sk] = true
			}
		case <-deadline.C:
			t.Fatalf("woken for %v within %v, want %v", got, within, want)
		}
	}
	for end := time.After(settle); ; {
		select {
		case m := <-w.ch:
			for sk := range m {
				got[sk] = true
			}
		case <-end:
			return got
		}
	}
}

// claimOne claims the due delivery of sink at now through s, and fails the
// test unless it is the only one and has id want (when not 0).
func claimOne(t *testing.T, s *postgres.Store, sink string, now time.Time, want int64) int64 {
	t.Helper()
	ctx := context.Background()
	ids, _, _, err := s.Due(ctx, sink, now, 10, nil)
	if err != nil || len(ids) != 1 || (want != 0 && ids[0] != want) {
		t.Fatalf("due to %s: %v, %v; want one (%d)", sink, ids, err, want)
	}
	if ds, _, err := s.Claim(ctx, ids, now); err != nil || len(ds) != 1 {
		t.Fatalf("claim of %d: %v, %v", ids[0], ds, err)
	}
	return ids[0]
}

// delivery returns the delivery of event id to sink.
func delivery(t *testing.T, s *postgres.Store, id, sink string) *bridge.DeliveryRecord {
	t.Helper()
	ds := deliveries(t, s, bridge.DeliveryFilter{EventID: id, Source: "sa", Sink: sink})
	if len(ds) != 1 {
		t.Fatalf("%d deliveries of %s to %s", len(ds), id, sink)
	}
	return ds[0]
}

// TestChainAcrossStores: a dependent is announced to no replica at ingest;
// the replica that records its action delivered releases it, and every
// replica's schedulers of its sink are woken (the other replicas by
// NOTIFY). An outcome that is not applied (its lease was taken over)
// releases and fails nothing; the applied failure does, and a replay from
// a process that listens to nothing puts the chain back.
func TestChainAcrossStores(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.TestDatabase(t)
	lease := time.Minute
	a := open(t, url, postgres.Config{Lease: lease, Replica: "a"})
	b := open(t, url, postgres.Config{Lease: lease, Replica: "b"})
	cli := open(t, url, postgres.Config{})
	wa, wb := listenOn(a), listenOn(b)
	waitListening(t, url, 2)

	ingest(t, a, "e1", 0, chainPlan("jira", "slack"))
	if got := wb.sinksWoken(t, time.Second, 300*time.Millisecond, "jira"); got["slack"] {
		t.Errorf("the ingest woke the waiting dependent's sink: %v", got)
	}
	if got := wa.sinksWoken(t, time.Second, 0, "jira"); got["slack"] {
		t.Errorf("the ingest woke its own store for the waiting dependent's sink: %v", got)
	}

	t0 := base.Add(time.Second)
	parent := claimOne(t, a, "jira", t0, 0)
	if err := a.Record(ctx, []bridge.Outcome{{ID: parent, Status: bridge.StatusDelivered, Result: "OPS-1",
		Link: "https://jira.example/browse/OPS-1", NextAt: t0, At: t0, Chained: true}}); err != nil {
		t.Fatal(err)
	}
	wb.expect(t, time.Second, "slack")
	wa.expect(t, time.Second, "slack")
	wa.quiet(t, 300*time.Millisecond) // its own notification is not a second wake
	claimOne(t, b, "slack", t0, delivery(t, b, "e1", "slack").ID)

	// e2's action is taken over by b: a's late outcomes change nothing.
	ingest(t, a, "e2", 0, chainPlan("jira", "slack"))
	parent = claimOne(t, a, "jira", t0, 0)
	later := t0.Add(lease + time.Second)
	claimOne(t, b, "jira", later, parent)
	for _, st := range []string{bridge.StatusDelivered, bridge.StatusFailed} {
		if err := a.Record(ctx, []bridge.Outcome{{ID: parent, Status: st, Error: "a's late outcome", NextAt: later, At: later, Chained: true}}); err != nil {
			t.Fatal(err)
		}
		if d := delivery(t, a, "e2", "slack"); !d.Waiting() {
			t.Errorf("after a's stale outcome %s: the dependent is %s, next %v; want it waiting", st, d.Status, d.NextAt)
		}
	}
	if err := b.Record(ctx, []bridge.Outcome{{ID: parent, Status: bridge.StatusFailed, Error: "400: no such project",
		NextAt: later, At: later, Chained: true}}); err != nil {
		t.Fatal(err)
	}
	if d := delivery(t, a, "e2", "slack"); d.Status != bridge.StatusFailed || !strings.Contains(d.LastError, "400: no such project") {
		t.Errorf("after b's failure: the dependent is %s (%q); want failed with its cause", d.Status, d.LastError)
	}
	ids, err := cli.Replay(ctx, []int64{parent}, later)
	if want := []int64{parent, delivery(t, a, "e2", "slack").ID}; err != nil || !slices.Equal(ids, want) {
		t.Fatalf("replay: %v, %v; want %v", ids, err, want)
	}
	if got := wb.sinksWoken(t, time.Second, 300*time.Millisecond, "jira"); got["slack"] {
		t.Errorf("the replay woke the sink of the dependent it put back to waiting: %v", got)
	}
	if d := delivery(t, a, "e2", "slack"); !d.Waiting() {
		t.Errorf("after the replay: the dependent is %s, next %v; want it waiting", d.Status, d.NextAt)
	}
}

// TestMigrateFromVersion1: a database of the first release gains the
// chain columns, with the defaults of an action without a chain, and its
// deliveries are taken up as before.
func TestMigrateFromVersion1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.TestDatabase(t)
	s := open(t, url, postgres.Config{})
	ingest(t, s, "e1", 0, plan("jira"))
	s.Close()
	c := sqlConn(t, url)
	if _, err := c.Exec(ctx, `ALTER TABLE deliveries DROP COLUMN action_name, DROP COLUMN after_name, DROP COLUMN after_index, DROP COLUMN link;
		DELETE FROM bridge_schema WHERE version > 1`); err != nil {
		t.Fatal(err)
	}
	if v, err := postgres.SchemaVersionAt(ctx, url); err != nil || v != 1 {
		t.Fatalf("schema version %d, %v; want 1", v, err)
	}

	s = open(t, url, postgres.Config{})
	if v, err := postgres.SchemaVersionAt(ctx, url); err != nil || v != postgres.SchemaVersion {
		t.Errorf("schema version after Open: %d, %v; want %d", v, err, postgres.SchemaVersion)
	}
	d := delivery(t, s, "e1", "jira")
	if d.ActionID != "" || d.After != "" || d.AfterIndex != -1 || d.Link != "" || d.Status != bridge.StatusPending {
		t.Errorf("a delivery of version 1: %+v", d)
	}
	claimOne(t, s, "jira", base, d.ID)
}

// TestImportChain: `bridge store import` copies the chain columns; a
// waiting dependent is not announced, and the delivery of its imported
// action releases it.
func TestImportChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, pgtest.TestDatabase(t), postgres.Config{})
	e1, raw1 := event("e1", 0)
	e2, raw2 := event("e2", time.Second)
	at := func(d time.Duration) time.Time { return base.Add(d) }
	evs := []postgres.ImportedEvent{
		{Event: e1, Raw: raw1, Deliveries: []postgres.ImportedDelivery{
			{Rule: "r", Index: 0, Sink: "jira", Status: bridge.StatusDelivered, Attempts: 1, Result: "OPS-1", ActionID: "issue",
				Link: "https://jira.example/browse/OPS-1", Created: at(0), WindowStart: at(0), NextAt: at(time.Minute), Updated: at(time.Minute)},
			{Rule: "r", Index: 1, Sink: "slack", Status: bridge.StatusDelivered, Attempts: 1, Result: "C1/1.2", After: "issue", AfterIndex: 0,
				Action: json.RawMessage(`{"text":"{{ .links.issue }}"}`), Created: at(0), WindowStart: at(time.Minute), NextAt: at(time.Minute), Updated: at(time.Minute)},
		}},
		{Event: e2, Raw: raw2, Deliveries: []postgres.ImportedDelivery{
			{Rule: "r", Index: 0, Sink: "jira", Status: bridge.StatusPending, ActionID: "issue",
				Created: at(time.Second), WindowStart: at(time.Second), NextAt: at(time.Second), Updated: at(time.Second)},
			{Rule: "r", Index: 1, Sink: "slack", Status: bridge.StatusPending, After: "issue", AfterIndex: 0,
				Created: at(time.Second), WindowStart: at(time.Second), NextAt: bridge.Waiting, Updated: at(time.Second)},
		}},
	}
	w := listenOn(s)
	if c, err := s.Import(ctx, evs); err != nil || c != (postgres.ImportCounts{Events: 2, Deliveries: 4}) {
		t.Fatalf("import: %+v, %v", c, err)
	}
	if got := w.sinksWoken(t, time.Second, 200*time.Millisecond, "jira"); got["slack"] {
		t.Errorf("the import woke the waiting dependent's sink: %v", got)
	}
	if d := delivery(t, s, "e1", "jira"); d.ActionID != "issue" || d.Link != "https://jira.example/browse/OPS-1" || d.AfterIndex != -1 {
		t.Errorf("the imported action: %+v", d)
	}
	if d := delivery(t, s, "e1", "slack"); d.After != "issue" || d.AfterIndex != 0 || d.ActionID != "" {
		t.Errorf("the imported dependent: %+v", d)
	}
	dep := delivery(t, s, "e2", "slack")
	if !dep.Waiting() {
		t.Fatalf("the imported waiting dependent: %s, next %v, after %q", dep.Status, dep.NextAt, dep.After)
	}
	now := at(time.Hour)
	parent := claimOne(t, s, "jira", now, 0)
	if err := s.Record(ctx, []bridge.Outcome{{ID: parent, Status: bridge.StatusDelivered, Result: "OPS-2", NextAt: now, At: now, Chained: true}}); err != nil {
		t.Fatal(err)
	}
	w.expect(t, time.Second, "slack")
	claimOne(t, s, "slack", now, dep.ID)
}
