package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"bridge/bridge"
)

// Event returns one stored event and its raw body.
func (s *Store) Event(ctx context.Context, source, id string) (*bridge.StoredEvent, []byte, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer cancel()
	var x eventScan
	err = s.pool.QueryRow(ctx, `SELECT `+eventCols+` FROM events e WHERE e.source = $1 AND e.id = $2`, source, id).Scan(x.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, bridge.ErrNotFound
	}
	if err != nil {
		return nil, nil, s.fail(ctx, "read event", err)
	}
	raw := x.raw
	return &bridge.StoredEvent{Seq: x.seq, Event: x.event()}, raw, nil
}

// SinkStats counts each sink's deliveries by status, with its latest error.
func (s *Store) SinkStats(ctx context.Context) (map[string]bridge.SinkStats, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT sink, status, COUNT(*) FROM deliveries GROUP BY sink, status`)
	if err != nil {
		return nil, s.fail(ctx, "sink stats", err)
	}
	out := map[string]bridge.SinkStats{}
	for rows.Next() {
		var sink, status string
		var n int
		if err := rows.Scan(&sink, &status, &n); err != nil {
			rows.Close()
			return nil, s.fail(ctx, "sink stats", err)
		}
		st := out[sink]
		st.Count(status, n)
		out[sink] = st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "sink stats", err)
	}
	for sink, st := range out {
		var msg string
		var at int64
		err := s.pool.QueryRow(ctx, `SELECT last_error, updated FROM deliveries
			WHERE sink = $1 AND last_error <> '' ORDER BY updated DESC LIMIT 1`, sink).Scan(&msg, &at)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, s.fail(ctx, "sink stats", err)
		}
		st.LastError, st.LastErrorAt = msg, time.Unix(0, at).UTC()
		out[sink] = st
	}
	return out, nil
}

// pgText makes s storable in a text column: PostgreSQL refuses the NUL
// character, which a title or subject taken from a vendor's data, or a
// sink's error, may hold; it becomes U+FFFD there (the raw body, a bytea,
// keeps it).
func pgText(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// conds gathers the WHERE conditions of a list query and their arguments.
type conds struct {
	conds []string
	args  []any
}

// add adds cond with one argument; every $? in cond is that argument's
// placeholder.
func (c *conds) add(cond string, arg any) {
	c.args = append(c.args, arg)
	c.conds = append(c.conds, strings.ReplaceAll(cond, "$?", fmt.Sprintf("$%d", len(c.args))))
}

// where is the WHERE clause of the conditions added, "" when there are none.
func (c *conds) where() string {
	if len(c.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c.conds, " AND ")
}
