package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"bridge/bridge"
)

// chain plans a chain of actions of rule "r": the i-th to sinks[i], with
// id "a<i>", each after the one before it.
func chain(sinks ...string) []bridge.Planned {
	out := deliver(sinks...)
	for i := range out {
		out[i].ID = fmt.Sprintf("a%d", i)
		if i > 0 {
			out[i].After, out[i].AfterIndex = out[i-1].ID, i-1
		}
	}
	return out
}

// chainIDs ingests a chain for the event called name and returns the ids
// of its deliveries, in order.
func (e *env) chainIDs(name string, sinks ...string) []int64 {
	e.t.Helper()
	e.ingest(name, base, chain(sinks...)...)
	ids := make([]int64, len(sinks))
	for i, sk := range sinks {
		ids[i] = e.delivery(name, sk).ID
	}
	return ids
}

// wantWaiting fails the test unless the delivery of name to sink waits for
// the action it runs after.
func (e *env) wantWaiting(name, sink string) *bridge.DeliveryRecord {
	e.t.Helper()
	d := e.delivery(name, sink)
	if !d.Waiting() {
		e.t.Errorf("delivery %d to %s: status %s, next %v, after %q; want it waiting", d.ID, sink, d.Status, d.NextAt, d.After)
	}
	return d
}

// testChainWaits: a dependent is stored waiting, is never due while the
// action it runs after is pending or retrying, and is released (due at the
// outcome's time, with a fresh retry window, its sink woken) when that
// action is delivered; the result and link are kept.
func testChainWaits(t *testing.T, e *env) {
	w := listen(e.s)
	j, s := e.sink("jira"), e.sink("slack")
	ids := e.chainIDs("e1", j, s)
	w.wait(t, 0, j)
	d := e.wantWaiting("e1", s)
	if d.After != "a0" || d.AfterIndex != 0 || d.ActionID != "a1" {
		t.Errorf("the dependent's chain: id %q, after %q (index %d); want a1 after a0 (0)", d.ActionID, d.After, d.AfterIndex)
	}
	if p := e.delivery("e1", j); p.ActionID != "a0" || p.After != "" || p.AfterIndex != -1 || p.Waiting() {
		t.Errorf("the first action's chain: id %q, after %q (index %d), waiting %v", p.ActionID, p.After, p.AfterIndex, p.Waiting())
	}
	if b, err := json.Marshal(d); err != nil || !strings.Contains(string(b), `"after":"a0"`) || !strings.HasSuffix(string(b), `,"waiting":true}`) {
		t.Errorf("the waiting dependent as JSON: %s, %v", b, err)
	}
	if got, _, _ := e.due(s, base.Add(24*time.Hour), 10, nil); len(got) != 0 {
		t.Fatalf("Due of a waiting dependent: %v", got)
	}
	if ds, _ := e.claim(base.Add(24*time.Hour), ids[1]); len(ds) != 0 {
		t.Fatalf("a waiting dependent was claimed")
	}
	if n, err := e.s.PendingCounts(e.ctx); err != nil || n[s] != 1 {
		t.Errorf("PendingCounts: %v, %v; want the waiting one counted pending", n, err)
	}

	// A retry of the first action keeps it waiting.
	at := base.Add(time.Second)
	_, recs := e.claim(at, ids[0])
	if len(recs) != 1 || recs[0].ActionID != "a0" || recs[0].After != "" || recs[0].AfterIndex != -1 {
		t.Fatalf("the claimed first action: %+v; want id a0, after nothing (-1)", recs)
	}
	e.record(bridge.Outcome{ID: ids[0], Status: bridge.StatusPending, Error: "503: busy", NextAt: at.Add(time.Minute), At: at, Chained: true})
	e.wantWaiting("e1", s)

	m := w.mark()
	done := base.Add(time.Hour)
	e.attempt(ids[0], done, bridge.Outcome{Status: bridge.StatusDelivered, Result: "OPS-1", Link: "https://jira.example/browse/OPS-1",
		NextAt: done, Chained: true})
	w.wait(t, m, s)
	if p := e.delivery("e1", j); p.Result != "OPS-1" || p.Link != "https://jira.example/browse/OPS-1" {
		t.Errorf("the first action delivered: result %q, link %q", p.Result, p.Link)
	}
	if got, _, _ := e.due(s, done, 10, nil); !slices.Equal(got, []int64{ids[1]}) {
		t.Fatalf("Due once released: %v, want [%d]", got, ids[1])
	}
	ds, recs := e.claim(done, ids[1])
	if len(ds) != 1 {
		t.Fatal("the released dependent was not claimed")
	}
	if r := recs[0]; r.After != "a0" || r.AfterIndex != 0 || r.ActionID != "a1" || !r.WindowStart.Equal(done) || !r.NextAt.Equal(done) {
		t.Errorf("the claimed dependent: id %q, after %q (%d), window %v, next %v; want a1 after a0 (0), both %v",
			r.ActionID, r.After, r.AfterIndex, r.WindowStart, r.NextAt, done)
	}
}

// testChainFails: a failed action fails its dependents and theirs, each
// saying which action it ran after and why that failed; replaying the
// action puts them back to waiting, and its delivery releases them one
// after the other.
func testChainFails(t *testing.T, e *env) {
	j, s, h := e.sink("jira"), e.sink("slack"), e.sink("http")
	ids := e.chainIDs("e1", j, s, h)
	at := base.Add(time.Second)
	e.attempt(ids[0], at, bridge.Outcome{Status: bridge.StatusFailed, Error: "400: project OPS does not exist", NextAt: at, Chained: true})
	for i, sk := range []string{s, h} {
		d := e.delivery("e1", sk)
		after := fmt.Sprintf("action %q (delivery %d)", fmt.Sprintf("a%d", i), ids[i])
		if d.Status != bridge.StatusFailed || !strings.Contains(d.LastError, after) ||
			!strings.Contains(d.LastError, "400: project OPS does not exist") || d.Attempts != 0 {
			t.Errorf("dependent %d: status %s, %d attempts, last error %q; want failed, unattempted, naming %s and the cause",
				i+1, d.Status, d.Attempts, d.LastError, after)
		}
	}

	// Replaying a dependent alone while its action is failed changes nothing.
	if got, err := e.s.Replay(e.ctx, []int64{ids[1]}, at); err != nil || len(got) != 0 {
		t.Errorf("Replay of a dependent whose action failed: %v, %v; want nothing replayed", got, err)
	}
	if d := e.delivery("e1", s); d.Status != bridge.StatusFailed {
		t.Errorf("the dependent replayed alone: %s", d.Status)
	}

	replayed := base.Add(time.Minute)
	got, err := e.s.Replay(e.ctx, []int64{ids[0]}, replayed)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, ids) {
		t.Fatalf("Replay of the failed action: %v, %v; want it and its dependents %v", got, err, ids)
	}
	e.wantWaiting("e1", s)
	e.wantWaiting("e1", h)
	if got, _, _ := e.due(j, replayed, 10, nil); !slices.Equal(got, ids[:1]) {
		t.Fatalf("Due of the replayed action: %v", got)
	}
	done := replayed.Add(time.Second)
	e.attempt(ids[0], done, bridge.Outcome{Status: bridge.StatusDelivered, Result: "OPS-9", NextAt: done, Chained: true})
	if got, _, _ := e.due(s, done, 10, nil); !slices.Equal(got, ids[1:2]) {
		t.Fatalf("Due of the first dependent once its action is delivered: %v", got)
	}
	e.wantWaiting("e1", h)
	e.attempt(ids[1], done, bridge.Outcome{Status: bridge.StatusDelivered, Result: "C1/1700000000.1", NextAt: done, Chained: true})
	if got, _, _ := e.due(h, done, 10, nil); !slices.Equal(got, ids[2:]) {
		t.Fatalf("Due of the second dependent once the first is delivered: %v", got)
	}
}

// testChainReplayDependent: a dependent that failed on its own, after its
// action was delivered, is replayed due now; a dependent replayed with its
// failed action waits for it.
func testChainReplayDependent(t *testing.T, e *env) {
	j, s := e.sink("jira"), e.sink("slack")
	ids := e.chainIDs("own", j, s)
	at := base.Add(time.Second)
	e.attempt(ids[0], at, bridge.Outcome{Status: bridge.StatusDelivered, Result: "OPS-1", NextAt: at, Chained: true})
	e.attempt(ids[1], at, bridge.Outcome{Status: bridge.StatusFailed, Error: "channel_not_found", NextAt: at, Chained: true})
	now := base.Add(time.Hour)
	if got, err := e.s.Replay(e.ctx, []int64{ids[1]}, now); err != nil || !slices.Equal(got, ids[1:]) {
		t.Fatalf("Replay of a dependent that failed on its own: %v, %v", got, err)
	}
	if got, _, _ := e.due(s, now, 10, nil); !slices.Equal(got, ids[1:]) {
		t.Errorf("Due of the replayed dependent: %v, want %v", got, ids[1:])
	}

	both := e.chainIDs("both", j, s)
	e.attempt(both[0], at, bridge.Outcome{Status: bridge.StatusFailed, Error: "401: unauthorized", NextAt: at, Chained: true})
	got, err := e.s.Replay(e.ctx, both, now)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, both) {
		t.Fatalf("Replay of an action and its dependent: %v, %v; want %v", got, err, both)
	}
	e.wantWaiting("both", s)
}
