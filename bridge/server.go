package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
)

// Runtime is one loaded config, ready to serve: its sources and compiled
// rules. A reload builds a new Runtime and swaps it in whole; a request
// finishes under the Runtime it started with.
type Runtime struct {
	Config  *Config
	Sources map[string]*Source
	Rules   RuleSet
}

// Server answers the bridge's HTTP surface (SPEC 3): the webhook routes,
// health, readiness and metrics.
type Server struct {
	store   Store
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
	rt      atomic.Pointer[Runtime]
	recent  *WebhookStats // bridge_webhooks_total by the hour, for the console

	mu       sync.Mutex
	limiters map[string]*sourceLimiter

	readyMu  sync.Mutex
	readyAt  time.Time
	readyErr error
	readyTTL time.Duration

	refused refusals // webhooks the store could not take, logged without a line each
}

// refusals keeps a store outage from logging a line per refused webhook (a
// vendor at 1,000 events/s would make as many error lines a second): the
// first refusal of a period of failureLogPeriod is logged at ERROR, the
// others at DEBUG only and counted; the first webhook after the period,
// refused or stored, logs that count. bridge_webhooks_total{outcome="error"}
// counts every one.
type refusals struct {
	start atomic.Int64 // the period's start (Unix ns); 0 when none is open

	mu  sync.Mutex
	n   int    // refusals of the period logged at DEBUG only
	err string // the last of them
}

// open reports whether a period that started at start is still running at now.
func (r *refusals) open(start int64, now time.Time) bool {
	return start != 0 && now.UnixNano()-start < int64(failureLogPeriod)
}

// note counts a refusal at now. loud says to log it at ERROR; quiet is how
// many refusals were logged at DEBUG only since the previous loud one.
func (r *refusals) note(now time.Time, err error) (loud bool, quiet int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open(r.start.Load(), now) {
		r.n, r.err = r.n+1, err.Error()
		return false, 0
	}
	r.start.Store(now.UnixNano())
	quiet, r.n = r.n, 0
	return true, quiet
}

// stored notes a stored webhook at now. When a period with refusals is
// over, it ends it and returns the refusals logged at DEBUG only and the
// last one's error. It costs one atomic load while the store works.
func (r *refusals) stored(now time.Time) (quiet int, last string) {
	if s := r.start.Load(); s == 0 || r.open(s, now) {
		return 0, ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.start.Load(); s == 0 || r.open(s, now) {
		return 0, "" // another webhook ended it
	}
	r.start.Store(0)
	quiet, last, r.n = r.n, r.err, 0
	return quiet, last
}

type sourceLimiter struct {
	conf RateLimit
	lim  *rate.Limiter
}

// NewServer returns a server over store. SetRuntime must be called before
// it answers webhooks.
func NewServer(store Store, metrics *Metrics, log *slog.Logger) *Server {
	return &Server{store: store, metrics: metrics, log: log, now: time.Now, limiters: map[string]*sourceLimiter{}, readyTTL: time.Second, recent: NewWebhookStats()}
}

// Runtime returns the config being served: the one SetRuntime swapped in
// last, or nil before the first.
func (s *Server) Runtime() *Runtime { return s.rt.Load() }

// WebhookStats returns this process's webhook counts by the hour.
func (s *Server) WebhookStats() *WebhookStats { return s.recent }

// SetRuntime swaps in a newly loaded config.
func (s *Server) SetRuntime(rt *Runtime) {
	s.mu.Lock()
	for name, src := range rt.Sources {
		rl := src.Config().RateLimit
		if rl == nil {
			delete(s.limiters, name)
			continue
		}
		if cur, ok := s.limiters[name]; ok && cur.conf == *rl {
			continue
		}
		s.limiters[name] = &sourceLimiter{conf: *rl, lim: rate.NewLimiter(rate.Limit(rl.RPS), rl.Burst)}
	}
	for name := range s.limiters {
		if _, ok := rt.Sources[name]; !ok {
			delete(s.limiters, name)
		}
	}
	s.mu.Unlock()
	s.rt.Store(rt)
}

// Handler returns the bridge's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/webhooks/{source}", s.webhook)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	return mux
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.rt.Load() == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "config not loaded"})
		return
	}
	if err := s.storeReady(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "store not writable: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// storeReady reports whether the store takes writes. It follows the store's
// most recent write, so readiness fails with the first write the store
// cannot commit (the one a webhook is refused with 503 for) and recovers
// with the first it can, with no lag. At most once a readyTTL it also makes
// a write of its own (Store.Ping), so that it notices a store gone
// unwritable while no webhook arrives, and recovers by itself once the disk
// has room again, when no webhook comes to clear the failure.
func (s *Server) storeReady(ctx context.Context) error {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if now := s.now(); now.Sub(s.readyAt) >= s.readyTTL {
		// The answer is shared by every caller: one leaving early must not
		// cancel it.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		err := s.store.Ping(pctx)
		cancel()
		s.readyAt = now
		// A probe that failed without a write (the store is closed, or too
		// busy to take it in time) is kept until the next probe.
		s.readyErr = nil
		if _, werr := s.store.LastWriteError(); werr == nil && err != nil {
			s.readyErr = fmt.Errorf("probe: %w", err)
		}
	}
	if at, err := s.store.LastWriteError(); err != nil {
		return fmt.Errorf("last write failed %.1fs ago: %w", max(0, s.now().Sub(at).Seconds()), err)
	}
	return s.readyErr
}

// webhook receives one vendor webhook: verify, normalize, evaluate, store,
// and only then acknowledge.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now() // for bridge_webhook_duration_seconds
	rt := s.rt.Load()
	name := r.PathValue("source")
	var src *Source
	if rt != nil {
		src = rt.Sources[name]
	}
	if src == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown source %q", name))
		return
	}
	// Attributes are given per call: a child logger per request would cost
	// on the hot path even with debug logging off.
	log := requestLog{s.log, name, r.RemoteAddr}
	outcome := func(o string) {
		s.metrics.Webhooks.WithLabelValues(name, o).Inc()
		s.recent.Add(name, o, s.now())
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	limit := rt.Config.Server.MaxBodyBytes
	body, err := readBody(http.MaxBytesReader(w, r.Body, limit), r.ContentLength, limit)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			outcome(OutcomeTooLarge)
			log.Warn("webhook body too large", "limit", limit)
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", limit))
			return
		}
		outcome(OutcomeInvalid)
		log.Warn("webhook body unreadable", "err", err)
		writeError(w, http.StatusBadRequest, "cannot read body")
		return
	}
	if err := src.Verify(r.Header, queryOf(r), body); err != nil {
		outcome(OutcomeUnauthorized)
		log.Warn("webhook unauthorized")
		writeError(w, http.StatusUnauthorized, ErrUnauthorized.Error())
		return
	}
	// The rate limit counts only authenticated requests, so forged traffic
	// cannot use up a vendor's budget.
	if d, ok := s.allow(name); !ok {
		outcome(OutcomeRateLimited)
		secs := int(math.Ceil(d.Seconds()))
		if secs < 1 {
			secs = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		log.Warn("webhook rate limited")
		writeError(w, http.StatusTooManyRequests, "rate limit exceeded, retry later")
		return
	}
	received := s.now().UTC()
	ev, err := src.Normalize(body, received)
	if err != nil {
		outcome(OutcomeInvalid)
		log.Warn("webhook invalid", "err", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var eval Evaluation
	if rt.Rules != nil {
		eval = rt.Rules.Evaluate(ev)
	}
	dup, err := s.store.Ingest(r.Context(), ev, body, eval.Planned)
	if err != nil {
		outcome(OutcomeError)
		if loud, quiet := s.refused.note(received, err); loud {
			log.Error("webhook not stored; the vendor should retry (more refusals within "+failureLogPeriod.String()+" are logged at debug level)",
				"event", ev.ID, "err", err, "refused_unlogged", quiet)
		} else {
			log.Debug("webhook not stored; the vendor should retry", "event", ev.ID, "err", err)
		}
		writeError(w, http.StatusServiceUnavailable, "cannot store the event now, retry later")
		return
	}
	if dup {
		outcome(OutcomeDuplicate)
		log.Debug("webhook duplicate", "event", ev.ID, "type", ev.Type)
		s.metrics.ObserveAck(name, start)
		writeAck(w, ev.ID, "duplicate")
		return
	}
	outcome(OutcomeAccepted)
	if quiet, last := s.refused.stored(received); quiet > 0 {
		s.log.Warn("webhooks were refused while the store could not take them (logged at debug level)", "refused_unlogged", quiet, "last_err", last)
	}
	for _, rule := range eval.Matched {
		s.metrics.RuleMatches.WithLabelValues(rule).Inc()
	}
	for _, re := range eval.Errors {
		s.metrics.RuleErrors.WithLabelValues(re.Rule).Inc()
		log.Warn("rule failed to evaluate; counted as not matching", "rule", re.Rule, "event", ev.ID, "err", re.Err)
	}
	for _, p := range eval.Planned {
		if p.Err != nil {
			log.Warn("action template failed; delivery stored as failed", "rule", p.Rule, "sink", p.Sink, "event", ev.ID, "err", p.Err)
		}
	}
	log.Debug("webhook accepted", "event", ev.ID, "type", ev.Type, "matched", len(eval.Matched))
	s.metrics.ObserveAck(name, start)
	writeAck(w, ev.ID, "accepted")
}

// allow applies the source's rate limit; when refused it says how long to wait.
func (s *Server) allow(source string) (time.Duration, bool) {
	s.mu.Lock()
	l := s.limiters[source]
	s.mu.Unlock()
	if l == nil {
		return 0, true
	}
	res := l.lim.Reserve()
	if !res.OK() {
		return time.Second, false
	}
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return d, false
	}
	return 0, true
}

// requestLog logs one webhook's outcome with its source and remote address.
type requestLog struct {
	l              *slog.Logger
	source, remote string
}

func (l requestLog) Debug(msg string, args ...any) {
	if l.l.Enabled(context.Background(), slog.LevelDebug) {
		l.l.Debug(msg, append([]any{"source", l.source, "remote", l.remote}, args...)...)
	}
}

func (l requestLog) Warn(msg string, args ...any) {
	l.l.Warn(msg, append([]any{"source", l.source, "remote", l.remote}, args...)...)
}

func (l requestLog) Error(msg string, args ...any) {
	l.l.Error(msg, append([]any{"source", l.source, "remote", l.remote}, args...)...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
