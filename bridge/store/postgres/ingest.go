package postgres

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"bridge/bridge"
)

// Ingest's group commit. Every Ingest queues its event for a few writer
// goroutines; a writer takes whatever is queued (up to maxIngestBatch
// events) and stores it with one statement, so one transaction, one commit
// and one WAL flush serve every webhook that arrived meanwhile. A quiet
// store waits for nobody: an event queued while a writer is idle is taken
// at once, alone. While a batch is in flight the queue grows, and the next
// batch is larger: fewer, larger batches cost the database less CPU per
// event (a statement and a commit cost it as much as ten events). A
// second writer takes a batch of its own only when the queue left waiting
// is long or the first writer's batch hangs (see ingestWriter).
//
// Each caller is answered after its batch's commit, with that commit's real
// outcome. A batch the database refuses because of one of its events (a
// value a text column refuses, an id too long to index, a deadlock) is split
// in halves and each half tried again, down to the one event that fails,
// so a bad event fails alone and with its own error; a batch that fails
// for any other reason (the connection, a timeout, a read-only database)
// fails every caller in it with that error.
const (
	maxIngestBatch = 256
	// maxIngestBytes bounds the raw bodies and actions of one batch (at
	// least one event is taken, however large).
	maxIngestBytes = 16 << 20
)

// ingestWriters is the number of writer goroutines, each with its own
// connection while its batch runs.
var ingestWriters = 2

// spareMin and stallAfter are when the writers other than the first take
// a batch (see ingestWriter).
var (
	spareMin   = 32
	stallAfter = 50 * time.Millisecond
)

// ingestBatchSQL stores a batch of events and the deliveries of those it
// accepts, and notifies their sinks, in one statement: one round trip, one
// implicit transaction. v is the batch's events ($1..$10, one array per
// column; their (source, id) are distinct, and sorted, so two replicas'
// batches wait for each other's rows in one order and cannot deadlock); an
// event whose (source, id) is stored already, or being stored by another
// transaction, is not inserted and not returned. a maps each accepted
// event's position in the arrays (ord, from 1) to its seq. The deliveries
// ($11..$20) name their event by position; those of events not accepted
// join nothing. A dependent (one with an after_name) is stored waiting
// (next_at waitingAt): no scheduler finds it due until the delivery of the
// action it runs after releases it (Record). The statement returns the
// positions of the accepted events, and pg_notify runs once per sink that
// got a pending delivery due now.
const ingestBatchSQL = `
WITH v AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::bytea[])
		WITH ORDINALITY AS v (source, id, vendor, type, time, received, severity, title, subject, raw, ord)
), e AS (
	INSERT INTO events (source, id, vendor, type, time, received, severity, title, subject, raw)
	SELECT source, id, vendor, type, time, received, severity, title, subject, raw FROM v ORDER BY ord
	ON CONFLICT (source, id) DO NOTHING
	RETURNING seq, source, id, received
), a AS (
	SELECT v.ord, e.seq, e.received FROM e JOIN v ON v.source = e.source AND v.id = e.id
), d AS (
	INSERT INTO deliveries (event_seq, rule, action_index, sink, action, status, created, window_start, next_at, updated, last_error,
		action_name, after_name, after_index)
	SELECT a.seq, p.rule, p.idx, p.sink, p.action, p.status, a.received, a.received,
		CASE WHEN p.after_name <> '' THEN ` + waitingAt + ` ELSE a.received END, a.received, p.err,
		p.action_name, p.after_name, p.after_index
	FROM unnest($11::bigint[], $12::text[], $13::int[], $14::text[], $15::bytea[], $16::text[], $17::text[],
		$18::text[], $19::text[], $20::int[])
		WITH ORDINALITY AS p (ev, rule, idx, sink, action, status, err, action_name, after_name, after_index, ord)
	JOIN a ON a.ord = p.ev
	ORDER BY p.ord
	RETURNING sink, status, after_name
)
SELECT a.ord, (SELECT count(*) FROM (SELECT pg_notify('` + channel + `', s)
	FROM (SELECT DISTINCT sink AS s FROM d WHERE status = 'pending' AND after_name = '') AS x WHERE ` + notifiable + `) AS n)
FROM a`

// ingestEventsSQL is ingestBatchSQL for a batch without deliveries (no
// rule matched its events), in a statement the database runs in less time:
// it returns the (source, id) of the events it accepts.
const ingestEventsSQL = `
INSERT INTO events (source, id, vendor, type, time, received, severity, title, subject, raw)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::bytea[])
ON CONFLICT (source, id) DO NOTHING
RETURNING source, id`

// ingestOp is one Ingest call, queued for a writer.
type ingestOp struct {
	ctx     context.Context // the caller's, with the store's Timeout
	ev      *bridge.Event
	raw     []byte
	planned []bridge.Planned
	size    int // of raw and the actions

	taken bool // by a writer (ingestQueue.mu): the caller waits for its answer
	// followers are ops of the batch with this op's (source, id), queued
	// after it: duplicates if it is stored or found stored.
	followers []*ingestOp

	dup  bool
	err  error
	done chan struct{} // closed when dup and err are set
}

func (op *ingestOp) answer(dup bool, err error) {
	op.dup, op.err = dup, err
	close(op.done)
}

// ingestQueue holds the ops no writer has taken yet.
type ingestQueue struct {
	mu     sync.Mutex
	cond   sync.Cond // the writers wait on it
	ops    []*ingestOp
	closed bool
	// busy is while the first writer's batch runs; stalled once it has
	// run for stallAfter (stall sets it).
	busy, stalled bool
	stall         *time.Timer
	writers       sync.WaitGroup
}

// startIngest starts the writers; Open calls it.
func (s *Store) startIngest() {
	q := &s.ingestQ
	q.cond.L = &q.mu
	q.stall = time.AfterFunc(time.Hour, func() {
		q.mu.Lock()
		if q.busy {
			q.stalled = true
			q.cond.Broadcast()
		}
		q.mu.Unlock()
	})
	q.stall.Stop()
	for i := range ingestWriters {
		q.writers.Add(1)
		go s.ingestWriter(i == 0)
	}
}

// stopIngest refuses new ingests, and returns when the writers have
// stored those already queued; Close calls it.
func (s *Store) stopIngest() {
	q := &s.ingestQ
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	q.writers.Wait()
}

// Ingest stores a new event and its planned deliveries in one transaction,
// shared with the other events ingested at that moment (see ingestBatchSQL).
// It reports duplicate (and stores nothing) when the source already has an
// event with that id, also when another replica, or another call of this
// store, is storing it at the same instant. Deliveries whose action failed
// to render are stored as failed with the template's error. It returns
// after the commit.
//
// A call whose ctx (or the store's Timeout) ends while its event waits in
// the queue returns at once and its event is not stored; once a writer has
// taken the event, the call waits for the commit (bounded by the Timeout)
// and returns its real outcome.
func (s *Store) Ingest(ctx context.Context, ev *bridge.Event, raw []byte, planned []bridge.Planned) (duplicate bool, err error) {
	if s.closed.Load() {
		return false, bridge.ErrStoreClosed
	}
	octx, cancel := context.WithTimeoutCause(ctx, s.cfg.Timeout, &slowError{target: s.target, timeout: s.cfg.Timeout})
	defer cancel()
	if raw == nil {
		raw = []byte{}
	}
	op := &ingestOp{ctx: octx, ev: ev, raw: raw, planned: planned, size: len(raw), done: make(chan struct{})}
	for _, p := range planned {
		op.size += len(p.Action)
	}
	gen := s.writes.Add(1)
	q := &s.ingestQ
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false, bridge.ErrStoreClosed
	}
	q.ops = append(q.ops, op)
	if len(q.ops) == 1 || len(q.ops) >= spareMin {
		q.cond.Broadcast() // the first writer, or the others
	}
	q.mu.Unlock()

	select {
	case <-op.done:
		return op.dup, op.err
	case <-octx.Done():
	}
	q.mu.Lock()
	taken := op.taken
	if !taken {
		if i := slices.Index(q.ops, op); i >= 0 {
			q.ops = slices.Delete(q.ops, i, i+1)
		}
	}
	q.mu.Unlock()
	if taken {
		<-op.done
		return op.dup, op.err
	}
	err = s.fail(octx, "ingest", octx.Err())
	if ctx.Err() == nil {
		// The store's Timeout, not the caller, ended it: the writers are
		// stuck on a database that does not answer.
		s.writeDone(gen, err)
	}
	return false, err
}

// ingestWriter runs batches until the store closes and the queue is empty.
// The first writer takes whatever is queued. The others, spares, take what
// it leaves waiting only when that is spareMin events or more, or when its
// batch has run for stallAfter: while one batch runs, the next grows, and
// fewer, larger batches cost the database less; but a queue as large as
// that (the database has room for more, the events are waiting long
// already) or a batch that hangs (its connection stopped answering, a
// lock wait) gets a batch of its own at once.
func (s *Store) ingestWriter(first bool) {
	q := &s.ingestQ
	defer q.writers.Done()
	var batch []*ingestOp
	for {
		batch = q.take(batch[:0], first)
		if len(batch) == 0 {
			return
		}
		if first {
			q.stall.Reset(stallAfter)
		}
		s.ingestBatch(batch)
		if first {
			q.stall.Stop()
			q.mu.Lock()
			q.busy, q.stalled = false, false
			q.mu.Unlock()
		}
		clear(batch)
	}
}

// ready says whether a writer (the first or a spare) may take the queue.
func (q *ingestQueue) ready(first bool) bool {
	if first {
		return len(q.ops) > 0
	}
	return len(q.ops) >= spareMin || (q.stalled && len(q.ops) > 0)
}

// take waits for queued ops and appends those that fit in one batch to
// batch, in queue order; it returns none only when the store is closed and
// nothing is queued. An op whose caller's context has ended is dropped,
// not taken: its caller returns that context's error.
func (q *ingestQueue) take(batch []*ingestOp, first bool) []*ingestOp {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for !q.ready(first) && !q.closed {
			q.cond.Wait()
		}
		size, n := 0, 0
		for _, op := range q.ops {
			if len(batch) == maxIngestBatch || (len(batch) > 0 && size+op.size > maxIngestBytes) {
				break
			}
			n++
			if op.ctx.Err() != nil {
				continue
			}
			op.taken = true
			size += op.size
			batch = append(batch, op)
		}
		rest := copy(q.ops, q.ops[n:])
		clear(q.ops[rest:])
		q.ops = q.ops[:rest]
		if len(batch) > 0 {
			if first {
				q.busy = true
			}
			return batch
		}
		if q.closed && len(q.ops) == 0 {
			return batch
		}
	}
}

// ingestBatch stores ops (in queue order) and answers each.
func (s *Store) ingestBatch(ops []*ingestOp) {
	// An op whose (source, id) an earlier op of the batch has follows it:
	// one statement cannot insert both, and only one of them may be
	// accepted.
	leaders := ops
	if len(ops) > 1 {
		type key struct{ source, id string }
		first := make(map[key]*ingestOp, len(ops))
		leaders = make([]*ingestOp, 0, len(ops))
		for _, op := range ops {
			k := key{op.ev.Source, op.ev.ID}
			if l := first[k]; l != nil {
				l.followers = append(l.followers, op)
				continue
			}
			first[k] = op
			leaders = append(leaders, op)
		}
		slices.SortFunc(leaders, func(a, b *ingestOp) int {
			return cmp.Or(cmp.Compare(a.ev.Source, b.ev.Source), cmp.Compare(a.ev.ID, b.ev.ID))
		})
	}
	s.storeBatch(leaders)
}

// storeBatch stores leaders, whose (source, id) are distinct and sorted,
// in one transaction; should the database refuse it because of one of
// them, it stores each half on its own.
func (s *Store) storeBatch(leaders []*ingestOp) {
	gen := s.writes.Add(1)
	ctx, cancel := context.WithTimeoutCause(context.Background(), s.cfg.Timeout, &slowError{target: s.target, timeout: s.cfg.Timeout})
	accepted, sinks, err := s.runBatch(ctx, leaders)
	if err != nil && len(leaders) > 1 && refusedForRow(err) {
		cancel()
		h := len(leaders) / 2
		s.storeBatch(leaders[:h])
		s.storeBatch(leaders[h:])
		return
	}
	if err != nil {
		err = s.fail(ctx, "ingest", err)
	}
	cancel()
	// Recorded before the answers, so a caller refused finds readiness
	// already saying so.
	s.writeDone(gen, err)
	var retry []*ingestOp
	for i, op := range leaders {
		switch {
		case err == nil:
			op.answer(!accepted[i], nil)
			for _, f := range op.followers {
				f.answer(true, nil)
			}
		case len(op.followers) > 0 && refusedForRow(err):
			// This op's own content failed it; those with its (source,
			// id) may be fine.
			op.answer(false, err)
			retry = append(retry, op.followers...)
		default:
			op.answer(false, err)
			for _, f := range op.followers {
				f.answer(false, err)
			}
		}
		op.followers = nil
	}
	if err == nil && len(sinks) > 0 {
		if fn := s.onCommit.Load(); fn != nil {
			(*fn)(sinks)
		}
	}
	if len(retry) > 0 {
		s.ingestBatch(retry)
	}
}

// runBatch runs ingestBatchSQL for ops and returns which of them it
// accepted, and the sinks that got pending deliveries due now.
func (s *Store) runBatch(ctx context.Context, ops []*ingestOp) (accepted []bool, sinks map[string]bool, err error) {
	n := len(ops)
	sources, ids, vendors, types := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	severities, titles, subjects := make([]string, n), make([]string, n), make([]string, n)
	times, receiveds := make([]int64, n), make([]int64, n)
	raws := make([][]byte, n)
	m := 0
	for _, op := range ops {
		m += len(op.planned)
	}
	devs, idxs := make([]int64, 0, m), make([]int32, 0, m)
	rules, dsinks, statuses, errs := make([]string, 0, m), make([]string, 0, m), make([]string, 0, m), make([]string, 0, m)
	actions := make([][]byte, 0, m)
	names, afters, afterIdxs := make([]string, 0, m), make([]string, 0, m), make([]int32, 0, m)
	for i, op := range ops {
		ev := op.ev
		sources[i], ids[i], vendors[i], types[i] = ev.Source, ev.ID, ev.Vendor, ev.Type
		severities[i], titles[i], subjects[i] = ev.Severity, pgText(ev.Title), pgText(ev.Subject)
		times[i], receiveds[i], raws[i] = ev.Time.UnixNano(), ev.Received.UnixNano(), op.raw
		for _, p := range op.planned {
			status, msg := bridge.StatusPending, ""
			if p.Err != nil {
				status, msg = bridge.StatusFailed, p.Err.Error()
			}
			devs, idxs = append(devs, int64(i+1)), append(idxs, int32(p.Index))
			rules, dsinks, statuses, errs = append(rules, p.Rule), append(dsinks, p.Sink), append(statuses, status), append(errs, msg)
			actions = append(actions, p.Action)
			afterIdx := int32(-1)
			if p.After != "" {
				afterIdx = int32(p.AfterIndex)
			}
			names, afters, afterIdxs = append(names, p.ID), append(afters, p.After), append(afterIdxs, afterIdx)
		}
	}
	accepted = make([]bool, n)
	if m == 0 {
		err = s.runEvents(ctx, ops, accepted, sources, ids, vendors, types, times, receiveds, severities, titles, subjects, raws)
	} else {
		err = s.runFull(ctx, accepted, sources, ids, vendors, types, times, receiveds, severities, titles, subjects, raws,
			devs, rules, idxs, dsinks, actions, statuses, errs, names, afters, afterIdxs)
	}
	if err != nil {
		return nil, nil, err
	}
	for i, op := range ops {
		if !accepted[i] {
			continue
		}
		for _, p := range op.planned {
			// A dependent waits: the write that releases it wakes its sink.
			if p.Err == nil && p.After == "" {
				if sinks == nil {
					sinks = map[string]bool{}
				}
				sinks[p.Sink] = true
			}
		}
	}
	return accepted, sinks, nil
}

// runFull runs ingestBatchSQL and marks the events it accepted.
func (s *Store) runFull(ctx context.Context, accepted []bool, args ...any) error {
	rows, err := s.pool.Query(ctx, ingestBatchSQL, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var ord, notified int64
		if err := rows.Scan(&ord, &notified); err != nil {
			return err
		}
		if ord < 1 || ord > int64(len(accepted)) {
			return errors.New("ingest: the database returned an event outside the batch")
		}
		accepted[ord-1] = true
	}
	rows.Close()
	return rows.Err() // the commit's outcome
}

// runEvents runs ingestEventsSQL for ops (with no deliveries) and marks
// the events it accepted.
func (s *Store) runEvents(ctx context.Context, ops []*ingestOp, accepted []bool, args ...any) error {
	rows, err := s.pool.Query(ctx, ingestEventsSQL, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var source, id string
	for rows.Next() {
		if err := rows.Scan(&source, &id); err != nil {
			return err
		}
		// ops are sorted by (source, id), as the rows are inserted.
		i, ok := slices.BinarySearchFunc(ops, [2]string{source, id}, func(op *ingestOp, k [2]string) int {
			return cmp.Or(cmp.Compare(op.ev.Source, k[0]), cmp.Compare(op.ev.ID, k[1]))
		})
		if !ok {
			return errors.New("ingest: the database returned an event outside the batch")
		}
		accepted[i] = true
	}
	rows.Close()
	return rows.Err() // the commit's outcome
}

// refusedForRow says whether the database refused a statement for what one
// of its rows holds, so that the batch's other rows may be stored without
// it: a data exception (a NUL byte or invalid UTF-8 in text, class 22), an
// integrity constraint (23), a program limit (an index entry too long,
// 54), or a transaction rolled back by a deadlock or a serialization
// failure (40). Any other error (the connection, a timeout, a read-only or
// full database) would fail each part the same way.
func refusedForRow(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "40", "54":
		return true
	}
	return false
}

// writeDone records the outcome of write number gen (err nil: it
// succeeded) as LastWriteError's, unless a later write's is known already.
func (s *Store) writeDone(gen uint64, err error) {
	o := &writeOutcome{gen: gen, at: time.Now(), err: err}
	for {
		cur := s.lastWrite.Load()
		if (cur != nil && cur.gen > gen) || s.lastWrite.CompareAndSwap(cur, o) {
			return
		}
	}
}
