package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// statusSink posts each delivery's event id to url and classifies the
// answer with HTTPStatusError, as the HTTP sinks do.
type statusSink struct {
	client *http.Client
	url    string
}

func (s *statusSink) Send(ctx context.Context, d *Delivery) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, strings.NewReader(d.Event.ID))
	if err != nil {
		return "", Permanent(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return "", HTTPStatusError(resp.StatusCode, resp.Header, string(b))
}

func (s *statusSink) Close(context.Context) error { return nil }

// throttler is a stand-in service. On /odd/N it answers events whose id
// starts with "stuck" with 429 or 503 and the Nth Retry-After value;
// everything else gets 200. It counts the requests per path and event.
type throttler struct {
	retryAfter []string
	mu         sync.Mutex
	requests   map[string]int // by path and event id
}

func (h *throttler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	id := string(b)
	h.mu.Lock()
	h.requests[r.URL.Path+" "+id]++
	h.mu.Unlock()
	var n int
	if _, err := fmt.Sscanf(r.URL.Path, "/odd/%d", &n); err != nil || !strings.HasPrefix(id, "stuck") {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Retry-After", h.retryAfter[n])
	if strings.HasSuffix(id, "1") {
		http.Error(w, "slow down", http.StatusTooManyRequests)
	} else {
		http.Error(w, "try later", http.StatusServiceUnavailable)
	}
}

// most returns the most requests made for one stuck event on /odd/n.
func (h *throttler) most(n int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	most := 0
	for k, v := range h.requests {
		if strings.HasPrefix(k, fmt.Sprintf("/odd/%d stuck", n)) {
			most = max(most, v)
		}
	}
	return most
}

// TestOddRetryAfterIsBounded runs the real pipeline and store against a
// service answering with odd Retry-After values, one sink per value. A wait
// that overflowed time.Duration, or was zero or in the past, retried at
// once: thousands of requests for a few deliveries, which then sorted first
// and starved the sink's other deliveries, and never reached max_age. Every
// wait is now kept between retry.initial and retry.max_interval.
func TestOddRetryAfterIsBounded(t *testing.T) {
	retry := RetryConfig{Initial: Duration(100 * time.Millisecond), MaxInterval: Duration(300 * time.Millisecond), MaxAge: Duration(2 * time.Second)}
	// Within max_age, waits of at least initial allow about 20 attempts; a
	// hot loop makes hundreds.
	const bound = 50
	values := []string{"Inf", "1e20", "99999999999", "0", "-5", "NaN",
		time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)}
	h := &throttler{retryAfter: values, requests: map[string]int{}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	store, err := OpenTestStore(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p := NewPipeline(store, PipelineOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Poll: 5 * time.Millisecond})
	store.SetOnCommit(p.Wake)
	defer p.Shutdown(context.Background())
	specs := []SinkSpec{{Name: "other", Sink: &statusSink{client: srv.Client(), url: srv.URL + "/other"}, Timeout: time.Second, Concurrency: 1, Retry: retry, Key: "other"}}
	odd := make([]string, len(values))
	for i := range values {
		odd[i] = fmt.Sprintf("odd-%d", i)
		specs = append(specs, SinkSpec{Name: odd[i], Sink: &statusSink{client: srv.Client(), url: fmt.Sprintf("%s/odd/%d", srv.URL, i)},
			Timeout: time.Second, Concurrency: 1, Retry: retry, Key: odd[i]})
	}
	p.SetSinks(specs)
	ingest := func(id string, sinks ...string) {
		t.Helper()
		now := time.Now()
		ev := &Event{ID: id, Source: "src", Vendor: "antly", Type: "t", Severity: "info", Time: now, Received: now}
		var planned []Planned
		for _, s := range sinks {
			planned = append(planned, Planned{Rule: "r", Sink: s, Action: json.RawMessage(`{}`)})
		}
		if dup, err := store.Ingest(context.Background(), ev, []byte(`{}`), planned); err != nil || dup {
			t.Fatalf("ingest %s: dup=%v err=%v", id, dup, err)
		}
	}
	ingest("stuck-1", odd...)
	ingest("stuck-2", odd...)
	for deadline := time.Now().Add(5 * time.Second); h.most(0) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the stuck deliveries were never attempted")
		}
		time.Sleep(2 * time.Millisecond)
	}
	// The sinks' other deliveries, and another sink's, must not starve.
	for i := range 5 {
		ingest(fmt.Sprintf("ok-%d", i), append([]string{"other"}, odd...)...)
	}

	// Wait until the stuck deliveries have given up and every other one is
	// delivered, failing as soon as a hot loop shows.
	want := 2*len(odd) + 5*(len(odd)+1)
	deadline := time.Now().Add(15 * time.Second)
	for {
		for i, v := range values {
			if n := h.most(i); n > bound {
				t.Fatalf("Retry-After %q: a stuck delivery was attempted %d times (more than %d): a hot retry loop", v, n, bound)
			}
		}
		ds, err := store.Deliveries(context.Background(), DeliveryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, d := range ds {
			switch {
			case strings.HasPrefix(d.EventID, "stuck") && d.Status == StatusFailed:
				if !strings.Contains(d.LastError, "gave up after") {
					t.Fatalf("%s → %s failed with %q, want it to give up at max_age", d.EventID, d.Sink, d.LastError)
				}
				done++
			case strings.HasPrefix(d.EventID, "ok") && d.Status == StatusDelivered:
				done++
			}
		}
		if done == want {
			for i, v := range values {
				t.Logf("Retry-After %q: at most %d attempts", v, h.most(i))
			}
			return
		}
		if time.Now().After(deadline) {
			var states []string
			for _, d := range ds {
				states = append(states, fmt.Sprintf("%s → %s: %s after %d attempts", d.EventID, d.Sink, d.Status, d.Attempts))
			}
			t.Fatalf("not every delivery ended: %s", strings.Join(states, "; "))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, value string
		want        time.Duration
		ok          bool
	}{
		{"absent", "", 0, false},
		{"seconds", "7", 7 * time.Second, true},
		{"fraction", " 1.5 ", 1500 * time.Millisecond, true},
		{"zero", "0", 0, true},
		{"just under the cap", "86399", 86399 * time.Second, true},
		{"the cap", "86400", MaxRetryAfter, true},
		{"too many seconds", "99999999999", MaxRetryAfter, true},
		{"past Duration's range", "1e20", MaxRetryAfter, true},
		{"past float64's range", "1e400", MaxRetryAfter, true},
		{"Inf", "Inf", MaxRetryAfter, true},
		{"+Inf", "+Inf", MaxRetryAfter, true},
		{"negative", "-5", 0, false},
		{"-Inf", "-Inf", 0, false},
		{"NaN", "NaN", 0, false},
		{"words", "soon", 0, false},
		{"date ahead", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"date past", "Mon, 01 Jan 2001 00:00:00 GMT", 0, true},
		{"date far ahead", "Fri, 31 Dec 9999 23:59:59 GMT", MaxRetryAfter, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tc.value, now)
			if got != tc.want || ok != tc.ok {
				t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", tc.value, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestHTTPStatusErrorRetryAfterBounded(t *testing.T) {
	for _, v := range []string{"Inf", "1e20", "99999999999"} {
		err := HTTPStatusError(http.StatusTooManyRequests, http.Header{"Retry-After": {v}}, "")
		if d, ok := RetryDelay(err); !ok || d != MaxRetryAfter || IsPermanent(err) {
			t.Errorf("Retry-After %q: delay %s, %v (%v); want %s", v, d, ok, err, MaxRetryAfter)
		}
	}
	err := HTTPStatusError(http.StatusServiceUnavailable, http.Header{"Retry-After": {"-5"}}, "")
	if d, ok := RetryDelay(err); ok || err == nil || IsPermanent(err) {
		t.Errorf("Retry-After -5: delay %s, %v (%v); want a retryable error without a delay", d, ok, err)
	}
	if d, _ := RetryDelay(RetryAfter(errors.New("x"), -time.Hour)); d != 0 {
		t.Errorf("RetryAfter(-1h) asks for %s, want 0", d)
	}
}

func TestRetryAfterWait(t *testing.T) {
	set := RetryConfig{Initial: Duration(time.Second), MaxInterval: Duration(5 * time.Minute), MaxAge: Duration(time.Hour)}
	for _, tc := range []struct {
		name  string
		retry RetryConfig
		asked time.Duration
		want  time.Duration
	}{
		{"zero: initial", set, 0, time.Second},
		{"negative: initial", set, -time.Hour, time.Second},
		{"within", set, 3 * time.Second, 3 * time.Second},
		{"long: max_interval", set, time.Hour, 5 * time.Minute},
		{"the largest: max_interval", set, time.Duration(1<<63 - 1), 5 * time.Minute},
		{"unset: 1s", RetryConfig{}, 0, time.Second},
		{"unset: MaxRetryAfter", RetryConfig{}, 48 * time.Hour, MaxRetryAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryAfterWait(tc.asked, tc.retry); got != tc.want {
				t.Errorf("retryAfterWait(%s) = %s, want %s", tc.asked, got, tc.want)
			}
		})
	}
}

// TestRetryAfterIsClamped checks through the pipeline that a sink's wait
// is kept between retry.initial and retry.max_interval, and that max_age
// still ends a delivery whose sink asks for the longest wait every time.
func TestRetryAfterIsClamped(t *testing.T) {
	for _, tc := range []struct {
		name  string
		asked time.Duration
		want  time.Duration
	}{
		{"zero", 0, 10 * time.Second},
		{"negative", -time.Minute, 10 * time.Second},
		{"largest", time.Duration(1<<63 - 1), time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newPipeEnv(t, "", nil, false)
			s := newFakeSink()
			for range 200 {
				s.script = append(s.script, RetryAfter(errors.New("HTTP 429: slow down"), tc.asked))
			}
			retry := RetryConfig{Initial: Duration(10 * time.Second), MaxInterval: Duration(time.Minute), MaxAge: Duration(5 * time.Minute)}
			e.p.SetSinks([]SinkSpec{{Name: "out", Sink: s, Timeout: time.Second, Concurrency: 1, Retry: retry, Key: "out"}})
			e.ingest("e1", "out")
			d := e.waitAttempts("e1", 1)
			if got := d.NextAt.Sub(e.clock.Now()); got != tc.want {
				t.Fatalf("next attempt in %s, want %s", got, tc.want)
			}
			for i := 2; d.Status == StatusPending; i++ {
				if i > 100 {
					t.Fatal("never gave up")
				}
				e.clock.Add(d.NextAt.Sub(e.clock.Now()))
				d = e.waitAttempts("e1", i)
			}
			if d.Status != StatusFailed || !strings.Contains(d.LastError, "gave up after") {
				t.Fatalf("ended as %+v", d)
			}
		})
	}
}

// TestBackoffJitterIsCapped checks that the jitter never takes a wait past
// max_interval, and that it stays at least half the interval before jitter.
func TestBackoffJitterIsCapped(t *testing.T) {
	r := RetryConfig{Initial: Duration(time.Second), MaxInterval: Duration(30 * time.Second), MaxAge: Duration(time.Hour)}
	for attempts := 1; attempts <= 20; attempts++ {
		interval := min(time.Second<<(attempts-1), 30*time.Second)
		for range 2000 {
			got := BackoffDelay(r, attempts)
			if got > 30*time.Second || got < interval/2 {
				t.Fatalf("attempt %d: waits %s, want %s to 30s", attempts, got, interval/2)
			}
		}
	}
}

// logBuf collects JSON log lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lines returns the lines with this level and message.
func (b *logBuf) lines(level slog.Level, msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["level"] == level.String() && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func TestFailureLogSummarises(t *testing.T) {
	var b logBuf
	clock := &fakeClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	f := newFailureLog(b.logger(), clock.Now, 30*time.Second)
	levels := func(kind failKind, n int) (warn, debug int) {
		for i := range n {
			switch f.note(clock.Now(), kind, int64(i), fmt.Sprintf("boom %d", i)) {
			case slog.LevelWarn:
				warn++
			case slog.LevelDebug:
				debug++
			}
		}
		return warn, debug
	}
	summarised := func(kind failKind) []map[string]any { return b.lines(slog.LevelWarn, kind.summary()) }

	if w, d := levels(failRetried, 100); w != 1 || d != 99 {
		t.Fatalf("first period: %d at WARN, %d at DEBUG; want 1 and 99", w, d)
	}
	clock.Add(10 * time.Second)
	if w, _ := levels(failPermanent, 1); w != 1 {
		t.Fatal("the first permanent failure was not logged at WARN")
	}
	f.succeeded(clock.Now())
	if n := len(summarised(failRetried)); n != 0 {
		t.Fatalf("%d summaries before the period ended", n)
	}

	// The first outcome after the period, a success, logs the summary.
	clock.Add(21 * time.Second)
	f.succeeded(clock.Now())
	s := summarised(failRetried)
	if len(s) != 1 || s[0]["count"] != 99.0 || s[0]["last_err"] != "boom 99" || s[0]["last_delivery"] != 99.0 || s[0]["period"] != float64(31*time.Second) {
		t.Fatalf("summaries %v, want one of 99 failures ending with boom 99", s)
	}
	if n := len(summarised(failPermanent)); n != 0 {
		t.Fatalf("a summary of the permanent failure already logged in full")
	}

	// Retries go on failing: they go on being counted, a summary a period.
	if w, d := levels(failRetried, 5); w != 0 || d != 5 {
		t.Fatalf("second period: %d at WARN, %d at DEBUG; want all at DEBUG", w, d)
	}
	// A permanent failure after a quiet period is logged in full again.
	if w, _ := levels(failPermanent, 1); w != 1 {
		t.Fatal("a permanent failure after a quiet period was not logged at WARN")
	}
	clock.Add(30 * time.Second)
	if w, d := levels(failGaveUp, 1); w != 1 || d != 0 {
		t.Fatal("the first give-up was not logged at WARN")
	}
	if s := summarised(failRetried); len(s) != 2 || s[1]["count"] != 5.0 {
		t.Fatalf("summaries %v, want a second one of 5", s)
	}

	// A period with one failure of each kind, and nothing after: quiet.
	clock.Add(31 * time.Second)
	f.succeeded(clock.Now())
	clock.Add(time.Second)
	if w, _ := levels(failRetried, 1); w != 1 {
		t.Fatal("a retry after a quiet period was not logged at WARN")
	}
	if n := len(b.lines(slog.LevelWarn, failGaveUp.summary())) + len(summarised(failPermanent)); n != 0 {
		t.Fatalf("%d summaries of kinds with nothing left to count", n)
	}
}

// TestFailureLogTimer checks that counts no outcome follows are still
// summarised.
func TestFailureLogTimer(t *testing.T) {
	var b logBuf
	f := newFailureLog(b.logger(), time.Now, 20*time.Millisecond)
	for i := range 3 {
		f.note(time.Now(), failPermanent, int64(i), "refused")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if s := b.lines(slog.LevelWarn, failPermanent.summary()); len(s) == 1 && s[0]["count"] == 2.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no summary of the failures no outcome came after")
		}
	}
	if f.note(time.Now(), failPermanent, 9, "refused") != slog.LevelWarn {
		t.Error("a failure after the timer's summary was not logged at WARN")
	}
}

// TestOutageLogsSummaries checks, through the pipeline, that an outage
// logs a line and then a summary per period, not one line per attempt.
func TestOutageLogsSummaries(t *testing.T) {
	var b logBuf
	clock := &fakeClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	store, err := OpenTestStore(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(store, PipelineOptions{Logger: b.logger(), Now: clock.Now, Poll: 5 * time.Millisecond})
	store.SetOnCommit(p.Wake)
	e := &pipeEnv{t: t, store: store, clock: clock, p: p}
	t.Cleanup(e.stop)
	down, refusing := newFakeSink(), newFakeSink()
	for range 400 {
		down.script = append(down.script, errors.New("HTTP 503: down"))
	}
	for range 200 {
		refusing.script = append(refusing.script, Permanent(errors.New("HTTP 400: refused")))
	}
	p.SetSinks([]SinkSpec{
		{Name: "down", Sink: down, Timeout: time.Second, Concurrency: 4, Retry: testRetry, Key: "down"},
		{Name: "refusing", Sink: refusing, Timeout: time.Second, Concurrency: 4, Retry: testRetry, Key: "refusing"},
	})
	const n = 100
	for i := range n {
		e.ingest(fmt.Sprintf("e%d", i), "down", "refusing")
	}
	waitAll := func(sink string, attempts int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			ds, err := store.Deliveries(context.Background(), DeliveryFilter{Sink: sink})
			if err != nil {
				t.Fatal(err)
			}
			done := 0
			for _, d := range ds {
				if d.Attempts >= attempts {
					done++
				}
			}
			if done == len(ds) && done > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d deliveries had %d attempts", sink, done, len(ds), attempts)
			}
		}
	}
	waitAll("down", 1)
	waitAll("refusing", 1)
	// Past the period, and past every backoff: each delivery is tried again,
	// and one more event goes to the refusing sink.
	clock.Add(31 * time.Second)
	e.ingest("late", "refusing")
	waitAll("down", 2)
	waitAll("refusing", 1)
	for deadline := time.Now().Add(10 * time.Second); len(b.lines(slog.LevelWarn, failPermanent.summary())) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no summary of the permanent failures")
		}
	}

	if got := len(b.lines(slog.LevelWarn, "delivery attempt failed; will retry")); got != 1 {
		t.Errorf("%d attempts logged at WARN, want 1", got)
	}
	if got := len(b.lines(slog.LevelDebug, "delivery attempt failed; will retry")); got != 2*n-1 {
		t.Errorf("%d attempts logged at DEBUG, want %d", got, 2*n-1)
	}
	if s := b.lines(slog.LevelWarn, failRetried.summary()); len(s) != 1 || s[0]["count"] != float64(n-1) || s[0]["sink"] != "down" {
		t.Errorf("retry summaries %v, want one of %d", s, n-1)
	}
	if got := len(b.lines(slog.LevelWarn, "delivery failed; fix the cause, then replay it")); got != 1 {
		t.Errorf("%d permanent failures logged at WARN, want 1", got)
	}
	if s := b.lines(slog.LevelWarn, failPermanent.summary()); len(s) != 1 || s[0]["count"] != float64(n-1) || s[0]["sink"] != "refusing" {
		t.Errorf("permanent failure summaries %v, want one of %d", s, n-1)
	}
}
