package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type pipeEnv struct {
	t       *testing.T
	store   Store
	clock   *fakeClock
	metrics *Metrics
	p       *Pipeline
	path    string
}

var testRetry = RetryConfig{Initial: Duration(10 * time.Second), MaxInterval: Duration(time.Minute), MaxAge: Duration(time.Hour)}

func newPipeEnv(t *testing.T, path string, clock *fakeClock, dryRun bool) *pipeEnv {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "p.db")
	}
	if clock == nil {
		clock = &fakeClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	}
	store, err := OpenTestStore(path)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(store.PendingCounts)
	p := NewPipeline(store, PipelineOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m,
		DryRun: dryRun, Now: clock.Now, Poll: 5 * time.Millisecond})
	store.SetOnCommit(p.Wake)
	e := &pipeEnv{t: t, store: store, clock: clock, metrics: m, p: p, path: path}
	t.Cleanup(e.stop)
	return e
}

func (e *pipeEnv) stop() {
	e.p.Shutdown(context.Background())
	e.store.Close()
}

func (e *pipeEnv) sink(name string, s Sink, timeout time.Duration) {
	e.p.SetSinks([]SinkSpec{{Name: name, Sink: s, Timeout: timeout, Concurrency: 2, Retry: testRetry, Key: name}})
}

// ingest stores an event with one delivery to each sink.
func (e *pipeEnv) ingest(id string, sinks ...string) {
	e.t.Helper()
	ev := &Event{ID: id, Source: "src", Vendor: "antly", Type: "t", Severity: "info", Time: e.clock.Now(), Received: e.clock.Now()}
	var planned []Planned
	for _, s := range sinks {
		planned = append(planned, Planned{Rule: "r", Sink: s, Action: json.RawMessage(`{"text":"hi"}`)})
	}
	if dup, err := e.store.Ingest(context.Background(), ev, []byte(`{"event":"t","data":{"k":"v"}}`), planned); err != nil || dup {
		e.t.Fatalf("ingest %s: dup=%v err=%v", id, dup, err)
	}
}

// waitUntil polls the store until the one delivery of event id to sink
// ("": to any sink) is as ok wants (want says how) and returns it.
func (e *pipeEnv) waitUntil(id, sink, want string, ok func(*DeliveryRecord) bool) *DeliveryRecord {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ds, err := e.store.Deliveries(context.Background(), DeliveryFilter{EventID: id, Sink: sink})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(ds) == 1 && ok(ds[0]) {
			return ds[0]
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("delivery of %s (sink %q): %+v, want %s", id, sink, ds, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitFor waits until the delivery of event id has status want.
func (e *pipeEnv) waitFor(id, want string) *DeliveryRecord {
	e.t.Helper()
	return e.waitUntil(id, "", "status "+want, func(d *DeliveryRecord) bool { return d.Status == want })
}

// waitAttempts waits until the delivery of id has had n attempts.
func (e *pipeEnv) waitAttempts(id string, n int) *DeliveryRecord {
	e.t.Helper()
	return e.waitUntil(id, "", fmt.Sprintf("%d attempts", n), func(d *DeliveryRecord) bool { return d.Attempts >= n })
}

func TestFailsThenSucceeds(t *testing.T) {
	e := newPipeEnv(t, "", nil, false)
	s := newFakeSink()
	s.script = []error{errors.New("boom 1"), errors.New("boom 2"), errors.New("boom 3")}
	e.sink("out", s, time.Second)
	e.ingest("e1", "out")
	for i := 1; i <= 3; i++ {
		d := e.waitAttempts("e1", i)
		if d.Status != StatusPending || d.LastError != fmt.Sprintf("boom %d", i) {
			t.Fatalf("after attempt %d: %+v", i, d)
		}
		// The retry is scheduled by backoff: not before 5s (10s ±50%), never past max_interval × 1.5.
		wait := d.NextAt.Sub(e.clock.Now())
		if wait < 5*time.Second || wait > 90*time.Second {
			t.Fatalf("attempt %d: next in %s, outside the backoff schedule", i, wait)
		}
		e.clock.Add(wait)
	}
	d := e.waitFor("e1", StatusDelivered)
	if d.Attempts != 4 || d.Result != "ok-e1" {
		t.Errorf("delivered after %d attempts, result %q", d.Attempts, d.Result)
	}
	if got := testutil.ToFloat64(e.metrics.Deliveries.WithLabelValues("out", "retried")); got != 3 {
		t.Errorf("retried count %v", got)
	}
}

func TestRetryAfterWins(t *testing.T) {
	e := newPipeEnv(t, "", nil, false)
	s := newFakeSink()
	// 45s: longer than the first backoff (10s ±50%), within max_interval (1m).
	s.script = []error{RetryAfter(errors.New("HTTP 429: slow down"), 45*time.Second)}
	e.sink("out", s, time.Second)
	e.ingest("e1", "out")
	d := e.waitAttempts("e1", 1)
	if got := d.NextAt.Sub(e.clock.Now()); got != 45*time.Second {
		t.Fatalf("next attempt in %s, want the sink's Retry-After 45s", got)
	}
	e.clock.Add(44 * time.Second)
	time.Sleep(50 * time.Millisecond)
	if n := len(s.delivered()); n != 0 {
		t.Fatalf("delivered before Retry-After passed")
	}
	e.clock.Add(time.Second)
	e.waitFor("e1", StatusDelivered)
}

func TestPermanentThenReplay(t *testing.T) {
	e := newPipeEnv(t, "", nil, false)
	s := newFakeSink()
	s.script = []error{Permanent(errors.New(`jira: create issue: HTTP 400: priority: Priority name 'Urgent' is not valid`))}
	e.sink("out", s, time.Second)
	e.ingest("e1", "out")
	d := e.waitFor("e1", StatusFailed)
	if d.Attempts != 1 || !strings.Contains(d.LastError, "Priority name 'Urgent' is not valid") {
		t.Fatalf("failed delivery: %+v", d)
	}
	ids, err := e.store.Replay(context.Background(), []int64{d.ID}, e.clock.Now())
	if err != nil || len(ids) != 1 {
		t.Fatalf("replay: %v %v", ids, err)
	}
	d = e.waitFor("e1", StatusDelivered)
	if d.Attempts != 2 {
		t.Errorf("attempts %d, want 2", d.Attempts)
	}
	// Replaying a delivered delivery does nothing.
	if ids, _ := e.store.Replay(context.Background(), []int64{d.ID}, e.clock.Now()); len(ids) != 0 {
		t.Errorf("replayed a delivered delivery")
	}
}

func TestRetryWindowRunsOut(t *testing.T) {
	e := newPipeEnv(t, "", nil, false)
	s := newFakeSink()
	for i := 0; i < 200; i++ {
		s.script = append(s.script, errors.New("HTTP 503: down"))
	}
	e.sink("out", s, time.Second)
	e.ingest("e1", "out")
	for i := 1; ; i++ {
		d := e.waitAttempts("e1", i)
		if d.Status == StatusFailed {
			if !strings.Contains(d.LastError, "gave up after") || !strings.Contains(d.LastError, "HTTP 503: down") {
				t.Errorf("last error %q", d.LastError)
			}
			return
		}
		if i > 100 {
			t.Fatal("never gave up")
		}
		e.clock.Add(d.NextAt.Sub(e.clock.Now()))
	}
}

// TestRestartMidBackoff checks that a delivery waiting for its retry
// resumes at its due time after a restart: not at once, and not never.
func TestRestartMidBackoff(t *testing.T) {
	e := newPipeEnv(t, "", nil, false)
	s := newFakeSink()
	s.script = []error{errors.New("down")}
	e.sink("out", s, time.Second)
	e.ingest("e1", "out")
	d := e.waitAttempts("e1", 1)
	e.stop()

	e2 := newPipeEnv(t, e.path, e.clock, false)
	s2 := newFakeSink()
	e2.sink("out", s2, time.Second)
	time.Sleep(50 * time.Millisecond)
	if len(s2.delivered()) != 0 {
		t.Fatal("a delivery in backoff was sent at once after the restart")
	}
	e2.clock.Add(d.NextAt.Sub(e2.clock.Now()))
	e2.waitFor("e1", StatusDelivered)
}

func TestHangingSinkIsCut(t *testing.T) {
	e := newPipeEnv(t, "", nil, false)
	s := newFakeSink()
	s.hang = true
	e.sink("out", s, 30*time.Millisecond)
	e.ingest("e1", "out")
	d := e.waitAttempts("e1", 1)
	if d.Status != StatusPending || !strings.Contains(d.LastError, "deadline exceeded") {
		t.Fatalf("after a hang: %+v", d)
	}
	s.mu.Lock()
	s.hang = false
	s.mu.Unlock()
	e.clock.Add(time.Hour / 2)
	e.waitFor("e1", StatusDelivered)
}

func TestDryRun(t *testing.T) {
	e := newPipeEnv(t, "", nil, true)
	s := newFakeSink()
	e.sink("out", s, time.Second)
	e.ingest("e1", "out")
	d := e.waitFor("e1", StatusDelivered)
	if d.Result != "dry-run" || len(s.delivered()) != 0 {
		t.Errorf("dry run: result %q, sink got %d", d.Result, len(s.delivered()))
	}
}

// TestDownSinkDoesNotStarveOthers checks that deliveries to a failing sink
// wait on disk while another sink delivers.
func TestDownSinkDoesNotStarveOthers(t *testing.T) {
	e := newPipeEnv(t, "", nil, false)
	down, up := newFakeSink(), newFakeSink()
	for i := 0; i < 100; i++ {
		down.script = append(down.script, errors.New("down"))
	}
	e.p.SetSinks([]SinkSpec{
		{Name: "down", Sink: down, Timeout: time.Second, Concurrency: 1, Retry: testRetry, Key: "down"},
		{Name: "up", Sink: up, Timeout: time.Second, Concurrency: 1, Retry: testRetry, Key: "up"},
	})
	for i := 0; i < 20; i++ {
		e.ingest(fmt.Sprintf("e%d", i), "down", "up")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(up.delivered()) < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("up sink got %d of 20", len(up.delivered()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The last outcome is recorded just after Send returns: wait for it.
	for {
		counts, _ := e.store.PendingCounts(context.Background())
		if counts["down"] == 20 && counts["up"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending %v, want 20 for down and none for up", counts)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// batchSink records the batch sizes it was given.
type batchSink struct {
	*fakeSink
	mu      sync.Mutex
	batches []int
}

func (b *batchSink) BatchLimits() (int, time.Duration) { return 50, 0 }

func (b *batchSink) SendBatch(ctx context.Context, ds []*Delivery) []error {
	b.mu.Lock()
	b.batches = append(b.batches, len(ds))
	b.mu.Unlock()
	errs := make([]error, len(ds))
	for i, d := range ds {
		if d.Event.ID == "bad" {
			errs[i] = Permanent(errors.New("refused"))
			continue
		}
		_, errs[i] = b.fakeSink.Send(ctx, d)
	}
	return errs
}

func TestBatchSink(t *testing.T) {
	e := newPipeEnv(t, "", nil, false)
	b := &batchSink{fakeSink: newFakeSink()}
	// Store the events before the sink runs, so they are due together.
	for i := 0; i < 30; i++ {
		e.ingest(fmt.Sprintf("e%d", i), "out")
	}
	e.ingest("bad", "out")
	e.p.SetSinks([]SinkSpec{{Name: "out", Sink: b, Timeout: time.Second, Concurrency: 1, Retry: testRetry, Key: "out"}})
	e.waitFor("bad", StatusFailed)
	for i := 0; i < 30; i++ {
		e.waitFor(fmt.Sprintf("e%d", i), StatusDelivered)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.batches) != 1 || b.batches[0] != 31 {
		t.Errorf("batches %v, want one of 31", b.batches)
	}
}

func TestBackoffDelay(t *testing.T) {
	r := RetryConfig{Initial: Duration(time.Second), MaxInterval: Duration(time.Minute), MaxAge: Duration(time.Hour)}
	for attempts, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 10: time.Minute} {
		for i := 0; i < 50; i++ {
			got := BackoffDelay(r, attempts)
			if got < want/2 || got > want*3/2 {
				t.Fatalf("attempt %d: %s, want %s ±50%%", attempts, got, want)
			}
		}
	}
}

// gateSink holds every send until its gate opens.
type gateSink struct {
	*fakeSink
	started chan int64
	gate    chan struct{}
}

func (s *gateSink) Send(ctx context.Context, d *Delivery) (string, error) {
	s.started <- d.ID
	select {
	case <-s.gate:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return s.fakeSink.Send(ctx, d)
}

// TestReloadHandsOver replaces a sink while it is sending: the new sink
// does not send what the old one has in flight, the old one's send is
// recorded once, and new work goes to the new sink.
func TestReloadHandsOver(t *testing.T) {
	e := newPipeEnv(t, "", nil, false)
	old := &gateSink{fakeSink: newFakeSink(), started: make(chan int64, 10), gate: make(chan struct{})}
	e.p.SetSinks([]SinkSpec{{Name: "out", Sink: old, Timeout: 10 * time.Second, Concurrency: 2, Retry: testRetry, Key: "v1"}})
	e.ingest("e1", "out")
	select {
	case <-old.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the first sink never started sending")
	}
	next := newFakeSink()
	for i := range 20 { // reload over and over while the send is in flight
		s := Sink(newFakeSink())
		if i == 19 {
			s = next
		}
		e.p.SetSinks([]SinkSpec{{Name: "out", Sink: s, Timeout: time.Second, Concurrency: 2, Retry: testRetry, Key: fmt.Sprintf("v%d", i+2)}})
		time.Sleep(10 * time.Millisecond) // many scheduler polls (5ms) per reload
	}
	if got := next.delivered(); len(got) != 0 {
		t.Fatalf("the new sink sent a delivery the old one had in flight: %+v", got)
	}
	close(old.gate)
	d := e.waitFor("e1", StatusDelivered)
	if d.Attempts != 1 || d.Result != "ok-e1" {
		t.Errorf("e1: %d attempts, result %q; want 1 attempt by the old sink", d.Attempts, d.Result)
	}
	e.ingest("e2", "out")
	e.waitFor("e2", StatusDelivered)
	if got := next.delivered(); len(got) != 1 || got[0].Event.ID != "e2" {
		t.Errorf("the new sink sent %+v, want only e2", got)
	}
	old.mu.Lock()
	closed := old.closed
	old.mu.Unlock()
	if !closed {
		t.Error("the replaced sink was not closed after its send ended")
	}
}
