// Package storetest is the test suite of the bridge.Store contract: one set
// of tests, run against every store (bridge/store/sqlite and
// bridge/store/postgres call Run from their tests). It uses a store through
// the interface only and checks what the comments of bridge.Store promise,
// so that the stores behave the same wherever the contract says how.
//
// What a single store cannot show (two replicas on one database, leases
// running out, schema migrations, a database that goes away) stays in the
// store's own tests.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"bridge/bridge"
)

// base is when the suite's events are received, unless a test says
// otherwise.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Run runs the suite as subtests of t. Every subtest calls open for a store
// of its own, which open closes when that subtest ends (the Close tests
// close it first, so a second Close must be harmless).
//
// The stores of one Run may share one database: each subtest keeps to a
// source, sinks and event ids of its own (all named after the subtest), and
// Prune's test to times no other test uses, so the subtests run in
// parallel. The one exception, Replay with no ids (every failed delivery of
// the database), runs in the Replay group, before the parallel subtests
// start. The database must hold no data but the suite's.
func Run(t *testing.T, open func(t *testing.T) bridge.Store) {
	t.Helper()
	// Replay with no ids touches every failed delivery of the database:
	// its group runs first, alone.
	replay := []test{
		{"by ids", testReplayIDs},
		{"all failed", testReplayAll},
		{"commit callback", testReplayOnCommit},
	}
	groups := []struct {
		name  string
		tests []test
	}{
		{"Ingest", []test{
			{"new event", testIngestNew},
			{"duplicate", testIngestDuplicate},
			{"concurrent duplicates", testIngestConcurrent},
			{"template error stored failed", testIngestTemplateError},
			{"commit callback", testIngestOnCommit},
		}},
		{"Events", []test{
			{"newest first, by source, limit", testEventsList},
			{"data from the raw body", testEventsData},
			{"type, severity, text filters and the cursor", testEventsFilters},
			{"one event with its raw body", testEvent},
		}},
		{"Deliveries", []test{
			{"filters, limit, newest first", testDeliveriesFilters},
			{"JSON", testDeliveriesJSON},
			{"source, rule and the cursor", testDeliveriesCursor},
		}},
		{"SinkStats", []test{{"by status, with the latest error", testSinkStats}}},
		{"PendingCounts", []test{{"pending only, by sink", testPendingCounts}}},
		{"Due", []test{
			{"oldest due first, limit, skip", testDue},
			{"nextAt", testDueNextAt},
		}},
		{"Claim", []test{
			{"pending and due only, in due order", testClaim},
			{"attempt after a retry", testClaimRetry},
		}},
		{"Renew", []test{{"nothing lost while held", testRenew}}},
		{"Record", []test{
			{"outcomes", testRecord},
			{"result kept", testRecordResultKept},
			{"a batch of alike outcomes", testRecordBatch},
		}},
		{"Chain", []test{
			{"waits, then released", testChainWaits},
			{"failure cascades, replay releases", testChainFails},
			{"replay of a dependent", testChainReplayDependent},
		}},
		{"Prune", []test{{"old and finished only", testPrune}}},
		{"SinkState", []test{
			{"get, put, delete", testSinkState},
			{"sinks apart", testSinkStateIsolation},
		}},
		{"SinkLocks", []test{{"one lock per sink name and key", testSinkLocks}}},
		{"Health", []test{{"ping and last write error", testHealth}}},
		{"Close", []test{
			{"calls after Close fail", testClosed},
			{"writes racing Close", testCloseRacing},
		}},
	}
	run := func(t *testing.T, parallel bool, tests []test) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if parallel {
					t.Parallel()
				}
				tc.fn(t, &env{t: t, s: open(t), ctx: t.Context(), src: t.Name()})
			})
		}
	}
	t.Run("Replay", func(t *testing.T) { run(t, false, replay) })
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			run(t, true, g.tests)
		})
	}
}

// test is one subtest of the suite.
type test struct {
	name string
	fn   func(t *testing.T, e *env)
}

// env is one subtest's store and the names it keeps to.
type env struct {
	t   *testing.T
	s   bridge.Store
	ctx context.Context
	src string // the source of this subtest's events; names derive from it
}

// sink is the name of this subtest's sink called name.
func (e *env) sink(name string) string { return e.src + "/" + name }

// id is the id of this subtest's event called name.
func (e *env) id(name string) string { return e.src + "/" + name }

// event is this subtest's event called name, received at received, with
// its raw body.
func (e *env) event(name string, received time.Time) (*bridge.Event, []byte) {
	id := e.id(name)
	raw := fmt.Appendf(nil, `{"id":%q,"type":"alert.triggered","data":{"name":%q,"count":3}}`, id, name)
	return &bridge.Event{ID: id, Source: e.src, Vendor: "secureagentics", Type: "alert.triggered", Time: received.Add(-time.Minute),
		Received: received, Severity: "high", Title: "alert " + name, Subject: "A-" + name, Data: bridge.StoredData(raw)}, raw
}

// ingest stores this subtest's event called name, received at received,
// with planned, and fails the test unless it is new.
func (e *env) ingest(name string, received time.Time, planned ...bridge.Planned) *bridge.Event {
	e.t.Helper()
	ev, raw := e.event(name, received)
	dup, err := e.s.Ingest(e.ctx, ev, raw, planned)
	if err != nil || dup {
		e.t.Fatalf("Ingest %s: duplicate %v, %v", name, dup, err)
	}
	return ev
}

// deliver plans one delivery to each of sinks, action index i for the i-th.
func deliver(sinks ...string) []bridge.Planned {
	var out []bridge.Planned
	for i, sk := range sinks {
		out = append(out, bridge.Planned{Rule: "r", Index: i, Sink: sk, Action: fmt.Appendf(nil, `{"to":%q,"i":%d}`, sk, i)})
	}
	return out
}

// broken plans a delivery whose action failed to render with msg.
func broken(index int, sink, msg string) bridge.Planned {
	return bridge.Planned{Rule: "r", Index: index, Sink: sink, Err: errors.New(msg)}
}

func (e *env) deliveries(f bridge.DeliveryFilter) []*bridge.DeliveryRecord {
	e.t.Helper()
	ds, err := e.s.Deliveries(e.ctx, f)
	if err != nil {
		e.t.Fatalf("Deliveries(%+v): %v", f, err)
	}
	return ds
}

// delivery is the one delivery of this subtest's event called name to sink.
func (e *env) delivery(name, sink string) *bridge.DeliveryRecord {
	e.t.Helper()
	ds := e.deliveries(bridge.DeliveryFilter{EventID: e.id(name), Sink: sink})
	if len(ds) != 1 {
		e.t.Fatalf("%d deliveries of %s to %s, want 1: %s", len(ds), name, sink, show(ds))
	}
	return ds[0]
}

func (e *env) events(f bridge.EventFilter) []bridge.StoredEvent {
	e.t.Helper()
	evs, err := e.s.Events(e.ctx, f)
	if err != nil {
		e.t.Fatalf("Events(%+v): %v", f, err)
	}
	return evs
}

func (e *env) due(sink string, now time.Time, limit int, skip map[int64]bool) (ids []int64, oldest, nextAt time.Time) {
	e.t.Helper()
	ids, oldest, nextAt, err := e.s.Due(e.ctx, sink, now, limit, skip)
	if err != nil {
		e.t.Fatalf("Due(%s): %v", sink, err)
	}
	return ids, oldest, nextAt
}

func (e *env) claim(now time.Time, ids ...int64) ([]*bridge.Delivery, []*bridge.DeliveryRecord) {
	e.t.Helper()
	ds, recs, err := e.s.Claim(e.ctx, ids, now)
	if err != nil {
		e.t.Fatalf("Claim(%v): %v", ids, err)
	}
	if len(ds) != len(recs) {
		e.t.Fatalf("Claim(%v): %d deliveries and %d records", ids, len(ds), len(recs))
	}
	for i := range ds {
		if ds[i].ID != recs[i].ID {
			e.t.Fatalf("Claim(%v): delivery %d has the record of %d", ids, ds[i].ID, recs[i].ID)
		}
	}
	return ds, recs
}

func (e *env) record(outs ...bridge.Outcome) {
	e.t.Helper()
	if err := e.s.Record(e.ctx, outs); err != nil {
		e.t.Fatalf("Record: %v", err)
	}
}

// attempt claims delivery id at at, as the pipeline would, and records out
// for it.
func (e *env) attempt(id int64, at time.Time, out bridge.Outcome) {
	e.t.Helper()
	if ds, _ := e.claim(at, id); len(ds) != 1 {
		e.t.Fatalf("Claim of delivery %d at %v: got %d", id, at, len(ds))
	}
	out.ID, out.At = id, at
	e.record(out)
}

// recordIDs returns the ids of ds, in order.
func recordIDs(ds []*bridge.DeliveryRecord) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// claimedIDs returns the ids of ds, in order.
func claimedIDs(ds []*bridge.Delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// eventIDs returns the event ids of evs, in order.
func eventIDs(evs []bridge.StoredEvent) []string {
	out := make([]string, len(evs))
	for i, se := range evs {
		out[i] = se.Event.ID
	}
	return out
}

// show formats records for a failure message.
func show(ds []*bridge.DeliveryRecord) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "\n\t%+v", *d)
	}
	return b.String()
}

// sameJSON checks that got marshals to the JSON value want (numbers
// compared exactly).
func sameJSON(t *testing.T, what string, got any, want string) {
	t.Helper()
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	decode := func(b []byte) any {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("%s: %s: %v", what, b, err)
		}
		return v
	}
	if !reflect.DeepEqual(decode(b), decode([]byte(want))) {
		t.Errorf("%s:\n\tgot  %s\n\twant %s", what, b, want)
	}
}

// ts is t as JSON writes it.
func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// wakes collects what a store's commit callback is told.
type wakes struct {
	mu    sync.Mutex
	calls []map[string]bool
	kick  chan struct{}
}

func listen(s bridge.Store) *wakes {
	w := &wakes{kick: make(chan struct{}, 1)}
	s.SetOnCommit(func(sinks map[string]bool) {
		w.mu.Lock()
		w.calls = append(w.calls, maps.Clone(sinks))
		w.mu.Unlock()
		select {
		case w.kick <- struct{}{}:
		default:
		}
	})
	return w
}

// mark returns how many calls were made so far, for since.
func (w *wakes) mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.calls)
}

// since returns every sink named by the calls after mark m.
func (w *wakes) since(m int) map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]bool{}
	for _, c := range w.calls[m:] {
		maps.Copy(out, c)
	}
	return out
}

// wait waits up to 5s for the calls after mark m to name every sink of
// want. The callback may run after the write returned (the SQLite store
// calls it once the commit is synced).
func (w *wakes) wait(t *testing.T, m int, want ...string) {
	t.Helper()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		got := w.since(m)
		missing := slices.DeleteFunc(slices.Clone(want), func(s string) bool { return got[s] })
		if len(missing) == 0 {
			return
		}
		select {
		case <-w.kick:
		case <-timer.C:
			t.Fatalf("the commit callback did not name %q within 5s", missing)
		}
	}
}

func testIngestNew(t *testing.T, e *env) {
	jira, slack := e.sink("jira"), e.sink("slack")
	ev, raw := e.event("e1", base)
	planned := []bridge.Planned{
		{Rule: "page", Index: 0, Sink: jira, Action: json.RawMessage(`{"summary":"alert e1","labels":["a","b"]}`)},
		{Rule: "page", Index: 1, Sink: slack, Action: json.RawMessage(`{"text":"hi"}`)},
	}
	dup, err := e.s.Ingest(e.ctx, ev, raw, planned)
	if err != nil || dup {
		t.Fatalf("Ingest of a new event: duplicate %v, %v", dup, err)
	}
	evs := e.events(bridge.EventFilter{Source: e.src})
	if len(evs) != 1 {
		t.Fatalf("%d events stored, want 1", len(evs))
	}
	if evs[0].Seq <= 0 {
		t.Errorf("Seq %d", evs[0].Seq)
	}
	want, _ := json.Marshal(ev)
	sameJSON(t, "stored event", evs[0].Event, string(want))
	for _, tc := range []struct{ sink, action string }{{jira, `{"summary":"alert e1","labels":["a","b"]}`}, {slack, `{"text":"hi"}`}} {
		d := e.delivery("e1", tc.sink)
		if d.EventID != ev.ID || d.Source != e.src || d.Rule != "page" || d.Status != bridge.StatusPending || d.Attempts != 0 ||
			d.LastError != "" || d.Result != "" {
			t.Errorf("delivery to %s: %+v", tc.sink, *d)
		}
		// A new delivery is due at once: when its event was received.
		for what, at := range map[string]time.Time{"Created": d.Created, "NextAt": d.NextAt, "Updated": d.Updated, "WindowStart": d.WindowStart} {
			if !at.Equal(base) {
				t.Errorf("delivery to %s: %s %v, want %v", tc.sink, what, at, base)
			}
		}
		sameJSON(t, "action of the delivery to "+tc.sink, d.Action, tc.action)
		if ids, _, _ := e.due(tc.sink, base, 10, nil); !slices.Equal(ids, []int64{d.ID}) {
			t.Errorf("Due(%s) at receipt: %v, want [%d]", tc.sink, ids, d.ID)
		}
	}
}

func testIngestDuplicate(t *testing.T, e *env) {
	jira, slack := e.sink("jira"), e.sink("slack")
	first := e.ingest("e1", base, deliver(jira)...)
	// A vendor retry: same source and id, even with another body, another
	// receipt time and other actions.
	again, _ := e.event("e1", base.Add(time.Minute))
	again.Title = "changed"
	dup, err := e.s.Ingest(e.ctx, again, []byte(`{"data":{"count":4}}`), deliver(jira, slack))
	if err != nil || !dup {
		t.Fatalf("Ingest of a duplicate: duplicate %v, %v; want true", dup, err)
	}
	evs := e.events(bridge.EventFilter{Source: e.src})
	if len(evs) != 1 {
		t.Fatalf("%d events after a duplicate, want 1", len(evs))
	}
	if got := evs[0].Event; got.Title != first.Title || !got.Received.Equal(first.Received) || got.Data["count"] != int64(3) {
		t.Errorf("the duplicate changed the stored event: %+v", got)
	}
	if ds := e.deliveries(bridge.DeliveryFilter{EventID: first.ID}); len(ds) != 1 || ds[0].Sink != jira {
		t.Errorf("deliveries after a duplicate: %s", show(ds))
	}
	// The id of another source is another event.
	other, raw := e.event("e1", base)
	other.Source = e.src + "-other"
	if dup, err := e.s.Ingest(e.ctx, other, raw, deliver(jira)); err != nil || dup {
		t.Errorf("Ingest of the same id from another source: duplicate %v, %v; want a new event", dup, err)
	}
	if evs := e.events(bridge.EventFilter{Source: other.Source}); len(evs) != 1 {
		t.Errorf("%d events of the other source, want 1", len(evs))
	}
}

// testIngestConcurrent posts one event many times at once, and other
// events twice each, all concurrently: each is accepted exactly once, with
// one set of deliveries.
func testIngestConcurrent(t *testing.T, e *env) {
	a, b, c := e.sink("a"), e.sink("b"), e.sink("c")
	const copies, others = 50, 20
	planned := append(deliver(a, b), broken(2, c, "template: x: boom"))
	type result struct {
		name string
		dup  bool
	}
	results := make(chan result, copies+2*others)
	start := make(chan struct{})
	var wg sync.WaitGroup
	post := func(name string) {
		wg.Go(func() {
			ev, raw := e.event(name, base)
			<-start
			dup, err := e.s.Ingest(e.ctx, ev, raw, planned)
			if err != nil {
				t.Errorf("Ingest %s: %v", name, err)
				return
			}
			results <- result{name, dup}
		})
	}
	for range copies {
		post("same")
	}
	for i := range 2 * others {
		post(fmt.Sprint("other-", i%others))
	}
	close(start)
	wg.Wait()
	close(results)
	accepted := map[string]int{}
	dups := map[string]int{}
	for r := range results {
		if r.dup {
			dups[r.name]++
		} else {
			accepted[r.name]++
		}
	}
	if accepted["same"] != 1 || dups["same"] != copies-1 {
		t.Errorf("%d copies at once: %d accepted, %d duplicates; want 1 and %d", copies, accepted["same"], dups["same"], copies-1)
	}
	for i := range others {
		name := fmt.Sprint("other-", i)
		if accepted[name] != 1 || dups[name] != 1 {
			t.Errorf("%s posted twice: %d accepted, %d duplicates", name, accepted[name], dups[name])
		}
	}
	if evs := e.events(bridge.EventFilter{Source: e.src}); len(evs) != 1+others {
		t.Errorf("%d events stored, want %d", len(evs), 1+others)
	}
	ds := e.deliveries(bridge.DeliveryFilter{EventID: e.id("same")})
	got := map[string]string{}
	for _, d := range ds {
		got[d.Sink] = d.Status
	}
	if want := map[string]string{a: bridge.StatusPending, b: bridge.StatusPending, c: bridge.StatusFailed}; len(ds) != 3 || !maps.Equal(got, want) {
		t.Errorf("deliveries of the event posted %d times: %s", copies, show(ds))
	}
	for _, sk := range []string{a, b, c} {
		if ds := e.deliveries(bridge.DeliveryFilter{Sink: sk}); len(ds) != 1+others {
			t.Errorf("%d deliveries to %s, want %d", len(ds), sk, 1+others)
		}
	}
}

func testIngestTemplateError(t *testing.T, e *env) {
	bad, good := e.sink("bad"), e.sink("good")
	const msg = `template: summary:1:3: executing "summary" at <.data.x>: map has no entry for key "x"`
	e.ingest("e1", base, broken(0, bad, msg), bridge.Planned{Rule: "r", Index: 1, Sink: good, Action: json.RawMessage(`{}`)})
	d := e.delivery("e1", bad)
	if d.Status != bridge.StatusFailed || d.LastError != msg || d.Attempts != 0 || len(d.Action) != 0 {
		t.Errorf("delivery whose action failed to render: %+v", *d)
	}
	if g := e.delivery("e1", good); g.Status != bridge.StatusPending {
		t.Errorf("the other delivery of the event: %+v", *g)
	}
	if ids, _, next := e.due(bad, base.Add(time.Hour), 10, nil); len(ids) != 0 || !next.IsZero() {
		t.Errorf("Due of a failed delivery's sink: %v, next %v", ids, next)
	}
	if ds, _ := e.claim(base.Add(time.Hour), d.ID); len(ds) != 0 {
		t.Errorf("a failed delivery was claimed")
	}
	n, err := e.s.PendingCounts(e.ctx)
	if err != nil || n[bad] != 0 || n[good] != 1 {
		t.Errorf("PendingCounts: %v, %v", n, err)
	}
}

// testIngestOnCommit: the commit callback names the sinks that got new due
// deliveries; a delivery stored failed and a duplicate name none.
func testIngestOnCommit(t *testing.T, e *env) {
	w := listen(e.s)
	a, b, bad, next := e.sink("a"), e.sink("b"), e.sink("bad"), e.sink("next")
	planned := append(deliver(a, b), broken(2, bad, "template: boom"))
	e.ingest("e1", base, planned...)
	w.wait(t, 0, a, b)

	m := w.mark()
	ev, raw := e.event("e1", base)
	if dup, err := e.s.Ingest(e.ctx, ev, raw, planned); err != nil || !dup {
		t.Fatalf("duplicate: %v, %v", dup, err)
	}
	// A later commit's callback comes after any the duplicate caused.
	e.ingest("e2", base, deliver(next)...)
	w.wait(t, m, next)
	if got := w.since(m); got[a] || got[b] {
		t.Errorf("a duplicate woke %v", got)
	}
	if got := w.since(0); got[bad] {
		t.Errorf("a delivery stored failed woke its sink: %v", got)
	}
}

func testEventsList(t *testing.T, e *env) {
	other := e.src + "-other"
	e.ingest("e1", base.Add(1*time.Second))
	o1, raw := e.event("o1", base.Add(2*time.Second))
	o1.Source = other
	if _, err := e.s.Ingest(e.ctx, o1, raw, nil); err != nil {
		t.Fatal(err)
	}
	e.ingest("e2", base.Add(3*time.Second))
	e.ingest("e3", base.Add(4*time.Second))
	e1, e2, e3 := e.id("e1"), e.id("e2"), e.id("e3")

	evs := e.events(bridge.EventFilter{Source: e.src})
	if got := eventIDs(evs); !slices.Equal(got, []string{e3, e2, e1}) {
		t.Errorf("Events of the source: %q, want newest first", got)
	}
	if len(evs) == 3 && !(evs[0].Seq > evs[1].Seq && evs[1].Seq > evs[2].Seq) {
		t.Errorf("Seq not increasing with storage: %d, %d, %d", evs[2].Seq, evs[1].Seq, evs[0].Seq)
	}
	if got := eventIDs(e.events(bridge.EventFilter{Source: e.src, Limit: 2})); !slices.Equal(got, []string{e3, e2}) {
		t.Errorf("Events, limit 2: %q", got)
	}
	if got := eventIDs(e.events(bridge.EventFilter{Source: other})); !slices.Equal(got, []string{o1.ID}) {
		t.Errorf("Events of the other source: %q", got)
	}
	if got := e.events(bridge.EventFilter{Source: e.src + "-none"}); len(got) != 0 {
		t.Errorf("Events of a source with none: %d", len(got))
	}
	// Without a filter: every source, newest first (other subtests' events
	// may be among them).
	mine := map[string]bool{e1: true, e2: true, e3: true, o1.ID: true}
	all := slices.DeleteFunc(eventIDs(e.events(bridge.EventFilter{})), func(id string) bool { return !mine[id] })
	if !slices.Equal(all, []string{e3, e2, o1.ID, e1}) {
		t.Errorf("Events of every source: %q, want newest first", all)
	}
}

// testEventsData: an event's Data is rebuilt from the raw body stored, as
// bridge.StoredData reads it: integers exact, {} without a data object.
func testEventsData(t *testing.T, e *env) {
	sink := e.sink("out")
	raw := []byte(`{"id":"x","type":"t","data":{"exact":9007199254740993,"neg":-7,"ratio":0.25,` +
		`"huge":123456789012345678901234567890,"text":"é \u2603 \"q\"","list":[1,"two",true,null],"obj":{"k":{"n":2}}}}`)
	ev, _ := e.event("e1", base)
	ev.Data = nil // the store keeps the raw body, not this
	if _, err := e.s.Ingest(e.ctx, ev, raw, deliver(sink)); err != nil {
		t.Fatal(err)
	}
	bare, _ := e.event("bare", base)
	bare.Data = nil
	if _, err := e.s.Ingest(e.ctx, bare, []byte(`{"id":"y","type":"t"}`), nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"exact": int64(9007199254740993), "neg": int64(-7), "ratio": 0.25, "huge": json.Number("123456789012345678901234567890"),
		"text": "é ☃ \"q\"", "list": []any{int64(1), "two", true, nil}, "obj": map[string]any{"k": map[string]any{"n": int64(2)}},
	}
	got := map[string]map[string]any{}
	for _, se := range e.events(bridge.EventFilter{Source: e.src}) {
		got[se.Event.ID] = se.Event.Data
	}
	if !reflect.DeepEqual(got[ev.ID], want) {
		t.Errorf("Events: data %#v\n\twant %#v", got[ev.ID], want)
	}
	if d := got[bare.ID]; d == nil || len(d) != 0 {
		t.Errorf("Events: data of a body without one: %#v, want {}", d)
	}
	ids, _, _ := e.due(sink, base, 10, nil)
	ds, _ := e.claim(base, ids...)
	if len(ds) != 1 || !reflect.DeepEqual(ds[0].Event.Data, want) {
		t.Errorf("Claim: %d deliveries, data %#v", len(ds), ds)
	}
}

func testDeliveriesFilters(t *testing.T, e *env) {
	jira, slack := e.sink("jira"), e.sink("slack")
	e.ingest("e1", base, deliver(jira, slack)...)
	e.ingest("e2", base.Add(time.Second), deliver(jira)...)
	e.ingest("e3", base.Add(2*time.Second), broken(0, jira, "template: boom"))
	j1, s1, j2, j3 := e.delivery("e1", jira).ID, e.delivery("e1", slack).ID, e.delivery("e2", jira).ID, e.delivery("e3", jira).ID
	e.attempt(j2, base.Add(time.Minute), bridge.Outcome{Status: bridge.StatusDelivered, Result: "OPS-2", NextAt: base.Add(time.Minute)})

	for _, tc := range []struct {
		name string
		f    bridge.DeliveryFilter
		want []int64
	}{
		{"sink", bridge.DeliveryFilter{Sink: jira}, []int64{j3, j2, j1}},
		{"sink, limit", bridge.DeliveryFilter{Sink: jira, Limit: 2}, []int64{j3, j2}},
		{"sink, pending", bridge.DeliveryFilter{Sink: jira, Status: bridge.StatusPending}, []int64{j1}},
		{"sink, delivered", bridge.DeliveryFilter{Sink: jira, Status: bridge.StatusDelivered}, []int64{j2}},
		{"sink, failed", bridge.DeliveryFilter{Sink: jira, Status: bridge.StatusFailed}, []int64{j3}},
		{"event", bridge.DeliveryFilter{EventID: e.id("e1")}, nil}, // both, in either order: below
		{"event, sink", bridge.DeliveryFilter{EventID: e.id("e1"), Sink: slack}, []int64{s1}},
		{"event, status", bridge.DeliveryFilter{EventID: e.id("e2"), Status: bridge.StatusDelivered}, []int64{j2}},
		{"event, other status", bridge.DeliveryFilter{EventID: e.id("e2"), Status: bridge.StatusPending}, []int64{}},
		{"no such sink", bridge.DeliveryFilter{Sink: e.sink("none")}, []int64{}},
	} {
		got := recordIDs(e.deliveries(tc.f))
		if tc.want == nil {
			slices.Sort(got)
			tc.want = []int64{min(j1, s1), max(j1, s1)}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Deliveries by %s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// A filter by status alone spans the database: every one it lists has
	// that status, and this test's are among them.
	for status, mine := range map[string]int64{bridge.StatusPending: j1, bridge.StatusDelivered: j2, bridge.StatusFailed: j3} {
		ds := e.deliveries(bridge.DeliveryFilter{Status: status})
		if !slices.Contains(recordIDs(ds), mine) {
			t.Errorf("Deliveries by status %s: %d missing", status, mine)
		}
		for _, d := range ds {
			if d.Status != status {
				t.Errorf("Deliveries by status %s: %+v", status, *d)
			}
		}
	}
	if ds := e.deliveries(bridge.DeliveryFilter{Status: bridge.StatusPending, Limit: 1}); len(ds) != 1 {
		t.Errorf("Deliveries by status, limit 1: %d", len(ds))
	}
}

// testDeliveriesJSON: a delivery as `bridge deliveries --json` and the API
// print it, times in UTC.
func testDeliveriesJSON(t *testing.T, e *env) {
	jira, bad := e.sink("jira"), e.sink("bad")
	ev := e.ingest("e1", base.Add(1500*time.Millisecond),
		bridge.Planned{Rule: "page", Index: 0, Sink: jira, Action: json.RawMessage(`{"summary":"x","n":12345678901234567}`)},
		broken(1, bad, `template: summary: map has no entry for key "x"`))
	d := e.delivery("e1", jira)
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	sameJSON(t, "pending delivery", d, fmt.Sprintf(`{"id":%d,"event_id":%s,"source":%s,"rule":"page","sink":%s,"status":"pending",
		"attempts":0,"last_error":"","result":"","created":%q,"next_at":%q,"updated":%q,"action":{"summary":"x","n":12345678901234567}}`,
		d.ID, q(ev.ID), q(e.src), q(jira), ts(ev.Received), ts(ev.Received), ts(ev.Received)))

	at, retry := base.Add(time.Minute+250*time.Millisecond), base.Add(2*time.Minute)
	e.attempt(d.ID, at, bridge.Outcome{Status: bridge.StatusPending, Result: "OPS-1", Error: "503: busy", NextAt: retry})
	sameJSON(t, "delivery after a retry", e.delivery("e1", jira), fmt.Sprintf(`{"id":%d,"event_id":%s,"source":%s,"rule":"page","sink":%s,
		"status":"pending","attempts":1,"last_error":"503: busy","result":"OPS-1","created":%q,"next_at":%q,"updated":%q,
		"action":{"summary":"x","n":12345678901234567}}`, d.ID, q(ev.ID), q(e.src), q(jira), ts(ev.Received), ts(retry), ts(at)))

	f := e.delivery("e1", bad)
	sameJSON(t, "delivery whose action failed to render", f, fmt.Sprintf(`{"id":%d,"event_id":%s,"source":%s,"rule":"r","sink":%s,
		"status":"failed","attempts":0,"last_error":"template: summary: map has no entry for key \"x\"","result":"","created":%q,
		"next_at":%q,"updated":%q}`, f.ID, q(ev.ID), q(e.src), q(bad), ts(ev.Received), ts(ev.Received), ts(ev.Received)))
}

func testPendingCounts(t *testing.T, e *env) {
	a, b, c, d := e.sink("a"), e.sink("b"), e.sink("c"), e.sink("d")
	e.ingest("e1", base, append(deliver(a, b, d), broken(3, c, "template: boom"))...)
	e.ingest("e2", base, append(deliver(a), broken(1, b, "template: boom"))...)
	e.attempt(e.delivery("e1", d).ID, base, bridge.Outcome{Status: bridge.StatusDelivered, NextAt: base})
	e.attempt(e.delivery("e1", b).ID, base, bridge.Outcome{Status: bridge.StatusPending, Error: "503", NextAt: base.Add(time.Hour)})
	n, err := e.s.PendingCounts(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for sk, want := range map[string]int{a: 2, b: 1, c: 0, d: 0, e.sink("none"): 0} {
		if n[sk] != want {
			t.Errorf("PendingCounts[%s] = %d, want %d (all: %v)", sk, n[sk], want, n)
		}
	}
}

// testDue: Due lists the sink's pending deliveries due at now, oldest due
// first (not in the order they were stored), up to limit, skipping those in
// skip, and says when the oldest became due.
func testDue(t *testing.T, e *env) {
	x, y := e.sink("x"), e.sink("y")
	t0 := base
	// Stored out of due order.
	e.ingest("e3", t0.Add(3*time.Second), deliver(x)...)
	e.ingest("e1", t0.Add(1*time.Second), deliver(x)...)
	e.ingest("e2", t0.Add(2*time.Second), deliver(x)...)
	e.ingest("later", t0.Add(10*time.Second), deliver(x)...)
	// Not x's, or not pending.
	e.ingest("other-sink", t0, deliver(y)...)
	e.ingest("failed", t0, broken(0, x, "template: boom"))
	e.ingest("delivered", t0, deliver(x)...)
	e.attempt(e.delivery("delivered", x).ID, t0, bridge.Outcome{Status: bridge.StatusDelivered, NextAt: t0})
	id1, id2, id3, id4 := e.delivery("e1", x).ID, e.delivery("e2", x).ID, e.delivery("e3", x).ID, e.delivery("later", x).ID

	now := t0.Add(5 * time.Second)
	for _, tc := range []struct {
		name   string
		now    time.Time
		limit  int
		skip   map[int64]bool
		want   []int64
		oldest time.Time
	}{
		{"all due", now, 10, nil, []int64{id1, id2, id3}, t0.Add(1 * time.Second)},
		{"limit", now, 2, nil, []int64{id1, id2}, t0.Add(1 * time.Second)},
		{"skip", now, 10, map[int64]bool{id1: true}, []int64{id2, id3}, t0.Add(2 * time.Second)},
		{"skip and limit", now, 1, map[int64]bool{id1: true, id2: true}, []int64{id3}, t0.Add(3 * time.Second)},
		{"skip all", now, 10, map[int64]bool{id1: true, id2: true, id3: true}, nil, time.Time{}},
		{"skip others", now, 10, map[int64]bool{id4: true, -1: true}, []int64{id1, id2, id3}, t0.Add(1 * time.Second)},
		{"due exactly now", t0.Add(10 * time.Second), 10, nil, []int64{id1, id2, id3, id4}, t0.Add(1 * time.Second)},
		{"none due yet", t0.Add(500 * time.Millisecond), 10, nil, nil, time.Time{}},
	} {
		ids, oldest, _ := e.due(x, tc.now, tc.limit, tc.skip)
		if !slices.Equal(ids, tc.want) || !oldest.Equal(tc.oldest) {
			t.Errorf("Due, %s: %v, oldest %v; want %v, %v", tc.name, ids, oldest, tc.want, tc.oldest)
		}
	}
	if ids, _, _ := e.due(y, now, 10, nil); !slices.Equal(ids, []int64{e.delivery("other-sink", y).ID}) {
		t.Errorf("Due of the other sink: %v", ids)
	}
}

// testDueNextAt: nextAt is when the next delivery not due yet is, whatever
// the limit and skip, and zero when there is none.
func testDueNextAt(t *testing.T, e *env) {
	x := e.sink("x")
	t0 := base
	if ids, oldest, next := e.due(x, t0, 10, nil); len(ids) != 0 || !oldest.IsZero() || !next.IsZero() {
		t.Errorf("Due of a sink with nothing: %v, oldest %v, next %v", ids, oldest, next)
	}
	e.ingest("e1", t0, deliver(x)...)
	e.ingest("e3", t0.Add(30*time.Second), deliver(x)...)
	e.ingest("e2", t0.Add(20*time.Second), deliver(x)...)
	id1 := e.delivery("e1", x).ID
	for _, tc := range []struct {
		name  string
		now   time.Time
		limit int
		skip  map[int64]bool
		next  time.Time
	}{
		{"before all", t0.Add(-time.Second), 10, nil, t0},
		{"one due", t0.Add(time.Second), 10, nil, t0.Add(20 * time.Second)},
		{"limit reached", t0.Add(time.Second), 1, nil, t0.Add(20 * time.Second)},
		{"due one skipped", t0.Add(time.Second), 10, map[int64]bool{id1: true}, t0.Add(20 * time.Second)},
		{"two due", t0.Add(25 * time.Second), 10, nil, t0.Add(30 * time.Second)},
		{"all due", t0.Add(30 * time.Second), 10, nil, time.Time{}},
	} {
		if _, _, next := e.due(x, tc.now, tc.limit, tc.skip); !next.Equal(tc.next) {
			t.Errorf("Due, %s: next %v, want %v", tc.name, next, tc.next)
		}
	}
	// A retry recorded for later is the next one.
	retry := t0.Add(10 * time.Second)
	e.attempt(id1, t0.Add(time.Second), bridge.Outcome{Status: bridge.StatusPending, Error: "503", NextAt: retry})
	if ids, _, next := e.due(x, t0.Add(2*time.Second), 10, nil); len(ids) != 0 || !next.Equal(retry) {
		t.Errorf("Due after a retry was recorded: %v, next %v; want none, %v", ids, next, retry)
	}
}

// testClaim: Claim returns those of the ids that are pending and due, in
// due order whatever the order asked, with their events.
func testClaim(t *testing.T, e *env) {
	x := e.sink("x")
	t0 := base
	e.ingest("c", t0.Add(3*time.Second), deliver(x)...)
	e.ingest("a", t0.Add(1*time.Second), deliver(x)...)
	e.ingest("b", t0.Add(2*time.Second), deliver(x)...)
	e.ingest("done", t0, deliver(x)...)
	e.ingest("failed", t0, broken(0, x, "template: boom"))
	e.ingest("gave-up", t0, deliver(x)...)
	e.ingest("not-yet", t0.Add(time.Hour), deliver(x)...)
	e.attempt(e.delivery("done", x).ID, t0, bridge.Outcome{Status: bridge.StatusDelivered, NextAt: t0})
	e.attempt(e.delivery("gave-up", x).ID, t0, bridge.Outcome{Status: bridge.StatusFailed, Error: "403", NextAt: t0})
	var want []*bridge.DeliveryRecord
	for _, name := range []string{"a", "b", "c"} {
		want = append(want, e.delivery(name, x))
	}
	ask := []int64{want[2].ID, e.delivery("not-yet", x).ID, want[0].ID, e.delivery("failed", x).ID, e.delivery("done", x).ID,
		want[1].ID, e.delivery("gave-up", x).ID, -1}
	ds, recs := e.claim(t0.Add(5*time.Second), ask...)
	if got := claimedIDs(ds); !slices.Equal(got, recordIDs(want)) {
		t.Fatalf("Claim(%v): %v, want the pending due ones %v, in due order", ask, got, recordIDs(want))
	}
	for i, d := range ds {
		name := []string{"a", "b", "c"}[i]
		ev, _ := e.event(name, want[i].Created)
		if d.Rule != "r" || d.Sink != x || d.Attempt != 1 || d.Event == nil {
			t.Errorf("claimed %s: %+v", name, *d)
			continue
		}
		wantEv, _ := json.Marshal(ev)
		sameJSON(t, "event of the claimed "+name, d.Event, string(wantEv))
		sameJSON(t, "action of the claimed "+name, d.Action, fmt.Sprintf(`{"to":%q,"i":0}`, x))
		wantRec, _ := json.Marshal(want[i])
		sameJSON(t, "record of the claimed "+name, recs[i], string(wantRec))
	}
	if ds, recs, err := e.s.Claim(e.ctx, nil, t0); err != nil || len(ds) != 0 || len(recs) != 0 {
		t.Errorf("Claim of no ids: %v, %v, %v", ds, recs, err)
	}
}

// testClaimRetry: a delivery recorded for a retry is not claimed before its
// next attempt is due; then its Attempt counts the attempts made.
func testClaimRetry(t *testing.T, e *env) {
	x := e.sink("x")
	e.ingest("e1", base, deliver(x)...)
	id := e.delivery("e1", x).ID
	next := base.Add(time.Minute)
	e.attempt(id, base, bridge.Outcome{Status: bridge.StatusPending, Error: "503", NextAt: next})
	if ds, _ := e.claim(next.Add(-time.Second), id); len(ds) != 0 {
		t.Errorf("Claim before the retry is due: %v", claimedIDs(ds))
	}
	ds, _ := e.claim(next, id)
	if len(ds) != 1 || ds[0].Attempt != 2 {
		t.Fatalf("Claim of the retry: %d, want attempt 2: %+v", len(ds), ds)
	}
	e.record(bridge.Outcome{ID: id, Status: bridge.StatusPending, Error: "503", NextAt: next.Add(time.Minute), At: next})
	if ds, _ := e.claim(next.Add(time.Minute), id); len(ds) != 1 || ds[0].Attempt != 3 {
		t.Errorf("Claim of the second retry: %+v, want attempt 3", ds)
	}
}

// testRenew: a claim renewed while its attempt runs is not lost, and its
// outcome is recorded.
func testRenew(t *testing.T, e *env) {
	x := e.sink("x")
	e.ingest("e1", base, deliver(x)...)
	e.ingest("e2", base, deliver(x)...)
	ids, _, _ := e.due(x, base, 10, nil)
	if ds, _ := e.claim(base, ids...); len(ds) != 2 {
		t.Fatalf("claimed %d, want 2", len(ds))
	}
	for _, at := range []time.Duration{time.Second, 10 * time.Second, time.Minute} {
		lost, err := e.s.Renew(e.ctx, ids, base.Add(at))
		if err != nil || len(lost) != 0 {
			t.Errorf("Renew at +%v of claims held: lost %v, %v", at, lost, err)
		}
	}
	if lost, err := e.s.Renew(e.ctx, nil, base); err != nil || len(lost) != 0 {
		t.Errorf("Renew of nothing: %v, %v", lost, err)
	}
	at := base.Add(time.Minute)
	e.record(bridge.Outcome{ID: ids[0], Status: bridge.StatusDelivered, Result: "ok", NextAt: at, At: at},
		bridge.Outcome{ID: ids[1], Status: bridge.StatusDelivered, Result: "ok", NextAt: at, At: at})
	for _, d := range e.deliveries(bridge.DeliveryFilter{Sink: x}) {
		if d.Status != bridge.StatusDelivered || d.Attempts != 1 {
			t.Errorf("after renewals and Record: %+v", *d)
		}
	}
}

// testRecord: Record stores each outcome of one call: the status, one more
// attempt, the result, the last error, the next attempt's time, and when.
func testRecord(t *testing.T, e *env) {
	x := e.sink("x")
	for _, name := range []string{"retry", "delivered", "failed"} {
		e.ingest(name, base, deliver(x)...)
	}
	r, d, f := e.delivery("retry", x).ID, e.delivery("delivered", x).ID, e.delivery("failed", x).ID
	if ds, _ := e.claim(base, r, d, f); len(ds) != 3 {
		t.Fatalf("claimed %d, want 3", len(ds))
	}
	at, next := base.Add(time.Second), base.Add(time.Minute)
	e.record(
		bridge.Outcome{ID: r, Status: bridge.StatusPending, Error: "503: busy", NextAt: next, At: at},
		bridge.Outcome{ID: d, Status: bridge.StatusDelivered, Result: "OPS-1", NextAt: at, At: at},
		bridge.Outcome{ID: f, Status: bridge.StatusFailed, Error: `400: {"errors":{"summary":"too long"}}`, NextAt: at, At: at},
	)
	for _, tc := range []struct {
		name, status, result, lastError string
		next                            time.Time
	}{
		{"retry", bridge.StatusPending, "", "503: busy", next},
		{"delivered", bridge.StatusDelivered, "OPS-1", "", at},
		{"failed", bridge.StatusFailed, "", `400: {"errors":{"summary":"too long"}}`, at},
	} {
		got := e.delivery(tc.name, x)
		if got.Status != tc.status || got.Attempts != 1 || got.Result != tc.result || got.LastError != tc.lastError ||
			!got.NextAt.Equal(tc.next) || !got.Updated.Equal(at) || !got.Created.Equal(base) {
			t.Errorf("%s: %+v; want status %s, 1 attempt, result %q, last error %q, next %v, updated %v",
				tc.name, *got, tc.status, tc.result, tc.lastError, tc.next, at)
		}
	}
	// Only the retry is left, due at its next attempt.
	if ids, _, nextAt := e.due(x, at, 10, nil); len(ids) != 0 || !nextAt.Equal(next) {
		t.Errorf("Due before the retry: %v, next %v; want none, %v", ids, nextAt, next)
	}
	if ids, _, _ := e.due(x, next.Add(time.Hour), 10, nil); !slices.Equal(ids, []int64{r}) {
		t.Errorf("Due at the retry: %v, want [%d]", ids, r)
	}
	// A success clears the last error.
	e.attempt(r, next, bridge.Outcome{Status: bridge.StatusDelivered, Result: "OPS-2", NextAt: next})
	if got := e.delivery("retry", x); got.Status != bridge.StatusDelivered || got.Attempts != 2 || got.LastError != "" || got.Result != "OPS-2" {
		t.Errorf("retry delivered: %+v", *got)
	}
}

// testRecordBatch: a batch sink's outcomes, runs of them alike but for
// their ids (which a store may record with one statement a run), each
// land on their own delivery, and a run keeps each delivery's earlier
// result.
func testRecordBatch(t *testing.T, e *env) {
	x := e.sink("x")
	names := []string{"e0", "e1", "e2", "e3", "e4", "e5"}
	ids := make([]int64, len(names))
	for i, name := range names {
		e.ingest(name, base, deliver(x)...)
		ids[i] = e.delivery(name, x).ID
	}
	t1, t2, next := base.Add(time.Second), base.Add(2*time.Second), base.Add(time.Minute)
	e.attempt(ids[0], t1, bridge.Outcome{Status: bridge.StatusPending, Result: "KEEP-1", Error: "attach: 503", NextAt: t2})
	if ds, _ := e.claim(t2, ids...); len(ds) != len(ids) {
		t.Fatalf("claimed %d, want %d", len(ds), len(ids))
	}
	delivered := bridge.Outcome{Status: bridge.StatusDelivered, NextAt: t2, At: t2}
	retry := bridge.Outcome{Status: bridge.StatusPending, Error: "503: busy", NextAt: next, At: t2}
	var outs []bridge.Outcome
	for i, o := range []bridge.Outcome{delivered, delivered, delivered, retry, retry, delivered} {
		o.ID = ids[i]
		outs = append(outs, o)
	}
	e.record(outs...)
	for i, want := range []struct {
		status, result, lastError string
		attempts                  int
		next                      time.Time
	}{
		{bridge.StatusDelivered, "KEEP-1", "", 2, t2},
		{bridge.StatusDelivered, "", "", 1, t2},
		{bridge.StatusDelivered, "", "", 1, t2},
		{bridge.StatusPending, "", "503: busy", 1, next},
		{bridge.StatusPending, "", "503: busy", 1, next},
		{bridge.StatusDelivered, "", "", 1, t2},
	} {
		got := e.delivery(names[i], x)
		if got.Status != want.status || got.Result != want.result || got.LastError != want.lastError || got.Attempts != want.attempts ||
			!got.NextAt.Equal(want.next) || !got.Updated.Equal(t2) {
			t.Errorf("%s: %+v; want status %s, result %q, last error %q, %d attempts, next %v, updated %v",
				names[i], *got, want.status, want.result, want.lastError, want.attempts, want.next, t2)
		}
	}
	if got, _, _ := e.due(x, next, 10, nil); !slices.Equal(got, ids[3:5]) {
		t.Errorf("Due at the retry: %v, want %v", got, ids[3:5])
	}
}

// testRecordResultKept: a later outcome without a result keeps the result
// an earlier attempt reported (a Jira issue created before a retry).
func testRecordResultKept(t *testing.T, e *env) {
	x := e.sink("x")
	e.ingest("e1", base, deliver(x)...)
	id := e.delivery("e1", x).ID
	t1, t2, t3 := base.Add(time.Second), base.Add(time.Minute), base.Add(2*time.Minute)
	e.attempt(id, t1, bridge.Outcome{Status: bridge.StatusPending, Result: "OPS-1", Error: "attach: 503", NextAt: t2})
	e.attempt(id, t2, bridge.Outcome{Status: bridge.StatusPending, Error: "attach: 502", NextAt: t3})
	if got := e.delivery("e1", x); got.Result != "OPS-1" || got.LastError != "attach: 502" || got.Attempts != 2 {
		t.Errorf("after a retry without a result: %+v", *got)
	}
	e.attempt(id, t3, bridge.Outcome{Status: bridge.StatusDelivered, NextAt: t3})
	if got := e.delivery("e1", x); got.Status != bridge.StatusDelivered || got.Result != "OPS-1" || got.LastError != "" || got.Attempts != 3 {
		t.Errorf("delivered without a result: %+v", *got)
	}
}

// failedSet makes deliveries of x failed in both ways (a template error,
// and an attempt given up), plus a pending and a delivered one, and returns
// their ids.
func (e *env) failedSet(x string) (rendered, gaveUp, pending, delivered int64) {
	e.t.Helper()
	e.ingest("rendered", base, broken(0, x, "template: boom"))
	e.ingest("gave-up", base, deliver(x)...)
	e.ingest("pending", base, deliver(x)...)
	e.ingest("delivered", base, deliver(x)...)
	gaveUp, pending, delivered = e.delivery("gave-up", x).ID, e.delivery("pending", x).ID, e.delivery("delivered", x).ID
	e.attempt(gaveUp, base, bridge.Outcome{Status: bridge.StatusFailed, Error: "403: forbidden", NextAt: base})
	e.attempt(delivered, base, bridge.Outcome{Status: bridge.StatusDelivered, Result: "OPS-1", NextAt: base})
	return e.delivery("rendered", x).ID, gaveUp, pending, delivered
}

// checkReplayed checks that delivery id of event name was put back: pending,
// due at now, with a fresh window, and claimable.
func (e *env) checkReplayed(name, sink string, now time.Time) {
	e.t.Helper()
	d := e.delivery(name, sink)
	if d.Status != bridge.StatusPending || !d.NextAt.Equal(now) || !d.WindowStart.Equal(now) {
		e.t.Errorf("replayed %s: %+v; want pending, next_at and window start %v", name, *d, now)
	}
	if ids, _, _ := e.due(sink, now, 10, nil); !slices.Contains(ids, d.ID) {
		e.t.Errorf("replayed %s not due at %v: %v", name, now, ids)
	}
	if ds, _ := e.claim(now, d.ID); len(ds) != 1 || ds[0].Attempt != d.Attempts+1 {
		e.t.Errorf("claim of the replayed %s: %+v", name, ds)
	}
}

func testReplayIDs(t *testing.T, e *env) {
	x := e.sink("x")
	rendered, gaveUp, pending, delivered := e.failedSet(x)
	now := base.Add(time.Hour)
	got, err := e.s.Replay(e.ctx, []int64{rendered, pending, delivered, -1}, now)
	if err != nil || !slices.Equal(got, []int64{rendered}) {
		t.Fatalf("Replay of a failed, a pending, a delivered and an unknown id: %v, %v; want [%d]", got, err, rendered)
	}
	e.checkReplayed("rendered", x, now)
	if d := e.delivery("gave-up", x); d.Status != bridge.StatusFailed {
		t.Errorf("a failed delivery not asked for was replayed: %+v", *d)
	}
	if d := e.delivery("delivered", x); d.Status != bridge.StatusDelivered || d.Result != "OPS-1" {
		t.Errorf("a delivered delivery asked for: %+v", *d)
	}
	if got, err := e.s.Replay(e.ctx, []int64{rendered}, now); err != nil || len(got) != 0 {
		t.Errorf("Replay of a delivery already replayed: %v, %v", got, err)
	}
	later := now.Add(time.Hour)
	if got, err := e.s.Replay(e.ctx, []int64{gaveUp}, later); err != nil || !slices.Equal(got, []int64{gaveUp}) {
		t.Fatalf("Replay of an attempt given up: %v, %v", got, err)
	}
	e.checkReplayed("gave-up", x, later)
}

// testReplayAll: with no ids, Replay puts back every failed delivery of the
// store, of every sink, and only those.
func testReplayAll(t *testing.T, e *env) {
	x, y := e.sink("x"), e.sink("y")
	_, _, pending, delivered := e.failedSet(x)
	e.ingest("y-failed", base, broken(0, y, "template: boom"))
	var failed []int64
	for _, d := range e.deliveries(bridge.DeliveryFilter{Status: bridge.StatusFailed}) {
		failed = append(failed, d.ID)
	}
	now := base.Add(time.Hour)
	got, err := e.s.Replay(e.ctx, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(failed)
	if !slices.Equal(got, failed) || len(got) < 3 {
		t.Errorf("Replay of every failed delivery: %v, want %v", got, failed)
	}
	if slices.Contains(got, pending) || slices.Contains(got, delivered) {
		t.Errorf("Replay of every failed delivery replayed others: %v", got)
	}
	for name, sink := range map[string]string{"rendered": x, "gave-up": x, "y-failed": y} {
		e.checkReplayed(name, sink, now)
	}
	if left := e.deliveries(bridge.DeliveryFilter{Status: bridge.StatusFailed}); len(left) != 0 {
		t.Errorf("failed deliveries left: %s", show(left))
	}
	if got, err := e.s.Replay(e.ctx, nil, now); err != nil || len(got) != 0 {
		t.Errorf("Replay with nothing failed: %v, %v", got, err)
	}
}

// testReplayOnCommit: a replay wakes the sinks of the deliveries it made
// due.
func testReplayOnCommit(t *testing.T, e *env) {
	w := listen(e.s)
	x, other := e.sink("x"), e.sink("other")
	e.ingest("e1", base, broken(0, x, "template: boom"))
	e.ingest("e2", base, deliver(other)...)
	w.wait(t, 0, other)
	if w.since(0)[x] {
		t.Fatal("a delivery stored failed woke its sink")
	}
	m := w.mark()
	if got, err := e.s.Replay(e.ctx, []int64{e.delivery("e1", x).ID}, base.Add(time.Hour)); err != nil || len(got) != 1 {
		t.Fatalf("Replay: %v, %v", got, err)
	}
	w.wait(t, m, x)
}

// testPrune: Prune deletes the events received before cutoff that have no
// pending delivery, with their deliveries, and keeps the others. Its
// events are from 2001, when no other test's are.
func testPrune(t *testing.T, e *env) {
	x, bad := e.sink("x"), e.sink("bad")
	t0 := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	cutoff := t0.Add(time.Hour)
	e.ingest("bare", t0)
	e.ingest("finished", t0.Add(time.Second), append(deliver(x), broken(1, bad, "template: boom"))...)
	e.attempt(e.delivery("finished", x).ID, t0.Add(time.Second), bridge.Outcome{Status: bridge.StatusDelivered, NextAt: t0})
	e.ingest("pending", t0.Add(2*time.Second), append(deliver(x), broken(1, bad, "template: boom"))...)
	e.ingest("at-cutoff", cutoff)
	e.ingest("new", cutoff.Add(24*time.Hour), broken(0, bad, "template: boom"))

	n, err := e.s.Prune(e.ctx, cutoff)
	if err != nil || n != 2 {
		t.Fatalf("Prune: %d, %v; want 2 (the old events without a pending delivery)", n, err)
	}
	if got := eventIDs(e.events(bridge.EventFilter{Source: e.src})); !slices.Equal(got, []string{e.id("new"), e.id("at-cutoff"), e.id("pending")}) {
		t.Errorf("events left: %q", got)
	}
	if ds := e.deliveries(bridge.DeliveryFilter{EventID: e.id("finished")}); len(ds) != 0 {
		t.Errorf("deliveries of a pruned event left: %s", show(ds))
	}
	p := e.delivery("pending", x)
	if p.Status != bridge.StatusPending {
		t.Errorf("the pending delivery of a kept event: %+v", *p)
	}
	if ds := e.deliveries(bridge.DeliveryFilter{EventID: e.id("new")}); len(ds) != 1 {
		t.Errorf("deliveries of a new event: %s", show(ds))
	}
	if n, err := e.s.Prune(e.ctx, cutoff); err != nil || n != 0 {
		t.Errorf("second Prune: %d, %v; want 0", n, err)
	}
	// Once its delivery is finished, the kept event goes too.
	e.attempt(p.ID, t0.Add(3*time.Second), bridge.Outcome{Status: bridge.StatusDelivered, NextAt: t0})
	if n, err := e.s.Prune(e.ctx, cutoff); err != nil || n != 1 {
		t.Errorf("Prune after the last pending delivery was delivered: %d, %v; want 1", n, err)
	}
	if got := eventIDs(e.events(bridge.EventFilter{Source: e.src})); !slices.Equal(got, []string{e.id("new"), e.id("at-cutoff")}) {
		t.Errorf("events left: %q", got)
	}
}

func testSinkState(t *testing.T, e *env) {
	st := e.s.SinkState(e.sink("jira"))
	get := func(key, want string, wantOK bool) {
		t.Helper()
		v, ok, err := st.Get(e.ctx, key)
		if err != nil || v != want || ok != wantOK {
			t.Errorf("Get(%q): %q, %v, %v; want %q, %v", key, v, ok, err, want, wantOK)
		}
	}
	put := func(key, value string) {
		t.Helper()
		if err := st.Put(e.ctx, key, value); err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
	}
	get("key:1", "", false)
	put("key:1", "OPS-1")
	get("key:1", "OPS-1", true)
	put("key:1", "OPS-2")
	get("key:1", "OPS-2", true)
	put("empty", "")
	get("empty", "", true) // stored, with an empty value
	// Odd, but no NUL: PostgreSQL's text holds none, and the sinks' keys
	// are hashed and their values JSON.
	odd := "k é\n\"'%_*?;--" + strings.Repeat("x", 300)
	value := `{"issue":"OPS-3","at":"2026-03-01T12:00:00Z"}` + "\n" + strings.Repeat("é", 5000)
	put(odd, value)
	get(odd, value, true)
	get("key:", "", false)
	if err := st.Delete(e.ctx, "key:1"); err != nil {
		t.Fatal(err)
	}
	get("key:1", "", false)
	get(odd, value, true)
	if err := st.Delete(e.ctx, "never-put"); err != nil {
		t.Errorf("Delete of a key never put: %v", err)
	}
	// Another State of the same sink name is the same state.
	if v, ok, err := e.s.SinkState(e.sink("jira")).Get(e.ctx, odd); err != nil || !ok || v != value {
		t.Errorf("another State of the sink: %q, %v, %v", v, ok, err)
	}
}

func testSinkStateIsolation(t *testing.T, e *env) {
	a, b := e.s.SinkState(e.sink("a")), e.s.SinkState(e.sink("b"))
	check := func(st bridge.State, name, want string, wantOK bool) {
		t.Helper()
		v, ok, err := st.Get(e.ctx, "k")
		if err != nil || v != want || ok != wantOK {
			t.Errorf("%s: Get: %q, %v, %v; want %q, %v", name, v, ok, err, want, wantOK)
		}
	}
	if err := a.Put(e.ctx, "k", "a's"); err != nil {
		t.Fatal(err)
	}
	check(b, "b after a's Put", "", false)
	if err := b.Put(e.ctx, "k", "b's"); err != nil {
		t.Fatal(err)
	}
	check(a, "a after b's Put", "a's", true)
	check(b, "b", "b's", true)
	if err := a.Delete(e.ctx, "k"); err != nil {
		t.Fatal(err)
	}
	check(a, "a after its Delete", "", false)
	check(b, "b after a's Delete", "b's", true)
}

// testSinkLocks: every Locker of one sink name shares its locks; other keys
// and other names have their own.
func testSinkLocks(t *testing.T, e *env) {
	jira := e.sink("jira")
	lock := func(l bridge.Locker, key string) func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		defer cancel()
		unlock, err := l.Lock(ctx, key)
		if err != nil {
			t.Fatalf("Lock(%q): %v", key, err)
		}
		return unlock
	}
	unlock := lock(e.s.SinkLocks(jira), "OPS:1")

	// Another instance of the sink waits for the key until its context ends.
	short, cancel := context.WithTimeout(e.ctx, 100*time.Millisecond)
	defer cancel()
	if u, err := e.s.SinkLocks(jira).Lock(short, "OPS:1"); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			u()
		}
		t.Errorf("Lock of a key held by another instance of the sink: %v, want the context's deadline", err)
	}
	if short.Err() == nil {
		t.Error("Lock gave up before its context ended")
	}
	lock(e.s.SinkLocks(jira), "OPS:2")()
	lock(e.s.SinkLocks(e.sink("slack")), "OPS:1")()

	// A waiter gets the key once it is released.
	got := make(chan func(), 1)
	go func() {
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		defer cancel()
		u, err := e.s.SinkLocks(jira).Lock(ctx, "OPS:1")
		if err != nil {
			t.Errorf("waiting Lock: %v", err)
			u = func() {}
		}
		got <- u
	}()
	select {
	case u := <-got:
		u()
		t.Fatal("a waiter took the key while it was held")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	select {
	case u := <-got:
		u()
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not get the key after it was released")
	}
	lock(e.s.SinkLocks(jira), "OPS:1")()
}

func testHealth(t *testing.T, e *env) {
	if at, err := e.s.LastWriteError(); err != nil || !at.IsZero() {
		t.Errorf("LastWriteError of a new store: %v, %v", at, err)
	}
	if err := e.s.Ping(e.ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	e.ingest("e1", base, deliver(e.sink("x"))...)
	if err := e.s.SinkState(e.sink("x")).Put(e.ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Ping(e.ctx); err != nil {
		t.Errorf("second Ping: %v", err)
	}
	if at, err := e.s.LastWriteError(); err != nil || !at.IsZero() {
		t.Errorf("LastWriteError after writes that succeeded: %v, %v", at, err)
	}
	// Ping leaves nothing a listing shows.
	if evs := e.events(bridge.EventFilter{Source: e.src}); len(evs) != 1 {
		t.Errorf("%d events after Ping, want 1", len(evs))
	}
}

// testClosed: after Close every write fails with bridge.ErrStoreClosed, and
// every read fails, neither panicking nor blocking.
func testClosed(t *testing.T, e *env) {
	x := e.sink("x")
	e.ingest("e1", base, deliver(x)...)
	id := e.delivery("e1", x).ID
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ev, raw := e.event("e2", base)
	st := e.s.SinkState(x)
	writes := map[string]func() error{
		"Ingest": func() error { _, err := e.s.Ingest(e.ctx, ev, raw, deliver(x)); return err },
		"Record": func() error {
			return e.s.Record(e.ctx, []bridge.Outcome{{ID: id, Status: bridge.StatusDelivered, NextAt: base, At: base}})
		},
		"Replay":       func() error { _, err := e.s.Replay(e.ctx, nil, base); return err },
		"Prune":        func() error { _, err := e.s.Prune(e.ctx, base.Add(time.Hour)); return err },
		"State.Put":    func() error { return st.Put(e.ctx, "k", "v") },
		"State.Delete": func() error { return st.Delete(e.ctx, "k") },
		"Ping":         func() error { return e.s.Ping(e.ctx) },
	}
	for name, call := range writes {
		if err := call(); !errors.Is(err, bridge.ErrStoreClosed) {
			t.Errorf("%s after Close: %v, want bridge.ErrStoreClosed", name, err)
		}
	}
	reads := map[string]func() error{
		"Events":        func() error { _, err := e.s.Events(e.ctx, bridge.EventFilter{}); return err },
		"Deliveries":    func() error { _, err := e.s.Deliveries(e.ctx, bridge.DeliveryFilter{}); return err },
		"PendingCounts": func() error { _, err := e.s.PendingCounts(e.ctx); return err },
		"Due":           func() error { _, _, _, err := e.s.Due(e.ctx, x, base, 10, nil); return err },
		"Claim":         func() error { _, _, err := e.s.Claim(e.ctx, []int64{id}, base); return err },
		"State.Get":     func() error { _, _, err := st.Get(e.ctx, "k"); return err },
	}
	for name, call := range reads {
		if err := call(); err == nil {
			t.Errorf("%s after Close: no error", name)
		}
	}
	if err := e.s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// testCloseRacing: writes made while Close runs each return, done or
// refused, and Close returns.
func testCloseRacing(t *testing.T, e *env) {
	x := e.sink("x")
	e.ingest("warm-up", base, deliver(x)...)
	var wg sync.WaitGroup
	started := make(chan struct{}, 8)
	var mu sync.Mutex
	var stored, refused int
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				ev, raw := e.event(fmt.Sprintf("w%d-%d", w, i), base)
				_, err := e.s.Ingest(context.Background(), ev, raw, deliver(x))
				if i == 0 {
					started <- struct{}{}
				}
				if err != nil {
					mu.Lock()
					refused++
					mu.Unlock()
					return
				}
				mu.Lock()
				stored++
				mu.Unlock()
			}
		})
	}
	for range 8 {
		<-started
	}
	closed := make(chan error, 1)
	go func() { closed <- e.s.Close() }()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timeout := time.After(30 * time.Second)
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-timeout:
		t.Fatal("Close did not return while writes ran")
	}
	select {
	case <-done:
	case <-timeout:
		t.Fatal("a write racing Close never returned")
	}
	// Whatever its error while Close ran, a write started after it is refused.
	ev, raw := e.event("after", base)
	if _, err := e.s.Ingest(e.ctx, ev, raw, deliver(x)); !errors.Is(err, bridge.ErrStoreClosed) {
		t.Errorf("Ingest after Close: %v, want bridge.ErrStoreClosed", err)
	}
	t.Logf("%d writes stored, %d refused", stored, refused)
}

// testEventsFilters: type, severity and text (in the title or subject,
// case-insensitive, wildcards taken literally) narrow the list, and Before
// pages through it newest first with no event twice or left out.
func testEventsFilters(t *testing.T, e *env) {
	for i := range 5 {
		ev, raw := e.event(fmt.Sprintf("e%d", i), base.Add(time.Duration(i)*time.Second))
		if i%2 == 1 {
			ev.Type, ev.Severity = "agent.error", "low"
		}
		if i == 3 {
			ev.Title = "Disk 100% full on host_7"
		}
		if _, err := e.s.Ingest(e.ctx, ev, raw, nil); err != nil {
			t.Fatal(err)
		}
	}
	id := func(i int) string { return e.id(fmt.Sprintf("e%d", i)) }
	check := func(what string, f bridge.EventFilter, want ...string) {
		t.Helper()
		f.Source = e.src
		if got := eventIDs(e.events(f)); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", what, got, want)
		}
	}
	check("type", bridge.EventFilter{Type: "agent.error"}, id(3), id(1))
	check("severity", bridge.EventFilter{Severity: "high"}, id(4), id(2), id(0))
	check("type and severity", bridge.EventFilter{Type: "agent.error", Severity: "high"})
	check("text in the title, any case", bridge.EventFilter{Text: "DISK 100% FULL"}, id(3))
	check("text in the subject", bridge.EventFilter{Text: "a-e2"}, id(2))
	check("a literal %", bridge.EventFilter{Text: "0%"}, id(3))
	check("a literal _", bridge.EventFilter{Text: "host_"}, id(3))
	check("_ is no wildcard", bridge.EventFilter{Text: "host7"})

	var pages [][]string
	var before int64
	for range 10 {
		evs := e.events(bridge.EventFilter{Source: e.src, Before: before, Limit: 2})
		if len(evs) == 0 {
			break
		}
		pages = append(pages, eventIDs(evs))
		before = evs[len(evs)-1].Seq
	}
	want := [][]string{{id(4), id(3)}, {id(2), id(1)}, {id(0)}}
	if fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Errorf("pages of 2 by the Before cursor: %q, want %q", pages, want)
	}
}

// testEvent: one event by source and id, with the raw body as stored;
// ErrNotFound for an id or a source the store does not have.
func testEvent(t *testing.T, e *env) {
	ev := e.ingest("e1", base)
	got, raw, err := e.s.Event(e.ctx, e.src, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, want := e.event("e1", base)
	if string(raw) != string(want) {
		t.Errorf("raw body %s, want %s", raw, want)
	}
	if got.Event.ID != ev.ID || got.Event.Source != e.src || got.Event.Title != ev.Title || got.Event.Data["name"] != "e1" || got.Seq == 0 {
		t.Errorf("event %+v (seq %d)", got.Event, got.Seq)
	}
	if _, _, err := e.s.Event(e.ctx, e.src, ev.ID+"-none"); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("an unknown id: %v, want ErrNotFound", err)
	}
	if _, _, err := e.s.Event(e.ctx, e.src+"-none", ev.ID); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("an unknown source: %v, want ErrNotFound", err)
	}
}

// testDeliveriesCursor: source and rule narrow the list; Before pages
// through it newest first.
func testDeliveriesCursor(t *testing.T, e *env) {
	sink := e.sink("out")
	for i := range 3 {
		planned := deliver(sink)
		if i == 1 {
			planned[0].Rule = "other"
		}
		e.ingest(fmt.Sprintf("e%d", i), base.Add(time.Duration(i)*time.Second), planned...)
	}
	if got := e.deliveries(bridge.DeliveryFilter{Sink: sink, Rule: "other"}); len(got) != 1 || got[0].EventID != e.id("e1") {
		t.Errorf("rule filter: %s", show(got))
	}
	if got := e.deliveries(bridge.DeliveryFilter{Sink: sink, Source: e.src + "-none"}); len(got) != 0 {
		t.Errorf("source filter of another source: %s", show(got))
	}
	if got := e.deliveries(bridge.DeliveryFilter{EventID: e.id("e2"), Source: e.src}); len(got) != 1 {
		t.Errorf("event and source: %s", show(got))
	}
	var seen []string
	var before int64
	for range 10 {
		ds := e.deliveries(bridge.DeliveryFilter{Sink: sink, Before: before, Limit: 2})
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			seen = append(seen, d.EventID)
		}
		before = ds[len(ds)-1].ID
	}
	if want := []string{e.id("e2"), e.id("e1"), e.id("e0")}; !slices.Equal(seen, want) {
		t.Errorf("pages by the Before cursor: %q, want %q", seen, want)
	}
}

// testSinkStats: each sink's deliveries by status, and the error of the
// delivery that failed or was retried most recently; a delivered one that
// had failed before no longer counts as an error.
func testSinkStats(t *testing.T, e *env) {
	a, b := e.sink("a"), e.sink("b")
	e.ingest("e1", base, deliver(a, b)...)
	e.ingest("e2", base.Add(time.Second), deliver(a)...)
	e.ingest("e3", base.Add(2*time.Second), deliver(a)...)
	d1, d2, d3 := e.delivery("e1", a), e.delivery("e2", a), e.delivery("e3", a)
	e.attempt(d1.ID, base.Add(time.Minute), bridge.Outcome{Status: bridge.StatusFailed, Error: "HTTP 400: no"})
	e.attempt(d2.ID, base.Add(2*time.Minute), bridge.Outcome{Status: bridge.StatusPending, Error: "HTTP 503: later", NextAt: base.Add(time.Hour)})
	e.attempt(d3.ID, base.Add(3*time.Minute), bridge.Outcome{Status: bridge.StatusDelivered, Result: "ok"})
	stats, err := e.s.SinkStats(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	sa, sb := stats[a], stats[b]
	if sa.Pending != 1 || sa.Failed != 1 || sa.Delivered != 1 || sa.LastError != "HTTP 503: later" || !sa.LastErrorAt.Equal(base.Add(2*time.Minute)) {
		t.Errorf("sink a: %+v", sa)
	}
	if sb.Pending != 1 || sb.Failed != 0 || sb.Delivered != 0 || sb.LastError != "" {
		t.Errorf("sink b: %+v", sb)
	}
	e.attempt(d2.ID, base.Add(2*time.Hour), bridge.Outcome{Status: bridge.StatusDelivered, Result: "ok"})
	stats, err = e.s.SinkStats(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sa := stats[a]; sa.LastError != "HTTP 400: no" || sa.Delivered != 2 {
		t.Errorf("sink a after the retry succeeded: %+v", sa)
	}
}
