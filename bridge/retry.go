package bridge

import (
	"log/slog"
	"sync"
	"time"
)

// retryAfterWait bounds the wait a sink asked for (RetryAfter) to the
// sink's retry schedule: at least retry.Initial (1s when unset), so that a
// Retry-After of 0 or a date in the past cannot make a hot loop, and at
// most retry.MaxInterval (MaxRetryAfter when unset).
func retryAfterWait(d time.Duration, retry RetryConfig) time.Duration {
	lo := retry.Initial.D()
	if lo <= 0 {
		lo = time.Second
	}
	hi := retry.MaxInterval.D()
	if hi <= 0 {
		hi = MaxRetryAfter
	}
	return min(max(d, lo), max(hi, lo))
}

// failureLogPeriod is how long a sink's failures of one kind, after the
// one logged at WARN, are counted before their summary.
const failureLogPeriod = 30 * time.Second

// failKind is the class of a failed attempt, each summarised on its own.
type failKind int

const (
	failRetried   failKind = iota // the attempt failed; the delivery will be retried
	failPermanent                 // the delivery failed at once
	failGaveUp                    // the delivery's retry window ran out
	failKinds
)

// summary is the message of the kind's summary line.
func (k failKind) summary() string {
	switch k {
	case failRetried:
		return "delivery attempts failed; will retry"
	case failPermanent:
		return "deliveries failed; fix the cause, then replay them"
	default:
		return "deliveries failed; their retry window ran out"
	}
}

// failureLog keeps a sink's failures from flooding the log in an outage:
// the first failure of each kind is logged at WARN; the ones after it in
// the same period at DEBUG only, and counted. The sink's first outcome after
// the period (a success too) logs one WARN summary per kind with the count
// and the last error, and counting goes on while failures do. A period no
// outcome follows is summarised by a timer, so no count is kept back.
type failureLog struct {
	log    *slog.Logger // with the sink
	now    func() time.Time
	period time.Duration

	mu    sync.Mutex
	start time.Time // the period's start; zero while quiet
	kinds [failKinds]failCount
	timer *time.Timer // summarises a period that no outcome came after
	gen   int         // which arming of timer is current
}

// failCount is one kind's failures in the current period.
type failCount struct {
	logged   bool  // one of this kind went out at WARN (itself, or in a summary)
	n        int   // failures since, logged at DEBUG only
	delivery int64 // the last of them
	err      string
}

func newFailureLog(log *slog.Logger, now func() time.Time, period time.Duration) *failureLog {
	return &failureLog{log: log, now: now, period: period}
}

// note counts a failure of kind at now and returns the level to log it at:
// WARN for the first of its kind in the period, DEBUG for the others.
func (f *failureLog) note(now time.Time, kind failKind, delivery int64, err string) slog.Level {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollLocked(now)
	if f.start.IsZero() {
		f.start = now
	}
	c := &f.kinds[kind]
	if !c.logged {
		c.logged = true
		return slog.LevelWarn
	}
	c.n++
	c.delivery, c.err = delivery, err
	f.armLocked(now)
	return slog.LevelDebug
}

// succeeded notes a delivered attempt: it ends a period that is over.
func (f *failureLog) succeeded(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollLocked(now)
}

// rollLocked summarises the period when it is over. Kinds that had
// failures after their first go on counting in a new period; the others
// log their next failure at WARN again.
func (f *failureLog) rollLocked(now time.Time) {
	if f.start.IsZero() || now.Sub(f.start) < f.period {
		return
	}
	if f.flushLocked(now) {
		f.start = now
	} else {
		f.start = time.Time{}
	}
}

// flushLocked logs a summary of every kind with failures not logged at
// WARN, and reports whether there was one.
func (f *failureLog) flushLocked(now time.Time) bool {
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
		f.gen++
	}
	flushed := false
	for k := range f.kinds {
		c := &f.kinds[k]
		if c.n == 0 {
			c.logged = false
			continue
		}
		flushed = true
		f.log.Warn(failKind(k).summary(), "count", c.n, "period", now.Sub(f.start).Round(time.Second),
			"last_delivery", c.delivery, "last_err", c.err)
		c.n = 0
	}
	return flushed
}

// armLocked makes sure counts are summarised one period after this one
// ends, if no outcome comes to do it before.
func (f *failureLog) armLocked(now time.Time) {
	if f.timer != nil {
		return
	}
	f.gen++
	gen := f.gen
	wait := max(f.start.Add(f.period).Sub(now), 0) + f.period
	f.timer = time.AfterFunc(wait, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.gen != gen {
			return
		}
		f.flushLocked(f.now())
		f.start = time.Time{}
		for k := range f.kinds {
			f.kinds[k].logged = false
		}
	})
}
