package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"bridge/bridge"
)

// waitingAt is bridge.Waiting as stored (its UnixNano, math.MaxInt64), as
// an SQL literal: the next_at of a dependent that waits for the delivery of
// the action it runs after. No scheduler finds it due, and Claim never
// takes it. The Chain tests of storetest read it back as bridge.Waiting.
const waitingAt = `9223372036854775807`

// A delivery's dependents are the deliveries of its event and rule whose
// after_index is its action_index: the UNIQUE (event_seq, rule,
// action_index) index finds them by its first two columns.

// recordSQL applies outcomes, all in one statement, to the deliveries this
// replica holds, or that nobody holds and are still pending; it releases
// their leases. The result and the link are kept when the outcome has
// none. It returns the deliveries it applied, with their action's id.
const recordSQL = `
UPDATE deliveries d SET status = o.status, attempts = d.attempts + 1,
	result = CASE WHEN o.result <> '' THEN o.result ELSE d.result END,
	link = CASE WHEN o.link <> '' THEN o.link ELSE d.link END,
	last_error = o.error, next_at = o.next_at, updated = o.at,
	lease_owner = NULL, lease_until = NULL
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[])
	AS o (id, status, result, error, next_at, at, link)
WHERE d.id = o.id AND (d.lease_owner = $8 OR (d.lease_owner IS NULL AND d.status = 'pending'))
RETURNING d.id, d.action_name`

// releaseSQL makes the waiting dependents of delivered actions ($1, each
// delivered at $2) due then, with a fresh retry window, and notifies their
// sinks in the same transaction. It runs as a statement of its own, after
// recordSQL, so that its snapshot has every dependent a concurrent Replay
// put back to waiting while recordSQL waited for the action's row (which
// Replay locks, see replayParentsSQL).
const releaseSQL = `
WITH r AS (
	UPDATE deliveries c SET next_at = p.at, window_start = p.at, updated = p.at
	FROM unnest($1::bigint[], $2::bigint[]) AS p (id, at) JOIN deliveries pd ON pd.id = p.id
	WHERE c.event_seq = pd.event_seq AND c.rule = pd.rule AND c.after_index = pd.action_index
		AND c.status = 'pending' AND c.next_at = ` + waitingAt + `
	RETURNING c.sink
), n AS (
	SELECT pg_notify('` + channel + `', s) FROM (SELECT DISTINCT sink AS s FROM r) AS x WHERE ` + notifiable + `
)
SELECT DISTINCT sink, (SELECT count(*) FROM n) FROM r`

// failDependentsSQL fails the pending dependents of failed actions ($1),
// each with its message ($2) at its time ($3), and returns them, with
// their action's id and the message, for theirs in turn.
const failDependentsSQL = `
UPDATE deliveries c SET status = 'failed', last_error = p.msg, next_at = p.at, updated = p.at,
	lease_owner = NULL, lease_until = NULL
FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS p (id, msg, at) JOIN deliveries pd ON pd.id = p.id
WHERE c.event_seq = pd.event_seq AND c.rule = pd.rule AND c.after_index = pd.action_index AND c.status = 'pending'
RETURNING c.id, c.action_name, c.last_error, p.at`

// Record stores the outcomes of attempts (status, one more attempt, the
// result and link unless the outcome has none, the last error, the next
// attempt's time) and releases their leases. An outcome is not applied
// when another replica holds the delivery's lease now (it took the
// delivery over), or when nobody does and the delivery is no longer
// pending (another replica already recorded it): that other replica's
// attempt stands. Those outcomes are logged as a warning, not returned as
// an error, since the others were stored and nothing is to be retried.
//
// The applied outcomes of chained actions (Outcome.Chained) release their
// dependents when delivered, waking every replica's schedulers of their
// sinks, and fail them (and theirs) when failed, in the same transaction.
// Outcomes of other actions take one statement, as before chains.
func (s *Store) Record(ctx context.Context, outs []bridge.Outcome) (err error) {
	if len(outs) == 0 {
		return nil
	}
	ctx, end, err := s.write(ctx)
	if err != nil {
		return err
	}
	defer func() { err = end(err) }()
	n := len(outs)
	ids, nexts, ats := make([]int64, n), make([]int64, n), make([]int64, n)
	statuses, results, errs, links := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, o := range outs {
		ids[i], statuses[i], results[i], errs[i], nexts[i], ats[i] = o.ID, o.Status, pgText(o.Result), pgText(o.Error), o.NextAt.UnixNano(), o.At.UnixNano()
		links[i] = pgText(o.Link)
	}
	args := []any{ids, statuses, results, errs, nexts, ats, links, s.cfg.Replica}
	chained := slices.ContainsFunc(outs, func(o bridge.Outcome) bool {
		return o.Chained && (o.Status == bridge.StatusDelivered || o.Status == bridge.StatusFailed)
	})
	var applied map[int64]string // id: action id
	var woken []string
	if !chained {
		applied, err = recordOutcomes(ctx, s.pool, args)
	} else {
		err = againOnDeadlock(func() error {
			return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				var err error
				if applied, err = recordOutcomes(ctx, tx, args); err != nil {
					return err
				}
				woken, err = settleDependents(ctx, tx, outs, applied)
				return err
			})
		})
	}
	if err != nil {
		return s.fail(ctx, "record outcomes", err)
	}
	var stale []int64
	for _, id := range ids {
		if _, ok := applied[id]; !ok {
			stale = append(stale, id)
		}
	}
	if len(stale) > 0 {
		s.log.Warn("postgres store: outcomes not recorded: another replica took these deliveries over (or has recorded them)", "count", len(stale), "deliveries", stale)
	}
	s.committed(woken)
	return nil
}

// querier runs a statement on the pool or in a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// recordOutcomes runs recordSQL and returns the deliveries it applied the
// outcomes to, with their action's id.
func recordOutcomes(ctx context.Context, q querier, args []any) (map[int64]string, error) {
	rows, err := q.Query(ctx, recordSQL, args...)
	if err != nil {
		return nil, err
	}
	applied := map[int64]string{}
	var id int64
	var name string
	_, err = pgx.ForEachRow(rows, []any{&id, &name}, func() error {
		applied[id] = name
		return nil
	})
	return applied, err
}

// settleDependents releases the dependents of the applied chained outcomes
// that were delivered, fails those of the ones that failed (and theirs),
// and returns the sinks of those released.
func settleDependents(ctx context.Context, tx pgx.Tx, outs []bridge.Outcome, applied map[int64]string) ([]string, error) {
	var done, doneAt []int64
	var failed []failedParent
	for _, o := range outs {
		name, ok := applied[o.ID]
		if !ok || !o.Chained {
			continue
		}
		switch o.Status {
		case bridge.StatusDelivered:
			done, doneAt = append(done, o.ID), append(doneAt, o.At.UnixNano())
		case bridge.StatusFailed:
			failed = append(failed, failedParent{id: o.ID, name: name, msg: pgText(o.Error), at: o.At.UnixNano()})
		}
	}
	var woken []string
	if len(done) > 0 {
		rows, err := tx.Query(ctx, releaseSQL, done, doneAt)
		if err != nil {
			return nil, fmt.Errorf("release the deliveries after %v: %w", done, err)
		}
		var sink string
		var notified int64
		if _, err := pgx.ForEachRow(rows, []any{&sink, &notified}, func() error {
			woken = append(woken, sink)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("release the deliveries after %v: %w", done, err)
		}
	}
	if err := failDependents(ctx, tx, failed); err != nil {
		return nil, err
	}
	return woken, nil
}

// failedParent is a failed delivery whose pending dependents fail with it.
type failedParent struct {
	id   int64
	name string // its action's id
	msg  string // its last error
	at   int64
}

// failDependents fails the pending dependents of parents, each saying
// which action it runs after and why that failed (bridge.ChainFailed),
// then theirs, one level of the chains per statement.
func failDependents(ctx context.Context, tx pgx.Tx, parents []failedParent) error {
	for len(parents) > 0 {
		n := len(parents)
		ids, msgs, ats := make([]int64, n), make([]string, n), make([]int64, n)
		for i, p := range parents {
			ids[i], msgs[i], ats[i] = p.id, pgText(bridge.ChainFailed(p.name, p.id, p.msg)), p.at
		}
		rows, err := tx.Query(ctx, failDependentsSQL, ids, msgs, ats)
		if err != nil {
			return fmt.Errorf("fail the deliveries after %v: %w", ids, err)
		}
		var next []failedParent
		var f failedParent
		_, err = pgx.ForEachRow(rows, []any{&f.id, &f.name, &f.msg, &f.at}, func() error {
			if f.name != "" { // only an action with an id has dependents
				next = append(next, f)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("fail the deliveries after %v: %w", ids, err)
		}
		parents = next
	}
	return nil
}

// The statements of Replay, in one transaction. replayPickedSQL locks the
// failed deliveries to replay ($1; NULL: all), sorted so that an action
// comes before its dependents (bridge.PlanReplay). replayParentsSQL reads
// the status of the actions the picked dependents run after (those not
// picked), locking them against a Record in flight: were a dependent put
// back to waiting while its action is recorded delivered, the release
// could miss it, and it would wait forever. With the lock, either Replay
// reads the outcome, or Record's release (a statement after the outcome's)
// sees the dependent waiting.
const (
	replayPickedSQL = `SELECT id, sink, event_seq, rule, action_index, after_index FROM deliveries
		WHERE status = 'failed' AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[]))
		ORDER BY event_seq, rule, action_index
		FOR UPDATE`
	replayParentsSQL = `SELECT d.event_seq, d.rule, d.action_index, d.status
		FROM deliveries d JOIN unnest($1::bigint[], $2::text[], $3::int[]) AS k (ev, rule, idx)
			ON d.event_seq = k.ev AND d.rule = k.rule AND d.action_index = k.idx
		FOR SHARE OF d`
	// replayApplySQL puts the planned deliveries back: due now ($3), or
	// waiting ($2), with a fresh retry window, and notifies the sinks of
	// those due.
	replayApplySQL = `
WITH u AS (
	UPDATE deliveries d SET status = 'pending', next_at = CASE WHEN p.wait THEN ` + waitingAt + ` ELSE $3::bigint END,
		window_start = $3::bigint, updated = $3::bigint, lease_owner = NULL, lease_until = NULL
	FROM unnest($1::bigint[], $2::bool[]) AS p (id, wait)
	WHERE d.id = p.id AND d.status = 'failed'
	RETURNING d.sink, p.wait
), n AS (
	SELECT pg_notify('` + channel + `', s) FROM (SELECT DISTINCT sink AS s FROM u WHERE NOT wait) AS x WHERE ` + notifiable + `
)
SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM n)`
	// rewaitSQL puts the failed dependents of deliveries ($1) back to
	// waiting, and returns them, for theirs in turn.
	rewaitSQL = `
UPDATE deliveries c SET status = 'pending', next_at = ` + waitingAt + `, window_start = $2, updated = $2,
	lease_owner = NULL, lease_until = NULL
FROM deliveries p
WHERE p.id = ANY($1::bigint[]) AND c.event_seq = p.event_seq AND c.rule = p.rule AND c.after_index = p.action_index
	AND c.status = 'failed'
RETURNING c.id`
)

// Replay puts failed deliveries back in the queue, due now, with a fresh
// retry window, and wakes every replica's schedulers of their sinks. With
// no ids it replays every failed delivery. A dependent goes back to
// waiting when the action it runs after is pending (or replayed with it),
// and stays failed when that action failed and is not replayed; replaying
// an action puts its failed dependents (and theirs) back to waiting. It
// returns the ids it replayed, sorted.
func (s *Store) Replay(ctx context.Context, ids []int64, now time.Time) (_ []int64, err error) {
	ctx, end, err := s.write(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { err = end(err) }()
	var want []int64 // nil: all
	if len(ids) > 0 {
		want = ids
	}
	var out []int64
	var sinks []string
	replay := func(tx pgx.Tx) error {
		out, sinks = nil, nil
		rows, err := tx.Query(ctx, replayPickedSQL, want)
		if err != nil {
			return err
		}
		picked, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (bridge.ReplayCandidate, error) {
			var c bridge.ReplayCandidate
			err := r.Scan(&c.ID, &c.Sink, &c.Event, &c.Rule, &c.Index, &c.AfterIndex)
			return c, err
		})
		if err != nil {
			return err
		}
		parents, err := replayParents(ctx, tx, picked)
		if err != nil {
			return err
		}
		plan, err := bridge.PlanReplay(picked, func(c bridge.ReplayCandidate) (string, error) {
			st, ok := parents[actionKey{c.Event, c.Rule, c.AfterIndex}]
			if !ok {
				return "", fmt.Errorf("delivery %d runs after action %d of rule %q, which its event has no delivery of", c.ID, c.AfterIndex, c.Rule)
			}
			return st, nil
		})
		if err != nil || len(plan) == 0 {
			return err
		}
		t := now.UnixNano()
		planned, wait := make([]int64, len(plan)), make([]bool, len(plan))
		for i, r := range plan {
			planned[i], wait[i] = r.ID, r.Wait
			if !r.Wait && !slices.Contains(sinks, r.Sink) {
				sinks = append(sinks, r.Sink)
			}
		}
		var updated, notified int64
		if err := tx.QueryRow(ctx, replayApplySQL, planned, wait, t).Scan(&updated, &notified); err != nil {
			return err
		}
		out = append(out, planned...)
		// The failed dependents of a replayed action wait for it again.
		for from := planned; len(from) > 0; {
			rows, err := tx.Query(ctx, rewaitSQL, from, t)
			if err != nil {
				return err
			}
			if from, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
				return err
			}
			out = append(out, from...)
		}
		return nil
	}
	err = againOnDeadlock(func() error { return pgx.BeginFunc(ctx, s.pool, replay) })
	if err != nil {
		return nil, s.fail(ctx, "replay", err)
	}
	s.committed(sinks)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// againOnDeadlock runs fn, a whole transaction, again (up to three times
// in all) while PostgreSQL cancels it as one side of a deadlock: a Replay
// that locks the actions its dependents run after can meet a Record of
// one of them, taking the rows in the other order.
func againOnDeadlock(fn func() error) error {
	var err error
	for range 3 {
		var pe *pgconn.PgError
		if err = fn(); !errors.As(err, &pe) || pe.Code != "40P01" {
			return err
		}
	}
	return err
}

// actionKey is a delivery's action: its event, rule and index.
type actionKey struct {
	event int64
	rule  string
	index int
}

// replayParents reads, with replayParentsSQL, the status of the actions
// that the picked dependents run after and that are not picked
// themselves (PlanReplay decides those).
func replayParents(ctx context.Context, tx pgx.Tx, picked []bridge.ReplayCandidate) (map[actionKey]string, error) {
	have := make(map[actionKey]bool, len(picked))
	for _, c := range picked {
		have[actionKey{c.Event, c.Rule, c.Index}] = true
	}
	var evs []int64
	var rules []string
	var idxs []int32
	for _, c := range picked {
		k := actionKey{c.Event, c.Rule, c.AfterIndex}
		if c.AfterIndex < 0 || have[k] {
			continue
		}
		have[k] = true // asked once
		evs, rules, idxs = append(evs, c.Event), append(rules, c.Rule), append(idxs, int32(c.AfterIndex))
	}
	out := map[actionKey]string{}
	if len(evs) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, replayParentsSQL, evs, rules, idxs)
	if err != nil {
		return nil, err
	}
	var k actionKey
	var st string
	_, err = pgx.ForEachRow(rows, []any{&k.event, &k.rule, &k.index, &st}, func() error {
		out[k] = st
		return nil
	})
	return out, err
}
