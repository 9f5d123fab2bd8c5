// Package sqlite is the embedded store: one SQLite database file (through
// modernc.org/sqlite, no cgo) in WAL mode, for one bridge process.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"bridge/bridge"
)

var _ bridge.Store = (*Store)(nil)

// Store is the durable store: events with their raw bodies, the deliveries
// (the outbox), and the sinks' own state, in one embedded SQLite database in
// WAL mode. Every write goes through one writer goroutine that commits
// whatever is queued in one transaction (group commit), so concurrent
// webhooks share a disk sync and a quiet bridge waits for nobody.
type Store struct {
	path  string
	wdb   *sql.DB // the writer's single connection
	rdb   *sql.DB // readers
	ops   chan *writeOp
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
	stmts writerStmts

	dueStmt, nextStmt, loadStmt *sql.Stmt // the schedulers' reads

	// With sync: full, commits run at synchronous=NORMAL and syncer fsyncs
	// the WAL file, acknowledging every batch committed before the fsync
	// began: the ack still waits for the disk, but the writer goes on with
	// the next batch meanwhile.
	walSync bool
	synced  chan syncBatch
	syncerD chan struct{}

	// gen numbers the writer's transactions (only the writer touches it).
	// lastFail is the failure of the most recent write whose outcome is
	// known, nil once a later one succeeded: readiness follows it.
	gen      uint64
	lastFail atomic.Pointer[writeFailure]

	onCommit func(sinks map[string]bool) // SetOnCommit

	locksMu sync.Mutex
	locks   map[string]*bridge.KeyLocks // SinkLocks, by sink name

	fresh *freshCache // new deliveries, for Claim to take without a read

	// The writer's own: insertDeliveries' statements, by insertSizes, and
	// its rows and arguments, reused from one transaction to the next.
	inserts [len(insertSizes)]*sql.Stmt
	rows    []deliveryRow
	args    []any
}

type writeOp struct {
	fn    func(tx *sql.Tx, w *writerStmts) error
	sinks []string // sinks that get new due deliveries from this op; fn may set it
	done  chan error
	// fresh are the pending deliveries the op stored, for s.fresh once
	// committed; fn sets it.
	fresh []*freshDelivery
	// lazy ops are answered once committed, without waiting for the disk
	// sync: losing one to a power cut only repeats work (a delivery
	// outcome: the delivery is attempted again, as at-least-once allows).
	lazy bool
}

// writerStmts are the prepared statements of the hot path, bound to the
// writer's connection.
type writerStmts struct {
	insertEvent *sql.Stmt
	record      *sql.Stmt // one outcome
	recordMany  *sql.Stmt // outcomes alike but for their ids (a JSON array)

	// deliveries are the rows the transaction's ops insert, all of them
	// at the end (insertDeliveries).
	deliveries []deliveryRow
}

// deliveryRow is a delivery an op inserts, and what Claim will read of it
// when it is due now (fresh: its op's event, once stored).
type deliveryRow struct {
	op         *writeOp
	seq        int64 // its event's
	p          *bridge.Planned
	status     string
	lastErr    string
	now, next  int64
	afterIndex int
	fresh      *freshEvent // nil: not claimed fresh (failed, or a dependent)
}

// schema is the store's tables. Every index costs each event's insert (and
// each outcome's update) a B-tree write, so there are only those a query
// needs: events have none on received (Prune walks them in seq order,
// which is the order they arrived in), and deliveries' statuses are
// indexed only where few rows are (pending, due; failed). Indexes an older
// version made and this one does not need are dropped.
const schema = `
CREATE TABLE IF NOT EXISTS events (
	seq      INTEGER PRIMARY KEY,
	source   TEXT NOT NULL,
	id       TEXT NOT NULL,
	vendor   TEXT NOT NULL,
	type     TEXT NOT NULL,
	time     INTEGER NOT NULL,
	received INTEGER NOT NULL,
	severity TEXT NOT NULL,
	title    TEXT NOT NULL,
	subject  TEXT NOT NULL,
	raw      BLOB NOT NULL,
	UNIQUE (source, id)
);
CREATE INDEX IF NOT EXISTS events_source ON events (source, seq);
CREATE TABLE IF NOT EXISTS deliveries (
	id           INTEGER PRIMARY KEY,
	event_seq    INTEGER NOT NULL,
	rule         TEXT NOT NULL,
	action_index INTEGER NOT NULL,
	sink         TEXT NOT NULL,
	action       BLOB,
	status       TEXT NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	created      INTEGER NOT NULL,
	window_start INTEGER NOT NULL,
	next_at      INTEGER NOT NULL,
	updated      INTEGER NOT NULL,
	last_error   TEXT NOT NULL DEFAULT '',
	result       TEXT NOT NULL DEFAULT '',
	action_name  TEXT NOT NULL DEFAULT '',
	after_name   TEXT NOT NULL DEFAULT '',
	after_index  INTEGER NOT NULL DEFAULT -1,
	link         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (sink, next_at, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_seq);
CREATE INDEX IF NOT EXISTS deliveries_failed ON deliveries (id) WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS deliveries_errors ON deliveries (sink, updated) WHERE last_error != '';
CREATE TABLE IF NOT EXISTS state (
	sink    TEXT NOT NULL,
	key     TEXT NOT NULL,
	value   TEXT NOT NULL,
	updated INTEGER NOT NULL,
	PRIMARY KEY (sink, key)
);
DROP INDEX IF EXISTS events_received;
DROP INDEX IF EXISTS deliveries_status;
`

// Open opens (creating it if needed) the database at cfg.Path.
func Open(cfg bridge.StoreConfig) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
		return nil, fmt.Errorf("store: create directory: %w", err)
	}
	q := url.Values{}
	// wal_autocheckpoint: a checkpoint every 10,000 WAL pages (about 40 MB)
	// rather than SQLite's 1,000. Vendors' event ids are random, so every
	// event writes a leaf page of the (source, id) index of its own; a
	// checkpoint copies each page once however often it was written since
	// the last, so checkpointing a tenth as often costs about 15% less CPU
	// per event (BenchmarkIngestRandomIDs), and sequential ids gain too.
	for _, p := range []string{"journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(10000)", "foreign_keys(OFF)", "wal_autocheckpoint(10000)"} {
		q.Add("_pragma", p)
	}
	dsn := "file:" + cfg.Path + "?" + q.Encode()
	wdb, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", cfg.Path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	if _, err := wdb.Exec(schema); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", cfg.Path, err)
	}
	if err := addColumns(wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", cfg.Path, err)
	}
	rdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", cfg.Path, err)
	}
	rdb.SetMaxOpenConns(4)
	s := &Store{path: cfg.Path, wdb: wdb, rdb: rdb, ops: make(chan *writeOp, 1024), quit: make(chan struct{}), done: make(chan struct{}),
		walSync: cfg.Sync != "normal", synced: make(chan syncBatch), syncerD: make(chan struct{}), fresh: newFreshCache()}
	if s.stmts.insertEvent, err = wdb.Prepare(`INSERT INTO events (source, id, vendor, type, time, received, severity, title, subject, raw)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, id) DO NOTHING`); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	for k, n := range insertSizes {
		if s.inserts[k], err = wdb.Prepare(insertStatement(n)); err != nil {
			s.closeDBs()
			return nil, fmt.Errorf("store: prepare: %w", err)
		}
	}
	// ?1 status, ?2 result, ?3 last error, ?4 next_at, ?5 updated, ?6 link,
	// ?7 the id, or for recordMany the ids.
	const recordSet = `UPDATE deliveries SET status = ?1, attempts = attempts + 1,
		result = CASE WHEN ?2 != '' THEN ?2 ELSE result END, last_error = ?3, next_at = ?4, updated = ?5,
		link = CASE WHEN ?6 != '' THEN ?6 ELSE link END`
	if s.stmts.record, err = wdb.Prepare(recordSet + ` WHERE id = ?7`); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	if s.stmts.recordMany, err = wdb.Prepare(recordSet + ` WHERE id IN (SELECT value FROM json_each(?7))`); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	if s.dueStmt, err = rdb.Prepare(`SELECT id, next_at FROM deliveries INDEXED BY deliveries_due
		WHERE sink = ? AND status = 'pending' ORDER BY next_at, id LIMIT ?`); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	if s.nextStmt, err = rdb.Prepare(`SELECT MIN(next_at) FROM deliveries WHERE sink = ? AND status = 'pending' AND next_at > ?`); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	if s.loadStmt, err = rdb.Prepare(`SELECT ` + dueCols + `
		FROM deliveries d JOIN events e ON e.seq = d.event_seq
		WHERE d.id IN (SELECT value FROM json_each(?)) AND d.status = 'pending' AND d.next_at <= ?`); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	go s.writer()
	go s.syncer()
	return s, nil
}

func (s *Store) closeDBs() {
	s.wdb.Close()
	s.rdb.Close()
}

// Close stops the writer after the writes already queued and closes the
// database.
func (s *Store) Close() error {
	s.once.Do(func() { close(s.quit) })
	<-s.done
	s.closeDBs()
	return nil
}

// maxBatch bounds one group commit.
const maxBatch = 512

// writer runs every write, committing whatever is queued together.
func (s *Store) writer() {
	defer func() {
		close(s.synced)
		<-s.syncerD
		close(s.done)
	}()
	batch := make([]*writeOp, 0, maxBatch)
	for {
		var first *writeOp
		select {
		case first = <-s.ops:
		case <-s.quit:
			// Finish what was queued before Close.
			for {
				select {
				case op := <-s.ops:
					s.commit([]*writeOp{op})
				default:
					return
				}
			}
		}
		batch = s.fill(append(batch[:0], first))
		s.commit(batch)
	}
}

// fill adds to batch whatever is queued. When that leaves the batch
// small, it first lets every goroutine that is ready run (the webhook
// handlers whose events are on their way to the queue) and looks again,
// once: a commit costs about as much for one event as for a dozen (the
// same index pages are written either way), so a busy bridge on few cores
// shares commits instead of making one per event, and an idle one pays a
// yield that returns at once.
func (s *Store) fill(batch []*writeOp) []*writeOp {
	for yielded := false; ; yielded = true {
	drain:
		for len(batch) < maxBatch {
			select {
			case op := <-s.ops:
				batch = append(batch, op)
			default:
				break drain
			}
		}
		if yielded || len(batch) >= smallBatch {
			return batch
		}
		runtime.Gosched()
	}
}

// smallBatch is the batch size below which fill waits a moment for more.
const smallBatch = 16

// commit runs a batch in one transaction. Should any op fail, the whole
// transaction is rolled back and each op runs again alone, so one failing op
// leaves nothing half-written and does not fail the others; failures are
// rare, so the common case pays for no savepoints.
func (s *Store) commit(batch []*writeOp) {
	s.gen++
	gen := s.gen
	err := s.runTx(batch)
	if err != nil && len(batch) > 1 {
		for _, op := range batch {
			s.commit([]*writeOp{op})
		}
		return
	}
	if err != nil {
		s.writeFailed(gen, err)
		batch[0].done <- err
		return
	}
	for _, op := range batch {
		if len(op.fresh) > 0 {
			s.fresh.add(op.fresh)
		}
	}
	// The syncer acknowledges what must be durable; batch is reused by the
	// writer, so it gets a copy.
	var durable []*writeOp
	for _, op := range batch {
		if !op.lazy {
			durable = append(durable, op)
		}
	}
	if len(durable) == 0 {
		s.writeOK(gen) // before the acks, as the syncer does
	}
	var woken map[string]bool // by lazy ops: an outcome that released dependents
	for _, op := range batch {
		if op.lazy {
			for _, sk := range op.sinks {
				if woken == nil {
					woken = map[string]bool{}
				}
				woken[sk] = true
			}
			op.done <- nil
		}
	}
	if len(woken) > 0 && s.onCommit != nil {
		s.onCommit(woken)
	}
	if len(durable) > 0 {
		s.synced <- syncBatch{ops: durable, gen: gen} // its outcome is the sync's
	}
}

// syncBatch is a committed batch handed to the syncer, with its
// transaction's number.
type syncBatch struct {
	ops []*writeOp
	gen uint64
}

// writeFailure is a write the store could not commit or sync.
type writeFailure struct {
	gen uint64
	at  time.Time
	err error
}

// writeFailed records that transaction gen failed with err, unless a later
// transaction's outcome is already known.
func (s *Store) writeFailed(gen uint64, err error) {
	f := &writeFailure{gen: gen, at: time.Now(), err: err}
	for {
		cur := s.lastFail.Load()
		if cur != nil && cur.gen > gen {
			return
		}
		if s.lastFail.CompareAndSwap(cur, f) {
			return
		}
	}
}

// writeOK records that transaction gen was committed (and synced, if it had
// to be), clearing an earlier failure. With no failure recorded, as on the
// hot path, it is one atomic load.
func (s *Store) writeOK(gen uint64) {
	for {
		cur := s.lastFail.Load()
		if cur == nil || cur.gen > gen {
			return
		}
		if s.lastFail.CompareAndSwap(cur, nil) {
			return
		}
	}
}

// LastWriteError returns the error of the store's most recent write and
// when it failed, or a nil error when that write succeeded (or none was
// made yet). A failed write is the one its caller was refused for (a
// webhook answered 503); it stands until a later write succeeds.
func (s *Store) LastWriteError() (at time.Time, err error) {
	if f := s.lastFail.Load(); f != nil {
		return f.at, f.err
	}
	return time.Time{}, nil
}

// syncer makes committed batches durable (with sync: full) and then
// acknowledges them and wakes the sinks that got new deliveries.
func (s *Store) syncer() {
	defer close(s.syncerD)
	var wal *os.File
	defer func() {
		if wal != nil {
			wal.Close()
		}
	}()
	for b := range s.synced {
		batches := []syncBatch{b}
	more:
		for {
			select {
			case nb, ok := <-s.synced:
				if !ok {
					break more
				}
				batches = append(batches, nb)
			default:
				break more
			}
		}
		var err error
		if s.walSync {
			if wal == nil {
				wal, err = os.OpenFile(s.path+"-wal", os.O_RDWR, 0)
			}
			if err == nil {
				err = dataSync(wal)
			}
			if err != nil {
				err = fmt.Errorf("store: sync: %w", err)
			}
		}
		// Recorded before the acks, so a caller refused (or acknowledged)
		// finds readiness already saying so.
		if gen := batches[len(batches)-1].gen; err != nil {
			s.writeFailed(gen, err)
		} else {
			s.writeOK(gen)
		}
		woken := map[string]bool{}
		for _, batch := range batches {
			for _, op := range batch.ops {
				if err == nil {
					for _, sk := range op.sinks {
						woken[sk] = true
					}
				}
				op.done <- err
			}
		}
		if len(woken) > 0 && s.onCommit != nil {
			s.onCommit(woken)
		}
	}
}

// runTx runs the ops in one transaction and commits it. It returns an error
// (and commits nothing) if any op or the commit failed.
func (s *Store) runTx(batch []*writeOp) error {
	tx, err := s.wdb.Begin()
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	w := &writerStmts{insertEvent: tx.Stmt(s.stmts.insertEvent), record: tx.Stmt(s.stmts.record),
		recordMany: tx.Stmt(s.stmts.recordMany), deliveries: s.rows[:0]}
	for _, op := range batch {
		if err := op.fn(tx, w); err != nil {
			tx.Rollback()
			return err
		}
	}
	err = s.insertDeliveries(tx, w.deliveries)
	clear(w.deliveries) // s.rows is reused: let go of the ops and events
	s.rows = w.deliveries[:0]
	if err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// write queues fn for the writer and waits for its commit to be durable.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx, w *writerStmts) error) error {
	return s.enqueue(ctx, &writeOp{fn: fn, done: make(chan error, 1)})
}

// writeLazy queues fn and waits for its commit, not for the disk sync.
func (s *Store) writeLazy(ctx context.Context, fn func(tx *sql.Tx, w *writerStmts) error) error {
	return s.enqueue(ctx, &writeOp{fn: fn, done: make(chan error, 1), lazy: true})
}

func (s *Store) enqueue(ctx context.Context, op *writeOp) error {
	select {
	case <-s.quit:
		return bridge.ErrStoreClosed
	default:
	}
	select {
	case s.ops <- op:
	case <-s.quit:
		return bridge.ErrStoreClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the op will be committed or refused; wait for the answer
	// even if ctx ends, so the caller never reports a write that happened
	// as failed. An op queued while Close ran, after the writer took the
	// last ones, is never run: once the writer is done, it is refused.
	select {
	case err := <-op.done:
		return err
	case <-s.done:
		select {
		case err := <-op.done:
			return err
		default:
			return bridge.ErrStoreClosed
		}
	}
}

// Ingest stores a new event and its planned deliveries in one transaction.
// It reports duplicate (and stores nothing) when the source already has an
// event with that id. Deliveries whose action failed to render are stored as
// failed with the template's error.
func (s *Store) Ingest(ctx context.Context, ev *bridge.Event, raw []byte, planned []bridge.Planned) (duplicate bool, err error) {
	var sinks []string
	for _, p := range planned {
		if p.Err == nil && p.After == "" {
			sinks = append(sinks, p.Sink)
		}
	}
	op := &writeOp{done: make(chan error, 1)}
	op.fn = func(tx *sql.Tx, w *writerStmts) error {
		// The op runs again alone if its batch failed. A duplicate wakes no
		// sink.
		duplicate, op.sinks, op.fresh = false, nil, nil
		res, err := w.insertEvent.Exec(ev.Source, ev.ID, ev.Vendor, ev.Type, ev.Time.UnixNano(), ev.Received.UnixNano(),
			ev.Severity, ev.Title, ev.Subject, raw)
		if err != nil {
			return fmt.Errorf("store: insert event: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store: insert event: %w", err)
		}
		if n == 0 {
			duplicate = true
			return nil
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("store: insert event: %w", err)
		}
		now := ev.Received.UnixNano()
		var stored *freshEvent // ev as Claim reads it, shared by its deliveries
		for i := range planned {
			p := &planned[i]
			r := deliveryRow{op: op, seq: seq, p: p, status: bridge.StatusPending, now: now, next: now, afterIndex: -1}
			switch {
			case p.Err != nil:
				r.status, r.lastErr = bridge.StatusFailed, p.Err.Error()
			case p.After != "":
				r.next, r.afterIndex = waiting, p.AfterIndex // released by a later write, not claimed fresh
			default:
				if stored == nil {
					stored = newFreshEvent(ev, raw)
				}
				r.fresh = stored
			}
			w.deliveries = append(w.deliveries, r) // inserted after the batch's last op
		}
		op.sinks = sinks
		return nil
	}
	if err = s.enqueue(ctx, op); err != nil {
		return false, err
	}
	return duplicate, nil
}

// insertSizes are the row counts of the statements insertDeliveries
// inserts with: powers of two, so that any count is a few of them; the
// largest binds 896 values, well under SQLite's limit of 32,766. They are
// prepared at Open: while the writer's transaction runs, its one
// connection is the transaction's.
var insertSizes = [...]int{64, 32, 16, 8, 4, 2, 1}

// insertDeliveries inserts the transaction's deliveries, many rows with
// each statement (insertSizes): a statement per row costs its execution
// again for each, about a quarter of a row's cost. The fresh ones join
// their op's op.fresh, with the ids the rows got.
//
// Those ids are consecutive, the last being the statement's last insert
// id: SQLite gives a new row the largest rowid in the table plus one (it
// picks at random only once a rowid has reached the int64 maximum), and
// no one else writes to the database meanwhile. RETURNING would say so
// instead, but reading its rows costs what the statements save.
func (s *Store) insertDeliveries(tx *sql.Tx, rows []deliveryRow) error {
	args := s.args[:0]
	defer func() { clear(args[:cap(args)]); s.args = args[:0] }() // reused: let go of the values
	for len(rows) > 0 {
		k := 0
		for insertSizes[k] > len(rows) {
			k++
		}
		chunk := rows[:insertSizes[k]]
		rows = rows[len(chunk):]
		args = args[:0]
		for _, r := range chunk {
			args = append(args, r.seq, r.p.Rule, r.p.Index, r.p.Sink, []byte(r.p.Action), r.status, r.now, r.now, r.next, r.now, r.lastErr,
				r.p.ID, r.p.After, r.afterIndex)
		}
		res, err := tx.Stmt(s.inserts[k]).Exec(args...)
		if err != nil {
			return fmt.Errorf("store: insert delivery: %w", err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("store: insert delivery: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != int64(len(chunk)) {
			return fmt.Errorf("store: insert delivery: %d rows of %d inserted (%v)", n, len(chunk), err)
		}
		for i, r := range chunk {
			if r.fresh != nil {
				r.op.fresh = append(r.op.fresh, newFresh(last-int64(len(chunk)-1-i), r.fresh, *r.p, r.now))
			}
		}
	}
	return nil
}

// insertStatement is the statement inserting n deliveries.
func insertStatement(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO deliveries (event_seq, rule, action_index, sink, action, status, attempts, created, window_start, next_at, updated, last_error,
		action_name, after_name, after_index) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)`)
	}
	return b.String()
}

// probeBytes is the size of Ping's probe row: more than a page, so the probe
// needs free pages as a new event does. Rewriting an existing row in place
// needs none, and still succeeds in a database that has no room for one
// more event.
const probeBytes = 16 << 10

// Ping checks that the store can commit (and sync) a write, with a real one
// through the writer: a probe row is inserted and deleted in one
// transaction, so it leaves nothing behind and the database grows at most
// once by its size. Its outcome counts as the last write's
// (LastWriteError): a Ping that succeeds clears an earlier failure.
func (s *Store) Ping(ctx context.Context) error {
	return s.write(ctx, func(tx *sql.Tx, _ *writerStmts) error {
		if _, err := tx.Exec(`INSERT INTO state (sink, key, value, updated) VALUES ('', 'probe', zeroblob(?), ?)
			ON CONFLICT (sink, key) DO UPDATE SET value = excluded.value, updated = excluded.updated`, probeBytes, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("store: probe: %w", err)
		}
		if _, err := tx.Exec(`DELETE FROM state WHERE sink = '' AND key = 'probe'`); err != nil {
			return fmt.Errorf("store: probe: %w", err)
		}
		return nil
	})
}

// Prune deletes events received before cutoff whose deliveries are all
// finished, with those deliveries. It returns how many events it deleted.
//
// Events are stored in the order they arrive, so those received before
// cutoff are the oldest: Prune walks them in seq order up to the first
// received at or after it (reading only as many events as it deletes or
// keeps for their pending deliveries), and needs no index on received. An
// event stored after a newer one (received a moment later, or after the
// clock was set back) is kept until that one is pruned too.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := s.writeLazy(ctx, func(tx *sql.Tx, _ *writerStmts) error {
		c := cutoff.UnixNano()
		var end int64 // the first seq not to prune
		if err := tx.QueryRow(`SELECT COALESCE((SELECT seq FROM events WHERE received >= ? ORDER BY seq LIMIT 1),
			(SELECT MAX(seq) + 1 FROM events), 0)`, c).Scan(&end); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM deliveries WHERE status != 'pending' AND event_seq IN
			(SELECT seq FROM events WHERE seq < ? AND received < ?)`, end, c); err != nil {
			return err
		}
		res, err := tx.Exec(`DELETE FROM events WHERE seq < ? AND received < ? AND NOT EXISTS
			(SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq)`, end, c)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune: %w", err)
	}
	return n, nil
}

// Events lists stored events, newest first.
func (s *Store) Events(ctx context.Context, f bridge.EventFilter) ([]bridge.StoredEvent, error) {
	q := `SELECT seq, source, id, vendor, type, time, received, severity, title, subject, raw FROM events`
	var c conds
	if f.Source != "" {
		c.add("source = ?", f.Source)
	}
	if f.Type != "" {
		c.add("type = ?", f.Type)
	}
	if f.Severity != "" {
		c.add("severity = ?", f.Severity)
	}
	if f.Text != "" {
		like := "%" + bridge.EscapeLike(f.Text) + "%"
		c.add(`(title LIKE ? ESCAPE '\' OR subject LIKE ? ESCAPE '\')`, like, like)
	}
	if f.Before > 0 {
		c.add("seq < ?", f.Before)
	}
	q += c.where()
	q += ` ORDER BY seq DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.rdb.QueryContext(ctx, q, c.args...)
	if err != nil {
		return nil, fmt.Errorf("store: list events: %w", err)
	}
	defer rows.Close()
	var out []bridge.StoredEvent
	for rows.Next() {
		var se bridge.StoredEvent
		ev, err := scanEvent(rows, &se.Seq)
		if err != nil {
			return nil, fmt.Errorf("store: list events: %w", err)
		}
		se.Event = ev
		out = append(out, se)
	}
	return out, rows.Err()
}

type scanner interface{ Scan(dest ...any) error }

// scanEvent reads the event columns (seq first) and rebuilds data from raw.
func scanEvent(r scanner, seq *int64) (*bridge.Event, error) {
	ev, _, err := scanEventRaw(r, seq)
	return ev, err
}

// scanEventRaw is scanEvent that also returns the raw body.
func scanEventRaw(r scanner, seq *int64) (*bridge.Event, []byte, error) {
	var ev bridge.Event
	var t, rc int64
	var raw []byte
	if err := r.Scan(seq, &ev.Source, &ev.ID, &ev.Vendor, &ev.Type, &t, &rc, &ev.Severity, &ev.Title, &ev.Subject, &raw); err != nil {
		return nil, nil, err
	}
	ev.Time = time.Unix(0, t).UTC()
	ev.Received = time.Unix(0, rc).UTC()
	ev.Data = bridge.StoredData(raw)
	return &ev, raw, nil
}

const deliveryCols = `d.id, e.id, e.source, d.rule, d.sink, d.status, d.attempts, d.last_error, d.result, d.created, d.next_at, d.updated, d.action, d.window_start,
	d.action_name, d.after_name, d.after_index, d.link`

func scanDelivery(r scanner) (*bridge.DeliveryRecord, error) {
	var d bridge.DeliveryRecord
	var c, n, u, w int64
	var action []byte
	if err := r.Scan(&d.ID, &d.EventID, &d.Source, &d.Rule, &d.Sink, &d.Status, &d.Attempts, &d.LastError, &d.Result, &c, &n, &u, &action, &w,
		&d.ActionID, &d.After, &d.AfterIndex, &d.Link); err != nil {
		return nil, err
	}
	d.Created, d.NextAt, d.Updated, d.WindowStart = time.Unix(0, c).UTC(), time.Unix(0, n).UTC(), time.Unix(0, u).UTC(), time.Unix(0, w).UTC()
	if len(action) > 0 {
		d.Action = action
	}
	return &d, nil
}

// Deliveries lists deliveries, newest first.
func (s *Store) Deliveries(ctx context.Context, f bridge.DeliveryFilter) ([]*bridge.DeliveryRecord, error) {
	from := `deliveries d`
	var c conds
	switch f.Status {
	case "":
	case bridge.StatusPending, bridge.StatusDelivered, bridge.StatusFailed:
		// As a literal, so that SQLite can use the partial indexes on
		// status (it cannot prove a bound parameter equals 'failed').
		c.add("d.status = '" + f.Status + "'")
		if f.Status == bridge.StatusPending && f.EventID == "" {
			// The pending are few beside the delivered: sorting them beats
			// reading every delivery newest first, which SQLite would (an
			// event's are found through its id instead).
			from = `deliveries d INDEXED BY deliveries_due`
		}
	default:
		c.add("d.status = ?", f.Status)
	}
	q := `SELECT ` + deliveryCols + ` FROM ` + from + ` JOIN events e ON e.seq = d.event_seq`
	if f.EventID != "" {
		c.add("e.id = ?", f.EventID)
	}
	if f.Source != "" {
		c.add("e.source = ?", f.Source)
	}
	if f.Sink != "" {
		c.add("d.sink = ?", f.Sink)
	}
	if f.Rule != "" {
		c.add("d.rule = ?", f.Rule)
	}
	if f.Before > 0 {
		c.add("d.id < ?", f.Before)
	}
	q += c.where()
	q += " ORDER BY d.id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.rdb.QueryContext(ctx, q, c.args...)
	if err != nil {
		return nil, fmt.Errorf("store: list deliveries: %w", err)
	}
	defer rows.Close()
	var out []*bridge.DeliveryRecord
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list deliveries: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// PendingCounts returns the number of pending deliveries per sink.
func (s *Store) PendingCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT sink, COUNT(*) FROM deliveries WHERE status = 'pending' GROUP BY sink`)
	if err != nil {
		return nil, fmt.Errorf("store: count pending: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var sink string
		var n int
		if err := rows.Scan(&sink, &n); err != nil {
			return nil, err
		}
		out[sink] = n
	}
	return out, rows.Err()
}

// dueCols are what Claim reads of a delivery and its event. Each column
// costs a conversion and a copy per row, so none is read twice (the
// event's id and source are the delivery's) or read at all when known (the
// status: Claim reads only pending deliveries).
const dueCols = `d.id, e.id, e.source, d.rule, d.sink, d.attempts, d.last_error, d.result, d.created, d.next_at, d.updated, d.action, d.window_start,
	d.action_name, d.after_name, d.after_index, e.vendor, e.type, e.time, e.received, e.severity, e.title, e.subject, e.raw`

// scanDue reads dueCols. raw is the event's raw body, valid until the next
// row is read.
func scanDue(r scanner) (*bridge.DeliveryRecord, *bridge.Event, sql.RawBytes, error) {
	d := bridge.DeliveryRecord{Status: bridge.StatusPending}
	var ev bridge.Event
	var c, n, u, w, t, rc int64
	var action []byte
	var raw sql.RawBytes
	if err := r.Scan(&d.ID, &d.EventID, &d.Source, &d.Rule, &d.Sink, &d.Attempts, &d.LastError, &d.Result, &c, &n, &u, &action, &w,
		&d.ActionID, &d.After, &d.AfterIndex, &ev.Vendor, &ev.Type, &t, &rc, &ev.Severity, &ev.Title, &ev.Subject, &raw); err != nil {
		return nil, nil, nil, err
	}
	d.Created, d.NextAt, d.Updated, d.WindowStart = time.Unix(0, c).UTC(), time.Unix(0, n).UTC(), time.Unix(0, u).UTC(), time.Unix(0, w).UTC()
	d.Action = action
	ev.ID, ev.Source = d.EventID, d.Source
	ev.Time, ev.Received = time.Unix(0, t).UTC(), time.Unix(0, rc).UTC()
	return &d, &ev, raw, nil
}

// Due returns the ids of up to limit pending deliveries of sink that are
// due at now, oldest due first, skipping the ids in skip (already in
// flight), and when the oldest of them became due. It also returns when the
// next not-yet-due delivery is due. It reads only the due index, and in
// one query as a rule: the pending deliveries in due order, the due ones
// first, then the first not due yet, which gives nextAt. The scheduler
// decides from the ids whether to send now, and Claim reads the deliveries
// it sends, so deliveries in flight or left to grow a batch are not read
// again and again.
func (s *Store) Due(ctx context.Context, sink string, now time.Time, limit int, skip map[int64]bool) (ids []int64, oldest, nextAt time.Time, err error) {
	n := limit + len(skip) + 1 // the due ones wanted, those skipped, and one not due yet
	rows, err := s.dueStmt.QueryContext(ctx, sink, n)
	if err != nil {
		return nil, time.Time{}, time.Time{}, fmt.Errorf("store: due deliveries: %w", err)
	}
	defer rows.Close()
	cut := now.UnixNano()
	read := 0
	for rows.Next() {
		read++
		var id, at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, time.Time{}, time.Time{}, fmt.Errorf("store: due deliveries: %w", err)
		}
		if at > cut {
			nextAt = time.Unix(0, at)
			break
		}
		if skip[id] || len(ids) == limit {
			continue
		}
		if len(ids) == 0 {
			oldest = time.Unix(0, at)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, time.Time{}, fmt.Errorf("store: due deliveries: %w", err)
	}
	rows.Close()
	if nextAt.IsZero() && read == n {
		// More are due than were read: the next not due yet is further on.
		var next sql.NullInt64
		if err := s.nextStmt.QueryRowContext(ctx, sink, cut).Scan(&next); err != nil {
			return nil, time.Time{}, time.Time{}, fmt.Errorf("store: due deliveries: %w", err)
		}
		if next.Valid {
			nextAt = time.Unix(0, next.Int64)
		}
	}
	return ids, oldest, nextAt, nil
}

// Claim reads the deliveries with these ids, each with its event, in the
// order of due time; a delivery no longer pending, or not due at now, is
// left out. One process uses the database, and its pipeline keeps what it
// has in flight, so a claim needs no lease here.
func (s *Store) Claim(ctx context.Context, ids []int64, now time.Time) ([]*bridge.Delivery, []*bridge.DeliveryRecord, error) {
	type claimed struct {
		d   *bridge.Delivery
		rec *bridge.DeliveryRecord
	}
	hits, misses := s.fresh.take(ids, now)
	got := make([]claimed, 0, len(ids))
	for _, fd := range hits {
		d, rec := fd.claimed()
		got = append(got, claimed{d, rec})
	}
	if len(misses) > 0 {
		list, err := json.Marshal(misses)
		if err != nil {
			return nil, nil, fmt.Errorf("store: load deliveries: %w", err)
		}
		rows, err := s.loadStmt.QueryContext(ctx, string(list), now.UnixNano())
		if err != nil {
			return nil, nil, fmt.Errorf("store: load deliveries: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			d, ev, raw, err := scanDue(rows)
			if err != nil {
				return nil, nil, fmt.Errorf("store: load deliveries: %w", err)
			}
			ev.Data = bridge.StoredData(raw)
			got = append(got, claimed{&bridge.Delivery{ID: d.ID, Event: ev, Rule: d.Rule, Sink: d.Sink, Action: d.Action, Attempt: d.Attempts + 1}, d})
		}
		if err := rows.Err(); err != nil {
			return nil, nil, fmt.Errorf("store: load deliveries: %w", err)
		}
	}
	// Sorted here rather than by the query (ORDER BY), which would copy
	// every row, raw body included, through a sorter; ids from Due come in
	// due order already, so this is mostly a check.
	byDue := func(a, b claimed) int {
		if c := a.rec.NextAt.Compare(b.rec.NextAt); c != 0 {
			return c
		}
		return cmp.Compare(a.rec.ID, b.rec.ID)
	}
	if !slices.IsSortedFunc(got, byDue) {
		slices.SortFunc(got, byDue)
	}
	ds := make([]*bridge.Delivery, len(got))
	recs := make([]*bridge.DeliveryRecord, len(got))
	for i, c := range got {
		ds[i], recs[i] = c.d, c.rec
	}
	return ds, recs, nil
}

// ExecOnWriter runs stmt on the writer's connection, outside the writer's
// queue: for tests that make the store fail on purpose (a dropped table,
// PRAGMA max_page_count).
func (s *Store) ExecOnWriter(ctx context.Context, stmt string) error {
	_, err := s.wdb.ExecContext(ctx, stmt)
	return err
}

// Renew has nothing to extend: claims here last as long as the process.
func (s *Store) Renew(context.Context, []int64, time.Time) ([]int64, error) { return nil, nil }

// SetOnCommit sets the function called after each commit with the sinks
// that got new deliveries.
func (s *Store) SetOnCommit(fn func(sinks map[string]bool)) { s.onCommit = fn }

// SinkState returns the durable key/value state of one sink.
func (s *Store) SinkState(sink string) bridge.State { return &sinkState{s: s, sink: sink} }

// SinkLocks returns the per-key locks of one sink name: the same for every
// call with that name, so every instance of the sink built on this store
// shares them.
func (s *Store) SinkLocks(sink string) bridge.Locker {
	s.locksMu.Lock()
	defer s.locksMu.Unlock()
	if s.locks == nil {
		s.locks = map[string]*bridge.KeyLocks{}
	}
	l := s.locks[sink]
	if l == nil {
		l = &bridge.KeyLocks{}
		s.locks[sink] = l
	}
	return l
}

type sinkState struct {
	s    *Store
	sink string
}

func (st *sinkState) Get(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := st.s.rdb.QueryRowContext(ctx, `SELECT value FROM state WHERE sink = ? AND key = ?`, st.sink, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: state get: %w", err)
	}
	return v, true, nil
}

func (st *sinkState) Put(ctx context.Context, key, value string) error {
	return st.s.write(ctx, func(tx *sql.Tx, _ *writerStmts) error {
		_, err := tx.Exec(`INSERT INTO state (sink, key, value, updated) VALUES (?, ?, ?, ?)
			ON CONFLICT (sink, key) DO UPDATE SET value = excluded.value, updated = excluded.updated`,
			st.sink, key, value, time.Now().UnixNano())
		return err
	})
}

func (st *sinkState) Delete(ctx context.Context, key string) error {
	return st.s.write(ctx, func(tx *sql.Tx, _ *writerStmts) error {
		_, err := tx.Exec(`DELETE FROM state WHERE sink = ? AND key = ?`, st.sink, key)
		return err
	})
}
