package console

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"bridge/bridge"
)

// Cursor kinds: a cursor of one list is refused by the other.
const (
	eventCursor    = 'e'
	deliveryCursor = 'd'
)

// eventQuery is the events list's filters and page, from query parameters
// named like `bridge events`' flags.
type eventQuery struct {
	Source, Type, Severity, Text string
	Cursor                       string
	Limit                        int
	before                       int64
}

func parseEventQuery(q url.Values) (eventQuery, error) {
	eq := eventQuery{
		Source:   strings.TrimSpace(q.Get("source")),
		Type:     strings.TrimSpace(q.Get("type")),
		Severity: strings.TrimSpace(q.Get("severity")),
		Text:     strings.TrimSpace(q.Get("text")),
		Cursor:   q.Get("cursor"),
	}
	if eq.Severity != "" && !bridge.ValidSeverity(eq.Severity) {
		return eq, fmt.Errorf("severity must be one of %s, not %q", strings.Join(bridge.Severities, ", "), eq.Severity)
	}
	var err error
	if eq.Limit, err = parseLimit(q.Get("limit")); err != nil {
		return eq, err
	}
	if eq.before, err = decodeCursor(eventCursor, eq.Cursor); err != nil {
		return eq, err
	}
	return eq, nil
}

// values are the query's filters (not its cursor), for links.
func (eq eventQuery) values() url.Values {
	v := url.Values{"source": {eq.Source}, "type": {eq.Type}, "severity": {eq.Severity}, "text": {eq.Text}}
	if eq.Limit != defaultLimit {
		v.Set("limit", fmt.Sprint(eq.Limit))
	}
	return v
}

// listEvents reads one page, newest first, and the cursor of the next
// ("" on the last page). It asks the store for one event more than the
// page to know whether there is a next page: a keyset query, as fast on
// the millionth page as on the first.
func (c *console) listEvents(ctx context.Context, eq eventQuery) ([]bridge.StoredEvent, string, error) {
	evs, err := c.opt.Store.Events(ctx, bridge.EventFilter{
		Source: eq.Source, Type: eq.Type, Severity: eq.Severity, Text: eq.Text,
		Before: eq.before, Limit: eq.Limit + 1,
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(evs) > eq.Limit {
		evs = evs[:eq.Limit]
		next = encodeCursor(eventCursor, evs[len(evs)-1].Seq)
	}
	return evs, next, nil
}

// deliveryQuery is the deliveries list's filters and page, named like
// `bridge deliveries`' flags.
type deliveryQuery struct {
	Status, Sink, Rule, Event, Source string
	Cursor                            string
	Limit                             int
	before                            int64
}

func parseDeliveryQuery(q url.Values) (deliveryQuery, error) {
	dq := deliveryQuery{
		Status: strings.TrimSpace(q.Get("status")),
		Sink:   strings.TrimSpace(q.Get("sink")),
		Rule:   strings.TrimSpace(q.Get("rule")),
		Event:  strings.TrimSpace(q.Get("event")),
		Source: strings.TrimSpace(q.Get("source")),
		Cursor: q.Get("cursor"),
	}
	switch dq.Status {
	case "", bridge.StatusPending, bridge.StatusDelivered, bridge.StatusFailed:
	default:
		return dq, fmt.Errorf("status must be pending, delivered or failed, not %q", dq.Status)
	}
	var err error
	if dq.Limit, err = parseLimit(q.Get("limit")); err != nil {
		return dq, err
	}
	if dq.before, err = decodeCursor(deliveryCursor, dq.Cursor); err != nil {
		return dq, err
	}
	return dq, nil
}

func (dq deliveryQuery) values() url.Values {
	v := url.Values{"status": {dq.Status}, "sink": {dq.Sink}, "rule": {dq.Rule}, "event": {dq.Event}, "source": {dq.Source}}
	if dq.Limit != defaultLimit {
		v.Set("limit", fmt.Sprint(dq.Limit))
	}
	return v
}

func (c *console) listDeliveries(ctx context.Context, dq deliveryQuery) ([]*bridge.DeliveryRecord, string, error) {
	ds, err := c.opt.Store.Deliveries(ctx, bridge.DeliveryFilter{
		Status: dq.Status, Sink: dq.Sink, Rule: dq.Rule, EventID: dq.Event, Source: dq.Source,
		Before: dq.before, Limit: dq.Limit + 1,
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(ds) > dq.Limit {
		ds = ds[:dq.Limit]
		next = encodeCursor(deliveryCursor, ds[len(ds)-1].ID)
	}
	return ds, next, nil
}

// delivery returns one delivery by id, or nil: the keyset query for the
// page that starts at it.
func (c *console) delivery(ctx context.Context, id int64) (*bridge.DeliveryRecord, error) {
	ds, err := c.opt.Store.Deliveries(ctx, bridge.DeliveryFilter{Before: id + 1, Limit: 1})
	if err != nil || len(ds) == 0 || ds[0].ID != id {
		return nil, err
	}
	return ds[0], nil
}

// replay puts failed deliveries back in the queue and wakes the pipeline.
// ids must not be empty: the store reads no ids as "every failed one".
func (c *console) replay(ctx context.Context, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	done, err := c.opt.Store.Replay(ctx, ids, c.now())
	if err != nil {
		return nil, err
	}
	c.stats.forget()
	if len(done) > 0 && c.opt.Wake != nil {
		sinks := map[string]bool{}
		if rt := c.opt.Runtime(); rt != nil && rt.Config != nil {
			for _, s := range rt.Config.Sinks {
				sinks[s.Name] = true
			}
		}
		c.opt.Wake(sinks)
	}
	return done, nil
}
