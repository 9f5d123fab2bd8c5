package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"bridge/bridge"
)

// notifiable says whether sink name s fits in a NOTIFY payload (at most
// 8000 bytes); a sink with a longer name is found by polling.
const notifiable = `octet_length(s) <= 7000`

// eventCols are an event's columns, read by eventScan.
const eventCols = `e.seq, e.source, e.id, e.vendor, e.type, e.time, e.received, e.severity, e.title, e.subject, e.raw`

// eventScan holds the scan targets of eventCols.
type eventScan struct {
	seq   int64
	ev    bridge.Event
	t, rc int64
	raw   []byte
}

func (x *eventScan) dest() []any {
	return []any{&x.seq, &x.ev.Source, &x.ev.ID, &x.ev.Vendor, &x.ev.Type, &x.t, &x.rc, &x.ev.Severity, &x.ev.Title, &x.ev.Subject, &x.raw}
}

// event is the event read, its data rebuilt from the raw body.
func (x *eventScan) event() *bridge.Event {
	x.ev.Time, x.ev.Received = time.Unix(0, x.t).UTC(), time.Unix(0, x.rc).UTC()
	x.ev.Data = bridge.StoredData(x.raw)
	return &x.ev
}

// Events lists stored events, newest first.
func (s *Store) Events(ctx context.Context, f bridge.EventFilter) ([]bridge.StoredEvent, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	q := `SELECT ` + eventCols + ` FROM events e`
	var c conds
	if f.Source != "" {
		c.add("e.source = $?", f.Source)
	}
	if f.Type != "" {
		c.add("e.type = $?", f.Type)
	}
	if f.Severity != "" {
		c.add("e.severity = $?", f.Severity)
	}
	if f.Text != "" {
		c.add(`(e.title ILIKE $? OR e.subject ILIKE $?)`, "%"+bridge.EscapeLike(f.Text)+"%")
	}
	if f.Before > 0 {
		c.add("e.seq < $?", f.Before)
	}
	q += c.where()
	q += ` ORDER BY e.seq DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.pool.Query(ctx, q, c.args...)
	if err != nil {
		return nil, s.fail(ctx, "list events", err)
	}
	defer rows.Close()
	var out []bridge.StoredEvent
	for rows.Next() {
		var x eventScan
		if err := rows.Scan(x.dest()...); err != nil {
			return nil, s.fail(ctx, "list events", err)
		}
		out = append(out, bridge.StoredEvent{Seq: x.seq, Event: x.event()})
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "list events", err)
	}
	return out, nil
}

// pruneBatch is how many events one Prune transaction looks at, so that no
// transaction holds its locks for long.
const pruneBatch = 1000

// The statements of one Prune batch, sent together (one round trip, one
// implicit transaction): the batch's size and last event, for the next batch
// to start after it; the batch's finished deliveries; its events left
// without deliveries. The deliveries go first, by a statement of their own,
// so that a delivery replayed at that moment is either seen pending by it
// (its event stays) or waits for the batch's commit and finds itself
// deleted: an event's delete never cascades to a delivery that just became
// pending.
const (
	pruneBatchSQL = `SELECT seq, received FROM events
		WHERE received < $1 AND (received, seq) > ($2, $3) ORDER BY received, seq LIMIT $4`
	pruneLastSQL = `SELECT received, seq, count(*) OVER () FROM (` + pruneBatchSQL + `) AS b
		ORDER BY received DESC, seq DESC LIMIT 1`
	pruneDelsSQL = `DELETE FROM deliveries WHERE status <> 'pending' AND event_seq IN (SELECT seq FROM (` + pruneBatchSQL + `) AS b)`
	pruneEvsSQL  = `DELETE FROM events e WHERE e.seq IN (SELECT seq FROM (` + pruneBatchSQL + `) AS b)
		AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq)`
)

// Prune deletes events received before cutoff whose deliveries are all
// finished, with those deliveries, as the SQLite store does: an old event
// with a pending delivery stays, with that delivery only. It works in
// batches of pruneBatch events, each its own transaction, and returns how
// many events it deleted (also when it fails part way).
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	if s.closed.Load() {
		return 0, bridge.ErrStoreClosed
	}
	var total int64
	after := [2]int64{math.MinInt64, 0}
	for {
		n, last, more, err := s.pruneOnce(ctx, cutoff.UnixNano(), after)
		total += n
		if err != nil {
			return total, err
		}
		if !more {
			return total, nil
		}
		after = last
	}
}

// pruneOnce runs one batch of the events after (received, seq) = after. It
// returns the events deleted, the batch's last (received, seq), and whether
// the batch was full (so there may be more).
func (s *Store) pruneOnce(ctx context.Context, cutoff int64, after [2]int64) (deleted int64, last [2]int64, more bool, err error) {
	ctx, end, err := s.write(ctx)
	if err != nil {
		return 0, last, false, err
	}
	defer func() {
		if err != nil {
			err = s.fail(ctx, "prune", err)
		}
		err = end(err)
	}()
	b := &pgx.Batch{}
	args := []any{cutoff, after[0], after[1], pruneBatch}
	b.Queue(pruneLastSQL, args...)
	b.Queue(pruneDelsSQL, args...)
	b.Queue(pruneEvsSQL, args...)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	var size int
	switch err := br.QueryRow().Scan(&last[0], &last[1], &size); {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, last, false, br.Close()
	case err != nil:
		return 0, last, false, err
	}
	if _, err := br.Exec(); err != nil {
		return 0, last, false, err
	}
	tag, err := br.Exec()
	if err != nil {
		return 0, last, false, err
	}
	if err := br.Close(); err != nil { // the commit
		return 0, last, false, err
	}
	return tag.RowsAffected(), last, size == pruneBatch, nil
}
