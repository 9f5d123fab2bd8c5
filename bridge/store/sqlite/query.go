package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"bridge/bridge"
)

// Event returns one stored event and its raw body.
func (s *Store) Event(ctx context.Context, source, id string) (*bridge.StoredEvent, []byte, error) {
	row := s.rdb.QueryRowContext(ctx, `SELECT seq, source, id, vendor, type, time, received, severity, title, subject, raw
		FROM events WHERE source = ? AND id = ?`, source, id)
	var se bridge.StoredEvent
	ev, raw, err := scanEventRaw(row, &se.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, bridge.ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: read event: %w", err)
	}
	se.Event = ev
	return &se, raw, nil
}

// SinkStats counts each sink's deliveries by status, with its latest error.
func (s *Store) SinkStats(ctx context.Context) (map[string]bridge.SinkStats, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT sink, status, COUNT(*) FROM deliveries GROUP BY sink, status`)
	if err != nil {
		return nil, fmt.Errorf("store: sink stats: %w", err)
	}
	out := map[string]bridge.SinkStats{}
	for rows.Next() {
		var sink, status string
		var n int
		if err := rows.Scan(&sink, &status, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: sink stats: %w", err)
		}
		st := out[sink]
		st.Count(status, n)
		out[sink] = st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: sink stats: %w", err)
	}
	for sink, st := range out {
		var msg string
		var at int64
		err := s.rdb.QueryRowContext(ctx, `SELECT last_error, updated FROM deliveries INDEXED BY deliveries_errors
			WHERE sink = ? AND last_error != '' ORDER BY updated DESC LIMIT 1`, sink).Scan(&msg, &at)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: sink stats: %w", err)
		}
		st.LastError, st.LastErrorAt = msg, time.Unix(0, at).UTC()
		out[sink] = st
	}
	return out, nil
}

// collect reads every row of rows with scan and closes them, so that the
// caller's next statement on a transaction's one connection can run. err
// is the query's: collect(tx.Query(...)) cannot be written with scan.
func collect[T any](rows *sql.Rows, err error, scan func(*sql.Rows) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// scanOne is collect's scan of a row of one column.
func scanOne[T any](rows *sql.Rows) (v T, err error) {
	err = rows.Scan(&v)
	return v, err
}

// conds gathers the WHERE conditions of a list query and their arguments.
type conds struct {
	conds []string
	args  []any
}

func (c *conds) add(cond string, args ...any) {
	c.conds = append(c.conds, cond)
	c.args = append(c.args, args...)
}

// where is the WHERE clause of the conditions added, "" when there are none.
func (c *conds) where() string {
	if len(c.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c.conds, " AND ")
}
