package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"bridge/bridge"
)

// waiting is bridge.Waiting as stored: the next_at of a dependent that
// waits for the delivery of the action it runs after.
var waiting = bridge.Waiting.UnixNano()

// chainColumns are the deliveries columns added after the first release,
// with their definitions, for addColumns and Export.
var chainColumns = [][2]string{
	{"action_name", "TEXT NOT NULL DEFAULT ''"},
	{"after_name", "TEXT NOT NULL DEFAULT ''"},
	{"after_index", "INTEGER NOT NULL DEFAULT -1"},
	{"link", "TEXT NOT NULL DEFAULT ''"},
}

// querier is a *sql.DB or a *sql.Conn.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// absentChainColumns returns the chainColumns that the deliveries table q
// reads lacks: all of them in a database made by an earlier release.
func absentChainColumns(ctx context.Context, q querier) ([][2]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM pragma_table_info('deliveries')`)
	have, err := collect(rows, err, scanOne[string])
	if err != nil {
		return nil, err
	}
	var absent [][2]string
	for _, c := range chainColumns {
		if !slices.Contains(have, c[0]) {
			absent = append(absent, c)
		}
	}
	return absent, nil
}

// addColumns adds to a database made by an earlier release the deliveries
// columns it lacks (CREATE TABLE IF NOT EXISTS leaves an existing table as
// it is).
func addColumns(db *sql.DB) error {
	absent, err := absentChainColumns(context.Background(), db)
	if err != nil {
		return err
	}
	for _, c := range absent {
		if _, err := db.Exec(`ALTER TABLE deliveries ADD COLUMN ` + c[0] + ` ` + c[1]); err != nil {
			return fmt.Errorf("add column deliveries.%s: %w", c[0], err)
		}
	}
	return nil
}

// dependentsOf selects the deliveries that run after delivery ?: those of
// its event and rule whose after_index is its action_index.
const dependentsOf = `(event_seq, rule, after_index) = (SELECT event_seq, rule, action_index FROM deliveries WHERE id = ?)`

// Record stores the outcomes of attempts, in one commit, and releases or
// fails the dependents of chained ones (Outcome.Chained). It does not wait
// for the disk sync: an outcome lost to a power cut means one more attempt
// (and its dependents wait for it meanwhile).
func (s *Store) Record(ctx context.Context, outs []bridge.Outcome) error {
	s.fresh.forget(outs) // claimed already, as a rule: then they are not kept
	op := &writeOp{done: make(chan error, 1), lazy: true}
	op.fn = func(tx *sql.Tx, w *writerStmts) error {
		op.sinks = nil // the op runs again alone if its batch failed
		for i := 0; i < len(outs); {
			o := outs[i]
			n := sameOutcomes(outs[i:])
			var err error
			if n == 1 {
				_, err = w.record.Exec(o.Status, o.Result, o.Error, o.NextAt.UnixNano(), o.At.UnixNano(), o.Link, o.ID)
			} else {
				_, err = w.recordMany.Exec(o.Status, o.Result, o.Error, o.NextAt.UnixNano(), o.At.UnixNano(), o.Link, idList(outs[i:i+n]))
			}
			i += n
			if err != nil {
				return fmt.Errorf("store: record delivery %d: %w", o.ID, err)
			}
			if !o.Chained {
				continue
			}
			switch o.Status {
			case bridge.StatusDelivered:
				sinks, err := releaseDependents(tx, o.ID, o.At.UnixNano())
				if err != nil {
					return fmt.Errorf("store: release the deliveries after %d: %w", o.ID, err)
				}
				for _, sk := range sinks {
					if !slices.Contains(op.sinks, sk) {
						op.sinks = append(op.sinks, sk)
					}
				}
			case bridge.StatusFailed:
				var name string // of its action, for the dependents' message
				err := tx.QueryRow(`SELECT action_name FROM deliveries WHERE id = ?`, o.ID).Scan(&name)
				if err == nil {
					err = failDependents(tx, o.ID, name, o.Error, o.At.UnixNano())
				}
				if err != nil {
					return fmt.Errorf("store: fail the deliveries after %d: %w", o.ID, err)
				}
			}
		}
		return nil
	}
	return s.enqueue(ctx, op)
}

// sameOutcomes is how many of outs, from the first, Record can store with
// one statement: outcomes alike but for their ids, as a batch sink's are
// (a statement per row costs its binding and execution again, for about
// half of what recording a delivery costs). A chained outcome is stored
// alone, its dependents released or failed after it.
func sameOutcomes(outs []bridge.Outcome) int {
	o := outs[0]
	if o.Chained {
		return 1
	}
	n := 1
	for n < len(outs) {
		p := outs[n]
		if p.Chained || p.Status != o.Status || p.Result != o.Result || p.Error != o.Error || !p.NextAt.Equal(o.NextAt) || !p.At.Equal(o.At) || p.Link != o.Link {
			break
		}
		n++
	}
	return n
}

// idList is the outcomes' delivery ids as a JSON array, for json_each.
func idList(outs []bridge.Outcome) string {
	b := make([]byte, 0, 2+len(outs)*8)
	b = append(b, '[')
	for i, o := range outs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, o.ID, 10)
	}
	return string(append(b, ']'))
}

// releaseDependents makes the waiting dependents of delivery id due at
// now, with a fresh retry window, and returns their sinks.
func releaseDependents(tx *sql.Tx, id, now int64) ([]string, error) {
	rows, err := tx.Query(`UPDATE deliveries SET next_at = ?, window_start = ?, updated = ?
		WHERE `+dependentsOf+` AND status = 'pending' AND next_at = ? RETURNING sink`, now, now, now, id, waiting)
	return collect(rows, err, scanOne[string])
}

// failDependents fails the pending dependents of delivery id (of the
// action with id name), which failed with msg, saying so, and theirs in
// turn.
func failDependents(tx *sql.Tx, id int64, name, msg string, now int64) error {
	rows, err := tx.Query(`UPDATE deliveries SET status = 'failed', last_error = ?, next_at = ?, updated = ?
		WHERE `+dependentsOf+` AND status = 'pending' RETURNING id, action_name, last_error`,
		bridge.ChainFailed(name, id, msg), now, now, id)
	type failed struct {
		id        int64
		name, msg string
	}
	next, err := collect(rows, err, func(r *sql.Rows) (f failed, err error) {
		err = r.Scan(&f.id, &f.name, &f.msg)
		return f, err
	})
	if err != nil {
		return err
	}
	for _, f := range next {
		if f.name == "" {
			continue // no action runs after it
		}
		if err := failDependents(tx, f.id, f.name, f.msg, now); err != nil {
			return err
		}
	}
	return nil
}

// Replay puts failed deliveries back in the queue, due now, with a fresh
// retry window, and wakes their sinks. With no ids it replays every failed
// delivery. A dependent goes back to waiting when the action it runs after
// is pending (or replayed with it), and stays failed when that action
// failed and is not replayed; replaying an action puts its failed
// dependents (and theirs) back to waiting. It returns the ids it replayed.
func (s *Store) Replay(ctx context.Context, ids []int64, now time.Time) ([]int64, error) {
	var out []int64
	op := &writeOp{done: make(chan error, 1)}
	op.fn = func(tx *sql.Tx, _ *writerStmts) error {
		out, op.sinks = out[:0], nil // the op runs again alone if its batch failed
		q := `SELECT id, sink, event_seq, rule, action_index, after_index FROM deliveries WHERE status = 'failed'`
		var args []any
		if len(ids) > 0 {
			q += " AND id IN (" + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + ")"
			for _, id := range ids {
				args = append(args, id)
			}
		}
		rows, err := tx.Query(q+" ORDER BY event_seq, rule, action_index", args...)
		picked, err := collect(rows, err, func(r *sql.Rows) (c bridge.ReplayCandidate, err error) {
			err = r.Scan(&c.ID, &c.Sink, &c.Event, &c.Rule, &c.Index, &c.AfterIndex)
			return c, err
		})
		if err != nil {
			return err
		}
		parentStatus := func(c bridge.ReplayCandidate) (string, error) {
			var st string
			err := tx.QueryRow(`SELECT status FROM deliveries WHERE event_seq = ? AND rule = ? AND action_index = ?`,
				c.Event, c.Rule, c.AfterIndex).Scan(&st)
			return st, err
		}
		plan, err := bridge.PlanReplay(picked, parentStatus)
		if err != nil {
			return err
		}
		t := now.UnixNano()
		for _, r := range plan {
			next := t
			if r.Wait {
				next = waiting
			}
			if _, err := tx.Exec(`UPDATE deliveries SET status = 'pending', next_at = ?, window_start = ?, updated = ? WHERE id = ?`,
				next, t, t, r.ID); err != nil {
				return err
			}
			out = append(out, r.ID)
			if !r.Wait && !slices.Contains(op.sinks, r.Sink) {
				op.sinks = append(op.sinks, r.Sink)
			}
			// The failed dependents of a replayed action wait for it again.
			if err := rewaitDependents(tx, r.ID, t, &out); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.enqueue(ctx, op); err != nil {
		return nil, fmt.Errorf("store: replay: %w", err)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// rewaitDependents puts the failed dependents of delivery id, and theirs,
// back to waiting, and adds their ids to out.
func rewaitDependents(tx *sql.Tx, id, now int64, out *[]int64) error {
	rows, err := tx.Query(`UPDATE deliveries SET status = 'pending', next_at = ?, window_start = ?, updated = ?
		WHERE `+dependentsOf+` AND status = 'failed' RETURNING id`, waiting, now, now, id)
	got, err := collect(rows, err, scanOne[int64])
	if err != nil {
		return err
	}
	for _, d := range got {
		*out = append(*out, d)
		if err := rewaitDependents(tx, d, now, out); err != nil {
			return err
		}
	}
	return nil
}
