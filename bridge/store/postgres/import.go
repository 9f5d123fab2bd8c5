package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"bridge/bridge"
)

// ImportedEvent is an event read from another store (`bridge store
// import` reads them from SQLite), with its deliveries.
type ImportedEvent struct {
	Event      *bridge.Event
	Raw        []byte
	Deliveries []ImportedDelivery
}

// ImportedDelivery is a delivery as another store has it: its state is
// copied as it is, so a pending one stays pending (and is taken up by the
// replicas), a failed one can still be replayed, and a delivered one keeps
// its result.
type ImportedDelivery struct {
	Rule        string
	Index       int // the action's index within its rule
	Sink        string
	Action      json.RawMessage
	Status      string
	Attempts    int
	LastError   string
	Result      string
	Created     time.Time
	WindowStart time.Time
	NextAt      time.Time
	Updated     time.Time

	// ActionID is the action's `id` within its rule ("" for none); After
	// the `id` of the action it runs after ("" for none), whose Index is
	// AfterIndex (read only when After is set). A dependent that waits
	// (pending, NextAt bridge.Waiting) keeps waiting for the imported
	// delivery of that action. Link is the URL of a delivered result.
	ActionID   string
	After      string
	AfterIndex int
	Link       string
}

// StateRow is one key of a sink's state, as another store has it.
type StateRow struct {
	Sink, Key, Value string
	Updated          time.Time
}

// ImportCounts says what an import copied; what was already there is not
// counted.
type ImportCounts struct {
	Events, Deliveries, State int
}

// The statements importing one event: the event unless its (source, id) is
// stored, then those of its deliveries whose (rule, action index) the stored
// event lacks. The second runs as a statement of its own, so it sees the
// event whether this import or another writer stored it. Pending ones are
// announced, so running replicas take them up at once, but for dependents
// that wait: the delivery of their action releases them.
const (
	importEventSQL = `INSERT INTO events (source, id, vendor, type, time, received, severity, title, subject, raw)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (source, id) DO NOTHING`
	importDeliveriesSQL = `
WITH d AS (
	INSERT INTO deliveries (event_seq, rule, action_index, sink, action, status, attempts, last_error, result, created, window_start, next_at, updated,
		action_name, after_name, after_index, link)
	SELECT e.seq, p.rule, p.idx, p.sink, p.action, p.status, p.attempts, p.err, p.result, p.created, p.window_start, p.next_at, p.updated,
		p.action_name, p.after_name, p.after_index, p.link
	FROM events e, unnest($3::text[], $4::int[], $5::text[], $6::bytea[], $7::text[], $8::int[], $9::text[], $10::text[],
		$11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::text[], $16::text[], $17::int[], $18::text[])
		WITH ORDINALITY AS p (rule, idx, sink, action, status, attempts, err, result, created, window_start, next_at, updated,
			action_name, after_name, after_index, link, ord)
	WHERE e.source = $1 AND e.id = $2
	ORDER BY p.ord
	ON CONFLICT (event_seq, rule, action_index) DO NOTHING
	RETURNING sink, status, next_at
), n AS (
	SELECT pg_notify('` + channel + `', s)
	FROM (SELECT DISTINCT sink AS s FROM d WHERE status = 'pending' AND next_at <> ` + waitingAt + `) AS x WHERE ` + notifiable + `
)
SELECT count(*), (SELECT count(*) FROM n) FROM d`
)

// Import copies events with their deliveries into the store, idempotently:
// an event whose (source, id) is stored already is not copied again, and of
// its deliveries only those whose (rule, action index) it lacks are added.
// So an import run twice, or stopped and run again, copies nothing twice.
// One call is one round trip and one transaction: pass events in batches
// (a few hundred), in the order they were received, so that their new
// sequence numbers keep that order. Event sequence numbers and delivery ids
// are new; leases are empty.
func (s *Store) Import(ctx context.Context, evs []ImportedEvent) (counts ImportCounts, err error) {
	if len(evs) == 0 {
		return counts, nil
	}
	ctx, end, err := s.write(ctx)
	if err != nil {
		return counts, err
	}
	defer func() { err = end(err) }()
	b := &pgx.Batch{}
	for _, ie := range evs {
		ev, raw := ie.Event, ie.Raw
		if raw == nil {
			raw = []byte{}
		}
		b.Queue(importEventSQL, ev.Source, ev.ID, ev.Vendor, ev.Type, ev.Time.UnixNano(), ev.Received.UnixNano(),
			ev.Severity, ev.Title, ev.Subject, raw)
		n := len(ie.Deliveries)
		rules, sinks, statuses, errs, results := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		idxs, attempts := make([]int32, n), make([]int32, n)
		actions := make([][]byte, n)
		created, windows, nexts, updated := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		names, afters, links := make([]string, n), make([]string, n), make([]string, n)
		afterIdxs := make([]int32, n)
		for i, d := range ie.Deliveries {
			rules[i], idxs[i], sinks[i], actions[i], statuses[i] = d.Rule, int32(d.Index), d.Sink, d.Action, d.Status
			attempts[i], errs[i], results[i] = int32(d.Attempts), d.LastError, d.Result
			created[i], windows[i], nexts[i], updated[i] = d.Created.UnixNano(), d.WindowStart.UnixNano(), d.NextAt.UnixNano(), d.Updated.UnixNano()
			names[i], afters[i], afterIdxs[i], links[i] = d.ActionID, d.After, -1, d.Link
			if d.After != "" {
				afterIdxs[i] = int32(d.AfterIndex)
			}
		}
		b.Queue(importDeliveriesSQL, ev.Source, ev.ID, rules, idxs, sinks, actions, statuses, attempts, errs, results,
			created, windows, nexts, updated, names, afters, afterIdxs, links)
	}
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	var woken []string
	for _, ie := range evs {
		tag, err := br.Exec()
		if err != nil {
			return ImportCounts{}, s.fail(ctx, "import", err)
		}
		counts.Events += int(tag.RowsAffected())
		var added, notified int
		if err := br.QueryRow().Scan(&added, &notified); err != nil {
			return ImportCounts{}, s.fail(ctx, "import", err)
		}
		counts.Deliveries += added
		if added > 0 {
			for _, d := range ie.Deliveries {
				if d.Status == bridge.StatusPending && !bridge.WaitingAt(d.NextAt) && !slices.Contains(woken, d.Sink) {
					woken = append(woken, d.Sink)
				}
			}
		}
	}
	if err := br.Close(); err != nil { // the commit
		return ImportCounts{}, s.fail(ctx, "import", err)
	}
	s.committed(woken)
	return counts, nil
}

// ImportState copies sinks' state rows, in one transaction, keeping every
// key the store has already: a key a replica has written since (a Jira
// issue it opened) is newer than the copy. It returns how many rows it
// added.
func (s *Store) ImportState(ctx context.Context, rows []StateRow) (_ int, err error) {
	if len(rows) == 0 {
		return 0, nil
	}
	ctx, end, err := s.write(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { err = end(err) }()
	n := len(rows)
	sinks, keys, values := make([]string, n), make([]string, n), make([]string, n)
	updated := make([]int64, n)
	for i, r := range rows {
		sinks[i], keys[i], values[i], updated[i] = r.Sink, r.Key, r.Value, r.Updated.UnixNano()
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO state (sink, key, value, updated)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
		ON CONFLICT (sink, key) DO NOTHING`, sinks, keys, values, updated)
	if err != nil {
		return 0, s.fail(ctx, "import state", err)
	}
	return int(tag.RowsAffected()), nil
}
