package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v7"
)

// SinkSpec is a sink with the settings the pipeline wraps around it.
type SinkSpec struct {
	Name        string
	Sink        Sink
	Timeout     time.Duration
	Concurrency int
	Retry       RetryConfig
	// Key identifies the settings the sink was built from; SetSinks keeps a
	// running sink whose Key did not change.
	Key string
}

// PipelineOptions configures a Pipeline.
type PipelineOptions struct {
	Logger  *slog.Logger
	Metrics *Metrics
	DryRun  bool             // describe every send instead of making it
	Now     func() time.Time // the clock; time.Now when nil
	Poll    time.Duration    // how often each sink looks for work made by other processes (replay); 1s when 0
	// Lease is how long the store holds a claim without renewal (the
	// postgres store's store.lease); while an attempt runs its claims are
	// renewed every third of it, and an attempt whose claims could not be
	// renewed in time is cancelled, as another process may take them
	// over. 0: claims last as long as the process (SQLite).
	Lease time.Duration
	// Render renders a chained action's fields (stored unrendered: see
	// Planned.After) when it is delivered, with the results and links of
	// the delivered actions of its rule, by id. Package rules provides it;
	// without it a chained action fails.
	Render func(stored json.RawMessage, ev *Event, results, links map[string]string) (json.RawMessage, error)
}

// Pipeline carries out stored deliveries: per sink a scheduler that reads
// due deliveries from the store (oldest first) and workers that send them,
// each attempt under the sink's timeout, its outcome recorded in the store
// (delivered, failed, or pending with the next attempt's time). Nothing is
// kept only in memory: a restart resumes from the store.
type Pipeline struct {
	store Store
	opt   PipelineOptions
	log   *slog.Logger

	mu      sync.Mutex
	runners map[string]*runner
	lanes   map[string]*lane // by sink name; outlive the runners
	closed  bool

	// sendCtx bounds sends in flight; it ends at the shutdown deadline.
	sendCtx    context.Context
	cancelSend context.CancelFunc
}

// NewPipeline returns a pipeline over store; SetSinks starts it.
func NewPipeline(store Store, opt PipelineOptions) *Pipeline {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pipeline{store: store, opt: opt, log: opt.Logger, runners: map[string]*runner{}, lanes: map[string]*lane{},
		sendCtx: ctx, cancelSend: cancel}
}

// SetSinks starts a runner for every spec, keeps running ones whose Key is
// unchanged (a spec for such a sink may leave Sink nil), and replaces or
// stops the others (their sinks are closed once their sends in flight end).
// Deliveries of a sink that is no longer configured stay pending in the
// store.
//
// A replaced runner hands over: it stops scheduling at once, and its
// successor starts scheduling only after that, skipping every delivery the
// old runner still has in flight (the lane of a sink name is shared by its
// runners), so a reload never sends one delivery twice.
func (p *Pipeline) SetSinks(specs []SinkSpec) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	want := map[string]SinkSpec{}
	for _, s := range specs {
		want[s.Name] = s
	}
	for name, r := range p.runners {
		if s, ok := want[name]; ok && s.Key == r.spec.Key {
			if s.Sink != nil && s.Sink != r.spec.Sink {
				go s.Sink.Close(context.Background()) // an unchanged sink built again: keep the running one
			}
			delete(want, name)
			continue
		}
		delete(p.runners, name)
		r.halt()
		go r.stop(context.Background())
		if _, ok := want[name]; !ok {
			p.log.Warn("sink removed from the config; its pending deliveries wait in the store until it is back", "sink", name)
		}
	}
	for name, s := range want {
		l := p.lanes[name]
		if l == nil {
			l = &lane{inflight: &claims{ids: map[int64]bool{}},
				fails: newFailureLog(p.log.With("sink", name), p.opt.Now, failureLogPeriod)}
			p.lanes[name] = l
		}
		r := newRunner(p, s, l)
		p.runners[name] = r
		r.start(l.last)
		l.last = r
	}
}

// lane is what the runners of one sink name share, the old one finishing
// its sends after a reload and the new one.
type lane struct {
	inflight *claims
	fails    *failureLog
	last     *runner // the newest runner of the name (guarded by Pipeline.mu)
}

// claims are the deliveries of one sink name in flight: dispatched to a
// worker and not yet recorded. Every runner of that name, old or new, skips
// them.
type claims struct {
	mu  sync.Mutex
	ids map[int64]bool
}

// snapshot copies the ids in flight, for the scheduler's read.
func (c *claims) snapshot() map[int64]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[int64]bool, len(c.ids))
	for id := range c.ids {
		out[id] = true
	}
	return out
}

func (c *claims) add(batch []*job) {
	c.mu.Lock()
	for _, j := range batch {
		c.ids[j.d.ID] = true
	}
	c.mu.Unlock()
}

func (c *claims) remove(batch []*job) {
	c.mu.Lock()
	for _, j := range batch {
		delete(c.ids, j.d.ID)
	}
	c.mu.Unlock()
}

// Wake tells the runners of these sinks that new deliveries are due.
func (p *Pipeline) Wake(sinks map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name := range sinks {
		if r := p.runners[name]; r != nil {
			r.poke()
		}
	}
}

// Shutdown stops scheduling, lets sends in flight finish until ctx ends,
// then cancels them, and closes every sink. Deliveries not finished stay
// pending for the next start.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	runners := p.runners
	p.runners = map[string]*runner{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.stop(ctx)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.cancelSend()
		<-done
	}
	p.cancelSend()
	return nil
}

// runner schedules and sends the deliveries of one sink.
type runner struct {
	p    *Pipeline
	spec SinkSpec
	max  int           // deliveries per attempt
	wait time.Duration // how long a batch may gather

	wake   chan struct{} // new deliveries were stored
	freed  chan struct{} // a worker finished
	quit   chan struct{}
	halted sync.Once // closes quit
	jobs   chan []*job
	done   sync.WaitGroup // workers
	sch    chan struct{}  // closed when the scheduler has stopped

	inflight *claims     // shared with the other runners of this sink name
	fails    *failureLog // likewise

	mu   sync.Mutex
	busy int // workers sending, or holding a batch
}

type job struct {
	d   *Delivery
	rec *DeliveryRecord
}

func newRunner(p *Pipeline, s SinkSpec, l *lane) *runner {
	if s.Concurrency < 1 {
		s.Concurrency = 1
	}
	r := &runner{p: p, spec: s, max: 1, wake: make(chan struct{}, 1), freed: make(chan struct{}, 1), quit: make(chan struct{}),
		jobs: make(chan []*job), sch: make(chan struct{}), inflight: l.inflight, fails: l.fails}
	if bs, ok := s.Sink.(BatchSink); ok {
		r.max, r.wait = bs.BatchLimits()
		if r.max < 1 {
			r.max = 1
		}
	}
	return r
}

// start starts the workers and the scheduler. With prev (the runner of the
// same sink name before this one, halted), scheduling waits until prev's
// scheduler has stopped, so only one scheduler of a sink name claims
// deliveries at a time.
func (r *runner) start(prev *runner) {
	for i := 0; i < r.spec.Concurrency; i++ {
		r.done.Add(1)
		go r.worker()
	}
	go func() {
		if prev != nil {
			select {
			case <-prev.sch:
			case <-r.quit:
				close(r.sch)
				return
			}
		}
		r.schedule()
	}()
}

// halt stops the scheduler from taking more work; stop waits for it.
func (r *runner) halt() { r.halted.Do(func() { close(r.quit) }) }

func (r *runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// stop ends scheduling, waits for the workers (their sends are bounded by
// the pipeline's send context) and closes the sink.
func (r *runner) stop(ctx context.Context) {
	r.halt()
	<-r.sch
	close(r.jobs)
	r.done.Wait()
	if err := r.spec.Sink.Close(ctx); err != nil {
		r.p.log.Warn("close sink", "sink", r.spec.Name, "err", err)
	}
}

// schedule feeds due deliveries to the workers, oldest due first.
func (r *runner) schedule() {
	defer close(r.sch)
	log := r.p.log.With("sink", r.spec.Name)
	timer := time.NewTimer(0)
	defer timer.Stop()
	// A store outage fails every read, once a poll: a failed read is
	// logged at ERROR at most once a failureLogPeriod, the others at DEBUG,
	// and the first read that works after one logged at ERROR says so.
	var (
		fails  int       // reads failed since the last that worked
		logged time.Time // when a failed read was last logged at ERROR
		loud   bool      // one of fails was
	)
	readFailed := func(now time.Time, err error) {
		fails++
		if logged.IsZero() || now.Sub(logged) >= failureLogPeriod {
			log.Error("read due deliveries (more failures within "+failureLogPeriod.String()+" are logged at debug level)", "err", err, "failed_reads", fails)
			logged, loud = now, true
			return
		}
		log.Debug("read due deliveries", "err", err, "failed_reads", fails)
	}
	readOK := func() {
		if loud {
			log.Info("reading due deliveries again", "failed_reads", fails)
		}
		fails, loud = 0, false
	}
	for {
		now := r.p.opt.Now()
		r.mu.Lock()
		busy := r.busy
		r.mu.Unlock()
		skip := r.inflight.snapshot()
		// Read only as many as the idle workers can take now; a worker
		// that finishes pokes the scheduler for more.
		limit := min((r.spec.Concurrency-busy)*r.max, 2000)
		if limit <= 0 {
			if !r.waitFreed(timer) {
				return
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ids, oldest, nextAt, err := r.p.store.Due(ctx, r.spec.Name, now, limit, skip)
		cancel()
		wait := r.p.opt.Poll
		switch {
		case err == nil && r.max > 1 && busy > 0 && len(ids) < r.max:
			// A batch sink with a batch in flight lets the next one grow
			// until a worker is free, instead of sending each new delivery
			// alone; full batches still go to idle workers, and a quiet
			// bridge (nothing in flight) sends at once.
			if !r.waitFreed(timer) {
				return
			}
			continue
		case err != nil:
			readFailed(now, err)
		case len(ids) > 0 && len(ids) < r.max && r.wait > 0 && now.Sub(oldest) < r.wait:
			// A batch sink: let the batch fill until the oldest has waited r.wait.
			wait = r.wait - now.Sub(oldest)
		default:
			if len(ids) == 0 {
				readOK()
			} else {
				ds, recs, err := r.load(ids)
				if err != nil {
					readFailed(now, err)
				} else {
					readOK()
					if !r.dispatch(ds, recs) {
						return
					}
				}
				if err == nil && len(ids) == limit {
					continue // there may be more due
				}
			}
			if !nextAt.IsZero() && nextAt.Sub(now) < wait {
				wait = nextAt.Sub(now)
			}
		}
		if wait < time.Millisecond {
			wait = time.Millisecond
		}
		timer.Reset(wait)
		select {
		case <-r.quit:
			return
		case <-r.wake:
		case <-timer.C:
		}
		timer.Stop() // since Go 1.23 a stopped timer delivers no stale tick
	}
}

// load claims and reads the deliveries the scheduler sends.
func (r *runner) load(ids []int64) ([]*Delivery, []*DeliveryRecord, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.p.store.Claim(ctx, ids, r.p.opt.Now())
}

// waitFreed waits until a worker finishes, or the poll interval passes. It
// returns false when the runner is stopping.
func (r *runner) waitFreed(timer *time.Timer) bool {
	timer.Reset(r.p.opt.Poll)
	defer timer.Stop()
	select {
	case <-r.quit:
		return false
	case <-r.freed:
	case <-timer.C:
	}
	return true
}

// dispatch hands deliveries to the workers in batches of at most r.max. It
// returns false when the runner is stopping.
func (r *runner) dispatch(ds []*Delivery, recs []*DeliveryRecord) bool {
	for i := 0; i < len(ds); i += r.max {
		end := min(i+r.max, len(ds))
		batch := make([]*job, 0, end-i)
		for k := i; k < end; k++ {
			batch = append(batch, &job{d: ds[k], rec: recs[k]})
		}
		r.inflight.add(batch)
		if m := r.p.opt.Metrics; m != nil {
			m.Claimed.WithLabelValues(r.spec.Name).Add(float64(len(batch)))
		}
		r.mu.Lock()
		r.busy++
		r.mu.Unlock()
		select {
		case r.jobs <- batch:
		case <-r.quit:
			r.release(batch)
			return false
		}
	}
	return true
}

// release forgets a batch that has been recorded (or was never sent) and
// frees its worker slot.
func (r *runner) release(batch []*job) {
	r.inflight.remove(batch)
	if m := r.p.opt.Metrics; m != nil {
		m.Claimed.WithLabelValues(r.spec.Name).Sub(float64(len(batch)))
	}
	r.mu.Lock()
	r.busy--
	r.mu.Unlock()
}

func (r *runner) worker() {
	defer r.done.Done()
	for batch := range r.jobs {
		r.attempt(batch)
		r.release(batch)
		select { // a slot is free: look for more work
		case r.freed <- struct{}{}:
		default:
		}
	}
}

// attempt makes one attempt at a batch and records every outcome.
func (r *runner) attempt(batch []*job) {
	ctx, cancel := context.WithTimeout(r.p.sendCtx, r.spec.Timeout)
	stopRenew := r.renew(ctx, cancel, batch)
	start := time.Now()
	results := make([]string, len(batch))
	errs := r.prepare(ctx, batch) // what keeps a job from being sent
	var send []int                // the jobs sent
	for i, err := range errs {
		if err == nil {
			send = append(send, i)
		}
	}
	switch {
	case len(send) == 0:
	case r.p.opt.DryRun:
		for _, i := range send {
			results[i], errs[i] = "dry-run", r.dryRun(ctx, batch[i].d)
		}
	case len(send) > 1 || isBatchSink(r.spec.Sink):
		ds := make([]*Delivery, len(send))
		for k, i := range send {
			ds[k] = batch[i].d
		}
		for k, err := range safeSendBatch(ctx, r.spec.Sink.(BatchSink), ds) {
			errs[send[k]] = err
		}
	default:
		i := send[0]
		results[i], errs[i] = safeSend(ctx, r.spec.Sink, batch[i].d)
	}
	stopRenew()
	cancel()
	if m := r.p.opt.Metrics; m != nil {
		m.DeliveryDuration.WithLabelValues(r.spec.Name).Observe(time.Since(start).Seconds())
	}
	now := r.p.opt.Now()
	outs := make([]Outcome, len(batch))
	linker, _ := r.spec.Sink.(Linker)
	for i, j := range batch {
		outs[i] = r.outcome(j, results[i], errs[i], now)
		outs[i].Chained = j.rec.ActionID != ""
		// A dry run links its "dry-run" result too: its log of a
		// dependent shows where the link goes.
		if linker != nil && outs[i].Status == StatusDelivered {
			outs[i].Link = linker.Link(results[i])
		}
	}
	// The outcome must be recorded even while shutting down.
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	if err := r.p.store.Record(rctx, outs); err != nil {
		r.p.log.Error("record delivery outcomes; they will be attempted again", "sink", r.spec.Name, "err", err)
	}
}

// prepare renders the chained actions of a batch (their fields were
// stored unrendered) with the results and links of the delivered actions
// of their rule, and returns per job what keeps it from being sent: nil,
// or the error its attempt ends with.
func (r *runner) prepare(ctx context.Context, batch []*job) []error {
	errs := make([]error, len(batch))
	for i, j := range batch {
		if j.rec.After == "" {
			continue
		}
		if r.p.opt.Render == nil {
			errs[i] = Permanent(fmt.Errorf("chained action (after %q): this process cannot render it", j.rec.After))
			continue
		}
		d := j.d
		recs, err := r.p.store.Deliveries(ctx, DeliveryFilter{EventID: d.Event.ID, Source: d.Event.Source, Rule: d.Rule})
		if err != nil {
			errs[i] = fmt.Errorf("read the results of the actions it runs after: %w", err)
			continue
		}
		results, links := map[string]string{}, map[string]string{}
		for _, rec := range recs {
			if rec.ActionID != "" && rec.Status == StatusDelivered {
				results[rec.ActionID], links[rec.ActionID] = rec.Result, rec.Link
			}
		}
		if _, ok := results[j.rec.After]; !ok {
			// Released, so delivered; not found only if pruned meanwhile.
			errs[i] = Permanent(fmt.Errorf("not sent: action %q, which it runs after, is not delivered", j.rec.After))
			continue
		}
		action, err := r.p.opt.Render(j.rec.Action, d.Event, results, links)
		if err != nil {
			errs[i] = Permanent(fmt.Errorf("render (after %q): %w", j.rec.After, err))
			continue
		}
		d.Action = action
	}
	return errs
}

// renew keeps the batch's claims while its attempt runs, when the store's
// claims have a lease: every third of the lease it renews them, and should
// a claim be lost (taken over) or no renewal succeed before the lease runs
// out, it cancels the attempt, since another process may now send the same
// deliveries. The returned function stops it.
func (r *runner) renew(ctx context.Context, cancel context.CancelFunc, batch []*job) (stop func()) {
	lease := r.p.opt.Lease
	if lease <= 0 {
		return func() {}
	}
	ids := make([]int64, len(batch))
	for i, j := range batch {
		ids[i] = j.d.ID
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(lease / 3)
		defer t.Stop()
		held := time.Now() // the claim was made at most this long ago
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, lease/3)
			lost, err := r.p.store.Renew(rctx, ids, r.p.opt.Now())
			rcancel()
			switch {
			case err == nil && len(lost) == 0:
				held = time.Now()
				continue
			case err == nil:
				r.p.log.Warn("another process took over deliveries in flight; cancelling the attempt", "sink", r.spec.Name, "deliveries", lost)
				cancel()
				return
			case time.Since(held) >= lease*2/3:
				r.p.log.Warn("cannot renew the claims of an attempt before their lease runs out; cancelling it", "sink", r.spec.Name, "err", err)
				cancel()
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

func isBatchSink(s Sink) bool {
	_, ok := s.(BatchSink)
	return ok
}

// safeSend calls Send, turning a panic into an error.
func safeSend(ctx context.Context, s Sink, d *Delivery) (result string, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("sink panicked: %v", v)
		}
	}()
	return s.Send(ctx, d)
}

// safeSendBatch calls SendBatch, turning a panic or a wrong answer into errors.
func safeSendBatch(ctx context.Context, s BatchSink, ds []*Delivery) (errs []error) {
	defer func() {
		if v := recover(); v != nil {
			errs = make([]error, len(ds))
			for i := range errs {
				errs[i] = fmt.Errorf("sink panicked: %v", v)
			}
		}
	}()
	errs = s.SendBatch(ctx, ds)
	if len(errs) != len(ds) {
		err := fmt.Errorf("sink answered %d results for %d deliveries", len(errs), len(ds))
		errs = make([]error, len(ds))
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// dryRun logs what the sink would send and records nothing else.
func (r *runner) dryRun(ctx context.Context, d *Delivery) error {
	var req string
	if dr, ok := r.spec.Sink.(DryRunner); ok {
		s, err := dr.DryRun(ctx, d)
		if err != nil {
			return Permanent(err)
		}
		req = s
	} else {
		b, _ := json.Marshal(map[string]any{"event": d.Event, "action": d.Action})
		req = string(b)
	}
	r.p.log.Info("dry run: would send", "sink", r.spec.Name, "delivery", d.ID, "event", d.Event.ID, "rule", d.Rule, "request", req)
	return nil
}

// outcome classifies one attempt's result: delivered; failed (permanent, or
// the retry window has run out); or pending until the next attempt, after
// the sink's Retry-After (kept between retry.initial and retry.max_interval)
// or the backoff schedule. Failures are logged through the sink's
// failureLog, so an outage logs a summary per period, not a line per attempt.
func (r *runner) outcome(j *job, result string, err error, now time.Time) Outcome {
	m := r.p.opt.Metrics
	attempts := j.rec.Attempts + 1
	log := r.p.log.With("sink", r.spec.Name, "delivery", j.d.ID, "event", j.d.Event.ID, "rule", j.d.Rule, "attempt", attempts)
	count := func(outcome string) {
		if m != nil {
			m.Deliveries.WithLabelValues(r.spec.Name, outcome).Inc()
			if outcome != "retried" {
				m.DeliveryAttempts.WithLabelValues(r.spec.Name).Observe(float64(attempts))
			}
		}
	}
	fails := r.fails
	if err == nil {
		count("delivered")
		fails.succeeded(now)
		log.Debug("delivered", "result", result)
		return Outcome{ID: j.d.ID, Status: StatusDelivered, Result: result, NextAt: now, At: now}
	}
	msg := err.Error()
	if IsPermanent(err) {
		count("failed")
		log.Log(context.Background(), fails.note(now, failPermanent, j.d.ID, msg), "delivery failed; fix the cause, then replay it", "err", msg)
		return Outcome{ID: j.d.ID, Status: StatusFailed, Error: msg, NextAt: now, At: now}
	}
	delay := BackoffDelay(r.spec.Retry, attempts)
	if d, ok := RetryDelay(err); ok {
		delay = retryAfterWait(d, r.spec.Retry)
	}
	// delay is never negative, so next is never before now and max_age
	// ends every window.
	next := now.Add(delay)
	if next.Sub(j.rec.WindowStart) > r.spec.Retry.MaxAge.D() {
		count("failed")
		msg = fmt.Sprintf("gave up after %d attempts in %s (the next, in %s, would be past retry.max_age %s): %s",
			attempts, now.Sub(j.rec.WindowStart).Round(time.Second), delay.Round(time.Second), r.spec.Retry.MaxAge, msg)
		log.Log(context.Background(), fails.note(now, failGaveUp, j.d.ID, msg), "delivery failed; its retry window ran out", "err", msg)
		return Outcome{ID: j.d.ID, Status: StatusFailed, Error: msg, NextAt: now, At: now}
	}
	count("retried")
	log.Log(context.Background(), fails.note(now, failRetried, j.d.ID, msg), "delivery attempt failed; will retry", "err", msg, "retry_in", delay.Round(time.Millisecond))
	return Outcome{ID: j.d.ID, Status: StatusPending, Error: msg, NextAt: next, At: now}
}

// BackoffDelay returns the wait before attempt number attempts+1:
// exponential from retry.Initial, doubling, with ±50% jitter, capped at
// retry.MaxInterval after the jitter. A wait is therefore at least half the
// interval before jitter (retry.Initial/2 after the first attempt, and
// never less than retry.MaxInterval/2 once the doubling reaches it) and at
// most retry.MaxInterval.
func BackoffDelay(retry RetryConfig, attempts int) time.Duration {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     retry.Initial.D(),
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         retry.MaxInterval.D(),
	}
	b.Reset()
	d := b.InitialInterval
	for i := 0; i < attempts && i < 64; i++ {
		d = b.NextBackOff()
	}
	// The library caps the interval before its jitter, not the wait.
	if b.MaxInterval > 0 {
		d = min(d, b.MaxInterval)
	}
	return max(d, 0)
}

// SinkKey returns the Key of the running sink with that name.
func (p *Pipeline) SinkKey(name string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.runners[name]
	if !ok {
		return "", false
	}
	return r.spec.Key, true
}
