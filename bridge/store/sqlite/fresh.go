package sqlite

import (
	"sync"
	"time"

	"bridge/bridge"
)

// freshMax and freshMaxBytes bound the fresh deliveries kept: enough for
// the batches a sink that keeps up has due (the scheduler reads at most
// 2,000 at a time); a larger backlog is read from the database, as after a
// restart. freshMaxBytes counts the raw bodies, once per delivery.
const (
	freshMax      = 4096
	freshMaxBytes = 16 << 20
)

// freshCache holds the deliveries this process stored and has not claimed
// yet, as Claim would read them back, so that the claim of a new delivery,
// the common case by far, reads neither its row nor its event's from the
// database. Only deliveries never attempted are kept: nothing but an
// attempt (Claim, then Record) changes one of those (Replay takes only
// failed ones, Prune only finished ones), so what is kept stays what the
// database holds. Entries are added after their commit (a rolled-back id
// may be given again), taken by Claim, and the oldest dropped beyond
// freshMax or freshMaxBytes.
type freshCache struct {
	mu    sync.Mutex
	m     map[int64]*freshDelivery
	bytes int // of the raw bodies of the deliveries in m

	// ring holds the ids in the order added, n of them from head, for
	// dropping the oldest; ids no longer in m are skipped.
	ring    [freshMax]int64
	head, n int
}

// freshDelivery is a delivery as Claim returns it, but for its event's
// data, which ev decodes from the raw body when first claimed.
type freshDelivery struct {
	d    bridge.Delivery
	rec  bridge.DeliveryRecord
	ev   *freshEvent
	size int // of the raw body, for freshCache.bytes
}

// freshEvent is the event of fresh deliveries, shared by them. Its data is
// the Event's given to Ingest, which is what the raw body's data decodes to
// (bridge.Store.Ingest), or, when the Event has none, decoded from the raw
// body, as a claim from the database does.
type freshEvent struct {
	ev   *bridge.Event
	raw  []byte // a copy: the caller of Ingest may reuse its own; nil once decoded
	size int    // of the raw body: what the event holds in memory, about
	once sync.Once
}

// event returns the event, its data decoded.
func (f *freshEvent) event() *bridge.Event {
	f.once.Do(func() {
		if f.ev.Data == nil { // not given to Ingest
			f.ev.Data = bridge.StoredData(f.raw)
			f.raw = nil
		}
	})
	return f.ev
}

func newFreshCache() *freshCache { return &freshCache{m: make(map[int64]*freshDelivery, freshMax)} }

// add keeps fds, committed just now.
func (c *freshCache) add(fds []*freshDelivery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, fd := range fds {
		if fd.size > freshMaxBytes/64 {
			continue // a large body is read back when claimed
		}
		for c.n > 0 && (c.n == freshMax || c.bytes+fd.size > freshMaxBytes) {
			c.drop(c.ring[c.head])
			c.head, c.n = (c.head+1)%freshMax, c.n-1
		}
		c.ring[(c.head+c.n)%freshMax] = fd.d.ID
		c.n++
		c.m[fd.d.ID] = fd
		c.bytes += fd.size
	}
}

// drop forgets id, if it is kept. The caller holds c.mu.
func (c *freshCache) drop(id int64) {
	if fd, ok := c.m[id]; ok {
		delete(c.m, id)
		c.bytes -= fd.size
	}
}

// take removes and returns those of ids that are kept and due at now, and
// the ids it does not have (in the order asked).
func (c *freshCache) take(ids []int64, now time.Time) (hits []*freshDelivery, misses []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		fd, ok := c.m[id]
		switch {
		case !ok:
			misses = append(misses, id)
		case fd.rec.NextAt.After(now):
			// Kept, so pending and never attempted, but not due yet: what
			// the database would answer too.
		default:
			c.drop(id) // its id stays in ring, where it is skipped
			hits = append(hits, fd)
		}
	}
	return hits, misses
}

// claimed returns the delivery and its record; it is no longer kept.
func (fd *freshDelivery) claimed() (*bridge.Delivery, *bridge.DeliveryRecord) {
	fd.d.Event = fd.ev.event()
	return &fd.d, &fd.rec
}

// forget drops the deliveries of outs: their attempts are being recorded.
func (c *freshCache) forget(outs []bridge.Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range outs {
		c.drop(o.ID)
	}
}

// newFreshEvent returns ev as the store reads it back: its times through
// their stored form (Unix nanoseconds, UTC), its data from raw.
func newFreshEvent(ev *bridge.Event, raw []byte) *freshEvent {
	e := *ev
	e.Time = time.Unix(0, ev.Time.UnixNano()).UTC()
	e.Received = time.Unix(0, ev.Received.UnixNano()).UTC()
	f := &freshEvent{ev: &e, size: len(raw)}
	if e.Data == nil {
		f.raw = append([]byte(nil), raw...)
	}
	return f
}

// newFresh is the delivery id of p just stored for ev at now (Unix ns), as
// Claim reads it back.
func newFresh(id int64, fe *freshEvent, p bridge.Planned, now int64) *freshDelivery {
	ev := fe.ev
	at := time.Unix(0, now).UTC()
	var action []byte
	if len(p.Action) > 0 {
		action = p.Action
	}
	return &freshDelivery{
		ev:   fe,
		size: fe.size,
		d:    bridge.Delivery{ID: id, Rule: p.Rule, Sink: p.Sink, Action: action, Attempt: 1},
		rec: bridge.DeliveryRecord{ID: id, EventID: ev.ID, Source: ev.Source, Rule: p.Rule, Sink: p.Sink, Status: bridge.StatusPending,
			Created: at, NextAt: at, Updated: at, Action: action, WindowStart: at, ActionID: p.ID, AfterIndex: -1},
	}
}
