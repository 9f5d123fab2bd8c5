package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/sinks/internal/sinktest"
)

func testEvent(id string, data map[string]any) *bridge.Event {
	return &bridge.Event{
		ID:       id,
		Source:   "antly",
		Vendor:   "antly",
		Type:     "profile.Customer:create",
		Time:     time.Date(2026, 11, 20, 10, 15, 30, 0, time.UTC),
		Received: time.Date(2026, 11, 20, 10, 15, 30, 500_000_000, time.UTC),
		Severity: "info",
		Title:    "Customer created",
		Subject:  "c-1",
		Data:     data,
	}
}

func deliveries(prefix string, n int) []*bridge.Delivery {
	ds := make([]*bridge.Delivery, n)
	for i := range ds {
		ds[i] = &bridge.Delivery{ID: int64(i + 1), Event: testEvent(fmt.Sprintf("%s-%04d", prefix, i), map[string]any{"id": "c-1", "n": int64(i)})}
	}
	return ds
}

// newSink builds a sink writing below a fresh directory and counts fsyncs.
func newSink(t testing.TB, path string) (*Sink, *atomic.Int64) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Path = path
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, bridge.SinkEnv{Name: "local", BaseDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var syncs atomic.Int64
	s.sync = func(f *os.File) error { syncs.Add(1); return f.Sync() }
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, &syncs
}

// readLines returns the file's lines; each must end in a newline.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("file does not end in a newline: %q", b[max(0, len(b)-40):])
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestLinesAreTheEvents(t *testing.T) {
	s, syncs := newSink(t, "data/events.jsonl")
	ds := deliveries("a", 5)
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), ds), 0)
	lines := readLines(t, s.path)
	if len(lines) != len(ds) {
		t.Fatalf("lines = %d, want %d", len(lines), len(ds))
	}
	for i, l := range lines {
		want, _ := json.Marshal(ds[i].Event)
		got := sinktest.JSON(t, []byte(l))
		if _, ok := got.(map[string]any); !ok {
			t.Errorf("line %d is not a JSON object: %s", i, l)
		}
		if !reflect.DeepEqual(got, sinktest.JSON(t, want)) {
			t.Errorf("line %d = %s, want %s", i, l, want)
		}
		var back bridge.Event
		if err := json.Unmarshal([]byte(l), &back); err != nil || back.ID != ds[i].Event.ID || !back.Time.Equal(ds[i].Event.Time) {
			t.Errorf("line %d does not decode back to the event: %v", i, err)
		}
	}
	if got := syncs.Load(); got != 1 {
		t.Errorf("fsyncs = %d, want 1 for one batch", got)
	}
}

func TestOneSyncPerBatch(t *testing.T) {
	s, syncs := newSink(t, "events.jsonl")
	for b := range 3 {
		sinktest.CheckBatch(t, s.SendBatch(context.Background(), deliveries(fmt.Sprint(b), 10)), 0)
	}
	if _, err := s.Send(context.Background(), deliveries("one", 1)[0]); err != nil {
		t.Fatal(err)
	}
	if got := syncs.Load(); got != 4 {
		t.Errorf("fsyncs = %d, want 4 (one per batch)", got)
	}
	if got := len(readLines(t, s.path)); got != 31 {
		t.Errorf("lines = %d, want 31", got)
	}
	if max, wait := s.BatchLimits(); max != DefaultBatchSize || wait != 0 {
		t.Errorf("BatchLimits = %d, %v; want %d, 0", max, wait, DefaultBatchSize)
	}
}

func TestConcurrentBatchesDoNotInterleave(t *testing.T) {
	s, syncs := newSink(t, "events.jsonl")
	const workers, batches, size = 8, 10, 10
	big := strings.Repeat("x", 5<<10) // lines larger than a page
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				ds := deliveries(fmt.Sprintf("w%d-b%02d", w, b), size)
				for _, d := range ds {
					d.Event.Data = map[string]any{"pad": big}
				}
				sinktest.CheckBatch(t, s.SendBatch(context.Background(), ds), 0)
			}
		})
	}
	wg.Wait()
	lines := readLines(t, s.path)
	if len(lines) != workers*batches*size {
		t.Fatalf("lines = %d, want %d", len(lines), workers*batches*size)
	}
	// Every batch's lines are consecutive and in order.
	for i := 0; i < len(lines); i += size {
		var first struct{ ID string }
		if err := json.Unmarshal([]byte(lines[i]), &first); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		batch, _, _ := strings.Cut(first.ID[strings.Index(first.ID, "-")+1:], "-")
		prefix := first.ID[:strings.LastIndex(first.ID, "-")]
		for j := range size {
			var ev struct{ ID string }
			if err := json.Unmarshal([]byte(lines[i+j]), &ev); err != nil {
				t.Fatalf("line %d: %v", i+j, err)
			}
			if want := fmt.Sprintf("%s-%04d", prefix, j); ev.ID != want {
				t.Fatalf("line %d is %s, want %s (batch %s interleaved)", i+j, ev.ID, want, batch)
			}
		}
	}
	// Concurrent batches share fsyncs: never more than one per batch.
	if got := syncs.Load(); got < 1 || got > workers*batches {
		t.Errorf("fsyncs = %d, want between 1 and %d", got, workers*batches)
	}
}

// TestBatchesShareAnFsync holds one fsync while two more batches are
// written: one further fsync covers both, and none returns before its lines
// are synced.
func TestBatchesShareAnFsync(t *testing.T) {
	s, _ := newSink(t, "events.jsonl")
	var mu sync.Mutex
	var synced []int64 // file size at each fsync
	release := make(chan struct{})
	first := true
	s.sync = func(f *os.File) error {
		mu.Lock()
		block := first
		first = false
		mu.Unlock()
		if block {
			<-release
		}
		st, err := f.Stat()
		if err != nil {
			return err
		}
		mu.Lock()
		synced = append(synced, st.Size())
		mu.Unlock()
		return f.Sync()
	}
	done := make(chan []error, 3)
	go func() { done <- s.SendBatch(context.Background(), deliveries("a", 2)) }()
	// Wait until batch a holds the fsync, then write b and c behind it.
	for {
		s.mu.Lock()
		written := s.end > 0
		s.mu.Unlock()
		if written {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	go func() { done <- s.SendBatch(context.Background(), deliveries("b", 2)) }()
	go func() { done <- s.SendBatch(context.Background(), deliveries("c", 2)) }()
	for {
		s.mu.Lock()
		n := s.end
		s.mu.Unlock()
		if fi, err := os.Stat(s.path); err == nil && fi.Size() == n && len(readLines(t, s.path)) == 6 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("a batch returned before its fsync")
	default:
	}
	close(release)
	for range 3 {
		sinktest.CheckBatch(t, <-done, 0)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(synced) != 2 {
		t.Fatalf("fsyncs at sizes %v, want 2 (a alone, then b and c together)", synced)
	}
	if fi, _ := os.Stat(s.path); synced[1] != fi.Size() {
		t.Errorf("the second fsync covered %d bytes of %d", synced[1], fi.Size())
	}
}

func TestCreatesParentsWithPrivateMode(t *testing.T) {
	s, _ := newSink(t, "a/b/events.jsonl")
	if _, err := s.Send(context.Background(), deliveries("a", 1)[0]); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != fileMode {
		t.Errorf("mode = %v, want %v", fi.Mode().Perm(), os.FileMode(fileMode))
	}
	if !strings.HasSuffix(s.path, filepath.Join("a", "b", "events.jsonl")) || !filepath.IsAbs(s.path) {
		t.Errorf("path = %s, want it resolved against the config's directory", s.path)
	}
}

func TestAppendsToExistingFile(t *testing.T) {
	s, _ := newSink(t, "events.jsonl")
	if err := os.WriteFile(s.path, []byte(`{"old":true}`+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), deliveries("a", 2)), 0)
	lines := readLines(t, s.path)
	if len(lines) != 3 || lines[0] != `{"old":true}` {
		t.Errorf("lines = %q", lines)
	}
	if fi, _ := os.Stat(s.path); fi.Mode().Perm() != 0o640 {
		t.Errorf("existing file's mode changed to %v", fi.Mode().Perm())
	}
}

func TestFailedSyncIsUndoneAndRetried(t *testing.T) {
	s, _ := newSink(t, "events.jsonl")
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), deliveries("a", 2)), 0)
	s.sync = func(*os.File) error { return errors.New("input/output error") }
	for i, err := range s.SendBatch(context.Background(), deliveries("b", 3)) {
		if err == nil || bridge.IsPermanent(err) {
			t.Errorf("delivery %d: err = %v, want retryable", i, err)
		}
	}
	if got := len(readLines(t, s.path)); got != 2 {
		t.Errorf("lines after a failed sync = %d, want the batch cut back to 2", got)
	}
	s.sync = (*os.File).Sync
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), deliveries("b", 3)), 0)
	if got := len(readLines(t, s.path)); got != 5 {
		t.Errorf("lines after the retry = %d, want 5", got)
	}
}

func TestWriteErrorIsRetried(t *testing.T) {
	s, _ := newSink(t, "events.jsonl")
	if err := os.Mkdir(s.path, 0o700); err != nil { // the path cannot be opened as a file
		t.Fatal(err)
	}
	_, err := s.Send(context.Background(), deliveries("a", 1)[0])
	if err == nil || bridge.IsPermanent(err) || !strings.HasPrefix(err.Error(), "file: ") {
		t.Fatalf("err = %v, want a retryable file error", err)
	}
	if err := os.Remove(s.path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(context.Background(), deliveries("a", 1)[0]); err != nil {
		t.Errorf("after the cause was fixed: %v", err)
	}
}

func TestRotation(t *testing.T) {
	s, _ := newSink(t, "events.jsonl")
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), deliveries("a", 2)), 0)
	if err := os.Rename(s.path, s.path+".1"); err != nil {
		t.Fatal(err)
	}
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), deliveries("b", 1)), 0)
	if got := len(readLines(t, s.path+".1")); got != 2 {
		t.Errorf("rotated file has %d lines, want 2", got)
	}
	if got := readLines(t, s.path); len(got) != 1 || !strings.Contains(got[0], `"b-0000"`) {
		t.Errorf("new file = %q, want the batch after rotation", got)
	}
}

func TestBadDeliveries(t *testing.T) {
	s, syncs := newSink(t, "events.jsonl")
	ds := deliveries("a", 3)
	ds[0] = &bridge.Delivery{ID: 1}
	ds[1].Action = json.RawMessage(`{"format":"cef"}`)
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), ds), 2)
	if got := len(readLines(t, s.path)); got != 1 {
		t.Errorf("lines = %d, want 1", got)
	}
	s.SendBatch(context.Background(), ds[:2])
	if got := syncs.Load(); got != 1 {
		t.Errorf("fsyncs = %d, want none for a batch with nothing to write", got)
	}
}

func TestClose(t *testing.T) {
	s, _ := newSink(t, "events.jsonl")
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), deliveries("a", 1)), 0)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Send(context.Background(), deliveries("b", 1)[0]); !errors.Is(err, errClosed) {
		t.Errorf("Send after Close: err = %v", err)
	}
}

func TestDryRun(t *testing.T) {
	s, _ := newSink(t, "sub/events.jsonl")
	got, err := s.DryRun(context.Background(), deliveries("a", 1)[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := "append to " + s.path + `: {"id":"a-0000"`; !strings.HasPrefix(got, want) {
		t.Errorf("dry run = %s", got)
	}
	if _, err := os.Stat(filepath.Dir(s.path)); !os.IsNotExist(err) {
		t.Errorf("dry run created the directory: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "no path", edit: func(c *Config) { c.Path = "" }, want: []string{"path"}},
		{name: "directory", edit: func(c *Config) { c.Path = "data/" }, want: []string{"path"}},
		{name: "format", edit: func(c *Config) { c.Format = "cef" }, want: []string{"format"}},
		{name: "batch", edit: func(c *Config) { c.BatchSize = 0 }, want: []string{"batch_size"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Path = "data/events.jsonl"
			tc.edit(c)
			if got := sinktest.SortedFields(c.Validate()); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems at %v, want %v", got, tc.want)
			}
		})
	}
	for format, ok := range map[string]bool{"": true, "json": true, "{{ .x }}": true, "cef": false} {
		if err := (&Action{Format: format}).Validate(DefaultConfig()); (err == nil) != ok {
			t.Errorf("action format %q: err = %v", format, err)
		}
	}
	typ := Type()
	cfg := typ.NewConfig().(*Config)
	cfg.Path = "x.jsonl"
	if _, err := typ.New(cfg, bridge.SinkEnv{BaseDir: t.TempDir()}); err != nil {
		t.Errorf("New: %v", err)
	}
	if _, ok := typ.NewAction().(*Action); !ok {
		t.Error("NewAction does not return *Action")
	}
}

// BenchmarkSendBatch measures events per second appended with a real fsync
// per batch, one SendBatch at a time (conc=1) or four at once (conc=4).
// One op is one event.
func BenchmarkSendBatch(b *testing.B) {
	for _, size := range []int{1, 100, 1000} {
		for _, conc := range []int{1, 4} {
			b.Run(fmt.Sprintf("batch=%d/conc=%d", size, conc), func(b *testing.B) {
				s, syncs := newSink(b, "events.jsonl")
				ds := deliveries("bench", size)
				sinktest.DriveBatches(b, s, ds, size, conc)
				b.ReportMetric(float64(syncs.Load())*10000/float64(b.N), "fsyncs/10k")
			})
		}
	}
}

// TestSyncInterval checks that fsyncs are spaced by sync_interval and that
// batches written meanwhile share one.
func TestSyncInterval(t *testing.T) {
	s, syncs := newSink(t, "events.jsonl")
	s.interval = 100 * time.Millisecond
	start := time.Now()
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), deliveries("a", 1)), 0)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			sinktest.CheckBatch(t, s.SendBatch(context.Background(), deliveries(fmt.Sprintf("b%d", i), 1)), 0)
		})
	}
	wg.Wait()
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("two fsyncs within %s, want them 100ms apart", el)
	}
	if n := syncs.Load(); n < 2 || n > 3 {
		t.Errorf("%d fsyncs for a batch and 5 concurrent ones, want 2 (or 3 if one came late)", n)
	}
	if got := len(readLines(t, s.path)); got != 6 {
		t.Errorf("%d lines, want 6", got)
	}
}
