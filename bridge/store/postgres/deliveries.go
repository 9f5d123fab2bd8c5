package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"bridge/bridge"
)

// deliveryCols are a delivery's columns (d) with its event's id and source
// (e), read by deliveryScan.
const deliveryCols = `d.id, e.id, e.source, d.rule, d.sink, d.status, d.attempts, d.last_error, d.result, d.created, d.next_at, d.updated, d.action, d.window_start,
	d.action_name, d.after_name, d.after_index, d.link`

// deliveryScan holds the scan targets of deliveryCols.
type deliveryScan struct {
	d          bridge.DeliveryRecord
	c, n, u, w int64
	action     []byte
}

func (x *deliveryScan) dest() []any {
	d := &x.d
	return []any{&d.ID, &d.EventID, &d.Source, &d.Rule, &d.Sink, &d.Status, &d.Attempts, &d.LastError, &d.Result, &x.c, &x.n, &x.u, &x.action, &x.w,
		&d.ActionID, &d.After, &d.AfterIndex, &d.Link}
}

func (x *deliveryScan) record() *bridge.DeliveryRecord {
	d := &x.d
	d.Created, d.NextAt, d.Updated, d.WindowStart = time.Unix(0, x.c).UTC(), time.Unix(0, x.n).UTC(), time.Unix(0, x.u).UTC(), time.Unix(0, x.w).UTC()
	if len(x.action) > 0 {
		d.Action = x.action
	}
	return d
}

// Deliveries lists deliveries, newest first.
func (s *Store) Deliveries(ctx context.Context, f bridge.DeliveryFilter) ([]*bridge.DeliveryRecord, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	q := `SELECT ` + deliveryCols + ` FROM deliveries d JOIN events e ON e.seq = d.event_seq`
	var c conds
	if f.Status != "" {
		c.add("d.status = $?", f.Status)
	}
	if f.EventID != "" {
		c.add("e.id = $?", f.EventID)
	}
	if f.Source != "" {
		c.add("e.source = $?", f.Source)
	}
	if f.Sink != "" {
		c.add("d.sink = $?", f.Sink)
	}
	if f.Rule != "" {
		c.add("d.rule = $?", f.Rule)
	}
	if f.Before > 0 {
		c.add("d.id < $?", f.Before)
	}
	q += c.where()
	q += " ORDER BY d.id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.pool.Query(ctx, q, c.args...)
	if err != nil {
		return nil, s.fail(ctx, "list deliveries", err)
	}
	defer rows.Close()
	var out []*bridge.DeliveryRecord
	for rows.Next() {
		var x deliveryScan
		if err := rows.Scan(x.dest()...); err != nil {
			return nil, s.fail(ctx, "list deliveries", err)
		}
		out = append(out, x.record())
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "list deliveries", err)
	}
	return out, nil
}

// PendingCounts returns the number of pending deliveries per sink.
func (s *Store) PendingCounts(ctx context.Context) (map[string]int, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT sink, count(*) FROM deliveries WHERE status = 'pending' GROUP BY sink`)
	if err != nil {
		return nil, s.fail(ctx, "count pending", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var sink string
		var n int
		if err := rows.Scan(&sink, &n); err != nil {
			return nil, s.fail(ctx, "count pending", err)
		}
		out[sink] = n
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "count pending", err)
	}
	return out, nil
}

// The scheduler's peek, in one round trip: the due deliveries nobody holds,
// and the earliest time one that is not due yet (or leased) may be.
const (
	dueSQL = `SELECT id, next_at FROM deliveries
		WHERE sink = $1 AND status = 'pending' AND next_at <= $2 AND (lease_until IS NULL OR lease_until <= $2)
			AND id <> ALL($4::bigint[])
		ORDER BY next_at, id LIMIT $3`
	nextSQL = `SELECT LEAST(
		(SELECT min(next_at) FROM deliveries WHERE sink = $1 AND status = 'pending' AND next_at > $2),
		(SELECT min(lease_until) FROM deliveries WHERE sink = $1 AND status = 'pending' AND lease_until > $2))`
)

// Due returns the ids of up to limit pending deliveries of sink that are due
// at now and not leased by a live claim of any replica, oldest due first,
// skipping the ids in skip (in flight here), and when the oldest of them
// became due. It also returns when the next delivery not yet due is due, or
// the earliest live lease ends (zero when neither). It claims nothing: Claim
// does.
func (s *Store) Due(ctx context.Context, sink string, now time.Time, limit int, skip map[int64]bool) (ids []int64, oldest, nextAt time.Time, err error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, time.Time{}, time.Time{}, err
	}
	defer cancel()
	skipped := make([]int64, 0, len(skip))
	for id := range skip {
		skipped = append(skipped, id)
	}
	b := &pgx.Batch{}
	b.Queue(dueSQL, sink, now.UnixNano(), limit, skipped)
	b.Queue(nextSQL, sink, now.UnixNano())
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, time.Time{}, time.Time{}, s.fail(ctx, "due deliveries", err)
	}
	for rows.Next() {
		var id, at int64
		if err := rows.Scan(&id, &at); err != nil {
			rows.Close()
			return nil, time.Time{}, time.Time{}, s.fail(ctx, "due deliveries", err)
		}
		if len(ids) == 0 {
			oldest = time.Unix(0, at)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, time.Time{}, s.fail(ctx, "due deliveries", err)
	}
	var next *int64
	if err := br.QueryRow().Scan(&next); err != nil {
		return nil, time.Time{}, time.Time{}, s.fail(ctx, "due deliveries", err)
	}
	if next != nil {
		nextAt = time.Unix(0, *next)
	}
	return ids, oldest, nextAt, nil
}

// claimSQL leases the claimable ones of some deliveries to this replica
// and reads them with their events, in due order. Rows another claim is
// locking right now are skipped, not waited for: that claim takes them.
const claimSQL = `
WITH c AS (
	SELECT id, lease_owner AS prev FROM deliveries
	WHERE id = ANY($1::bigint[]) AND status = 'pending' AND next_at <= $2
		AND (lease_until IS NULL OR lease_until <= $2)
	FOR UPDATE SKIP LOCKED
), u AS (
	UPDATE deliveries d SET lease_owner = $3, lease_until = $4
	FROM c WHERE d.id = c.id
	RETURNING d.*, c.prev
)
SELECT ` + deliveryCols + `, ` + eventCols + `, d.prev
FROM u AS d JOIN events e ON e.seq = d.event_seq
ORDER BY d.next_at, d.id`

// Claim leases to this replica, until now plus the lease, those of ids that
// are still pending, due at now and held by no live lease, and returns them
// with their events, in due order, as the SQLite store's Load does; the
// others are left out. A lease of another replica that has run out is taken
// over (logged, and counted through Config.OnTakeover). A live lease of
// this replica is not claimed again either, so two claims in one process
// never both get a delivery.
func (s *Store) Claim(ctx context.Context, ids []int64, now time.Time) (_ []*bridge.Delivery, _ []*bridge.DeliveryRecord, err error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	ctx, end, err := s.write(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer func() { err = end(err) }()
	rows, err := s.pool.Query(ctx, claimSQL, ids, now.UnixNano(), s.cfg.Replica, now.Add(s.cfg.Lease).UnixNano())
	if err != nil {
		return nil, nil, s.fail(ctx, "claim deliveries", err)
	}
	defer rows.Close()
	ds := make([]*bridge.Delivery, 0, len(ids))
	recs := make([]*bridge.DeliveryRecord, 0, len(ids))
	var taken []int64
	var from []string
	for rows.Next() {
		var xd deliveryScan
		var xe eventScan
		var prev *string
		if err := rows.Scan(append(append(xd.dest(), xe.dest()...), &prev)...); err != nil {
			return nil, nil, s.fail(ctx, "claim deliveries", err)
		}
		d := xd.record()
		recs = append(recs, d)
		ds = append(ds, &bridge.Delivery{ID: d.ID, Event: xe.event(), Rule: d.Rule, Sink: d.Sink, Action: d.Action, Attempt: d.Attempts + 1})
		if prev != nil && *prev != s.cfg.Replica {
			taken = append(taken, d.ID)
			if !slices.Contains(from, *prev) {
				from = append(from, *prev)
			}
			if s.cfg.OnTakeover != nil {
				s.cfg.OnTakeover(d.Sink)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, s.fail(ctx, "claim deliveries", err)
	}
	if len(taken) > 0 {
		s.log.Warn("postgres store: took over deliveries whose lease had run out", "count", len(taken), "deliveries", taken, "from", from)
	}
	return ds, recs, nil
}

// Renew extends this replica's leases on ids until now plus the lease, and
// returns the ids whose lease it no longer holds: taken over by another
// replica, or recorded. A lease that ran out but was not taken over is
// renewed.
func (s *Store) Renew(ctx context.Context, ids []int64, now time.Time) (lost []int64, err error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ctx, end, err := s.write(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { err = end(err) }()
	rows, err := s.pool.Query(ctx, `UPDATE deliveries SET lease_until = $3
		WHERE id = ANY($1::bigint[]) AND lease_owner = $2 AND status = 'pending' RETURNING id`,
		ids, s.cfg.Replica, now.Add(s.cfg.Lease).UnixNano())
	if err != nil {
		return nil, s.fail(ctx, "renew leases", err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, s.fail(ctx, "renew leases", err)
	}
	return missing(ids, held), nil
}

// missing returns the ids of want that got does not have.
func missing(want, got []int64) []int64 {
	if len(got) == len(want) {
		return nil
	}
	have := make(map[int64]bool, len(got))
	for _, id := range got {
		have[id] = true
	}
	var out []int64
	for _, id := range want {
		if !have[id] {
			out = append(out, id)
		}
	}
	return out
}
