package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"bridge/bridge"
)

// Errors of OpenExport, matched with errors.Is.
var (
	// ErrInUse: another process, such as the `bridge serve` of the file, has
	// the store open.
	ErrInUse = errors.New("sqlite store: in use by another process")
	// ErrNotStore: the file is not a bridge store (not SQLite, or without
	// the store's tables).
	ErrNotStore = errors.New("sqlite store: not a bridge store")
)

// Export reads a whole store file for copying it into another store
// (`bridge store import`). While it is open it holds the file's exclusive
// lock, so it reads one unchanging state and no `bridge serve` can use the
// file meanwhile; it writes nothing (query_only), but for SQLite's own
// checkpoint on Close of a log left by a process that crashed.
type Export struct {
	path string
	db   *sql.DB
	conn *sql.Conn // the one connection, which holds the lock
	// deliveries is the join Events and Counts read deliveries through
	// (see exportedDeliveries).
	deliveries string
}

// ExportedEvent is a stored event with its raw body and its deliveries.
type ExportedEvent struct {
	Seq        int64
	Event      *bridge.Event
	Raw        []byte
	Deliveries []ExportedDelivery
}

// ExportedDelivery is a delivery with every column the store has.
type ExportedDelivery struct {
	bridge.DeliveryRecord
	Index int // the action's index within its rule
}

// StateRow is one key of a sink's state.
type StateRow struct {
	Sink, Key, Value string
	Updated          time.Time
}

// exportError is an OpenExport error about the file at path. Export's
// errors say "sqlite store", not "store" as the others of this package: an
// import speaks of two stores.
type exportError struct {
	path, msg string
	kind      error // ErrInUse or ErrNotStore
	err       error
}

func (e *exportError) Error() string {
	s := "sqlite store: " + e.path + " " + e.msg
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

func (e *exportError) Is(target error) bool { return target == e.kind }
func (e *exportError) Unwrap() error        { return e.err }

// OpenExport opens the store file at path for Export. It creates nothing:
// a missing file is an error (fs.ErrNotExist), as are a file that is not a
// bridge store (ErrNotStore) and one that another process has open
// (ErrInUse).
func OpenExport(ctx context.Context, path string) (*Export, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if pe := (*os.PathError)(nil); errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("sqlite store: %s: %w", path, err)
	}
	if fi.IsDir() {
		return nil, &exportError{path: path, msg: "is a directory, not a bridge store file", kind: ErrNotStore}
	}
	// mode=rw opens without creating. The exclusive locking mode takes the
	// lock at the first read and keeps it until Close; mode=ro could not
	// take it.
	dsn := "file:" + path + "?mode=rw&_pragma=locking_mode(EXCLUSIVE)&_pragma=query_only(1)&_pragma=busy_timeout(1000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, openExportError(path, err)
	}
	x := &Export{path: path, db: db, conn: conn, deliveries: exportedDeliveries}
	if err := x.check(ctx); err != nil {
		x.Close()
		return nil, err
	}
	return x, nil
}

// check takes the lock and makes sure the file has the store's tables and
// columns. A store that no bridge with chained actions has opened yet
// lacks their columns (Open adds them; Export writes nothing): its
// deliveries are read with the columns' defaults, which is what Open
// would give them.
func (x *Export) check(ctx context.Context) error {
	var n int
	if err := x.conn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil {
		return openExportError(x.path, err)
	}
	for _, q := range []string{
		`SELECT seq, source, id, vendor, type, time, received, severity, title, subject, raw FROM events LIMIT 0`,
		`SELECT id, event_seq, rule, action_index, sink, action, status, attempts, created, window_start, next_at, updated, last_error, result FROM deliveries LIMIT 0`,
		`SELECT sink, key, value, updated FROM state LIMIT 0`,
	} {
		rows, err := x.conn.QueryContext(ctx, q)
		if err != nil {
			return &exportError{path: x.path, msg: "is not a bridge store", kind: ErrNotStore, err: err}
		}
		rows.Close()
	}
	missing, err := x.missingColumns(ctx)
	if err != nil {
		return openExportError(x.path, err)
	}
	if len(missing) > 0 {
		x.deliveries = `FROM (SELECT *, ` + strings.Join(missing, ", ") + ` FROM deliveries) d JOIN events e ON e.seq = d.event_seq`
	}
	return nil
}

// missingColumns returns, as "default AS name", the chainColumns the
// file's deliveries table lacks.
func (x *Export) missingColumns(ctx context.Context) ([]string, error) {
	absent, err := absentChainColumns(ctx, x.conn)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, c := range absent {
		_, def, _ := strings.Cut(c[1], "DEFAULT ")
		missing = append(missing, def+" AS "+c[0])
	}
	return missing, nil
}

// openExportError classifies the error of the first read of the file.
func openExportError(path string, err error) error {
	var se *sqlitedrv.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return &exportError{path: path, msg: "is in use by another process", kind: ErrInUse}
		case sqlite3.SQLITE_NOTADB:
			return &exportError{path: path, msg: "is not a bridge store", kind: ErrNotStore, err: err}
		}
	}
	return fmt.Errorf("sqlite store: open %s: %w", path, err)
}

// Close releases the file.
func (x *Export) Close() error {
	x.conn.Close()
	return x.db.Close()
}

// exportedDeliveries is the join Events and Counts read deliveries
// through: a delivery without its event is not exported. On a file
// without the chain columns, check swaps the table for a subquery that
// adds them.
const exportedDeliveries = `FROM deliveries d JOIN events e ON e.seq = d.event_seq`

// Counts returns how many events, deliveries and state keys Events and
// State return in all.
func (x *Export) Counts(ctx context.Context) (events, deliveries, state int, err error) {
	err = x.conn.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM events), (SELECT count(*) `+x.deliveries+`),
		(SELECT count(*) FROM state WHERE sink != '')`).Scan(&events, &deliveries, &state)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("sqlite store: count: %w", err)
	}
	return events, deliveries, state, nil
}

// Events returns up to limit events whose sequence number is above after,
// in sequence (that is, arrival) order, each with its raw body and every
// delivery, in the order they were planned. Pass the last one's Seq as
// after to read the next page.
func (x *Export) Events(ctx context.Context, after int64, limit int) ([]ExportedEvent, error) {
	rows, err := x.conn.QueryContext(ctx, `SELECT seq, source, id, vendor, type, time, received, severity, title, subject, raw
		FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: export events: %w", err)
	}
	var out []ExportedEvent
	bySeq := map[int64]int{}
	for rows.Next() {
		var ev bridge.Event
		var seq, t, rc int64
		var raw []byte
		if err := rows.Scan(&seq, &ev.Source, &ev.ID, &ev.Vendor, &ev.Type, &t, &rc, &ev.Severity, &ev.Title, &ev.Subject, &raw); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite store: export events: %w", err)
		}
		ev.Time, ev.Received = time.Unix(0, t).UTC(), time.Unix(0, rc).UTC()
		ev.Data = bridge.StoredData(raw)
		bySeq[seq] = len(out)
		out = append(out, ExportedEvent{Seq: seq, Event: &ev, Raw: raw})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: export events: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	rows, err = x.conn.QueryContext(ctx, `SELECT `+deliveryCols+`, d.event_seq, d.action_index `+x.deliveries+`
		WHERE d.event_seq BETWEEN ? AND ? ORDER BY d.event_seq, d.id`, out[0].Seq, out[len(out)-1].Seq)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: export deliveries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var idx int
		d, err := scanDelivery(extraScanner{rows, []any{&seq, &idx}})
		if err != nil {
			return nil, fmt.Errorf("sqlite store: export deliveries: %w", err)
		}
		i := bySeq[seq]
		out[i].Deliveries = append(out[i].Deliveries, ExportedDelivery{DeliveryRecord: *d, Index: idx})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: export deliveries: %w", err)
	}
	return out, nil
}

// extraScanner scans the columns scanDelivery reads into its dest, and
// the columns after them into extra.
type extraScanner struct {
	r     scanner
	extra []any
}

func (s extraScanner) Scan(dest ...any) error { return s.r.Scan(append(dest, s.extra...)...) }

// State returns every sink's state rows (the Jira sinks' key-to-issue
// records, the Slack sinks' threads), by sink and key. The store's own row
// of sink "" (Ping's probe) is no sink's.
func (x *Export) State(ctx context.Context) ([]StateRow, error) {
	rows, err := x.conn.QueryContext(ctx, `SELECT sink, key, value, updated FROM state WHERE sink != '' ORDER BY sink, key`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: export state: %w", err)
	}
	defer rows.Close()
	var out []StateRow
	for rows.Next() {
		var r StateRow
		var u int64
		if err := rows.Scan(&r.Sink, &r.Key, &r.Value, &u); err != nil {
			return nil, fmt.Errorf("sqlite store: export state: %w", err)
		}
		r.Updated = time.Unix(0, u).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: export state: %w", err)
	}
	return out, nil
}
