package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bridge/bridge"
)

// fakeBridge verifies and normalizes every post as a bridge source would and
// keeps the ids it took; fail, when set, picks an error status for a post.
type fakeBridge struct {
	src  *bridge.Source
	fail func(n int) int
	mu   sync.Mutex
	n    int
	ids  map[string]int
	bad  []string
}

func newFakeBridge(t *testing.T, cfg bridge.SourceConfig, fail func(n int) int) (*fakeBridge, *httptest.Server) {
	t.Helper()
	src, err := bridge.NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeBridge{src: src, fail: fail, ids: map[string]int{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeBridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if err := f.src.Verify(r.Header, r.URL.Query(), body); err != nil {
		f.bad = append(f.bad, "unauthorized")
		http.Error(w, `{"error":"invalid or missing signature or token"}`, http.StatusUnauthorized)
		return
	}
	ev, err := f.src.Normalize(body, time.Now())
	if err != nil {
		f.bad = append(f.bad, err.Error())
		http.Error(w, `{"error":"bad"}`, http.StatusBadRequest)
		return
	}
	if f.fail != nil {
		if code := f.fail(f.n); code != 0 {
			w.WriteHeader(code)
			io.WriteString(w, `{"error":"store unavailable"}`)
			return
		}
	}
	f.ids[ev.ID]++
	io.WriteString(w, `{"id":"`+ev.ID+`","status":"accepted"}`)
}

func checkUnique(t *testing.T, f *fakeBridge, want int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bad) > 0 {
		t.Errorf("refused posts: %q", f.bad[:min(len(f.bad), 3)])
	}
	if len(f.ids) != want {
		t.Errorf("%d distinct ids, want %d", len(f.ids), want)
	}
	for id, n := range f.ids {
		if n != 1 {
			t.Errorf("id %s posted %d times", id, n)
		}
	}
}

func TestClosedLoop(t *testing.T) {
	cfg := bridge.SourceConfig{Name: "sa", Vendor: bridge.VendorSecureagentics, Secret: "bench-secret"}
	f, srv := newFakeBridge(t, cfg, nil)
	rep, err := Run(context.Background(), Options{URL: srv.URL, Auth: bridge.ClientAuthFor(cfg), N: 300, Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 300 || rep.Acked != 300 || rep.Errors != 0 || rep.Statuses[200] != 300 || len(rep.FirstErrors) != 0 {
		t.Errorf("report %+v", rep)
	}
	if !(0 < rep.P50 && rep.P50 <= rep.P99 && rep.P99 <= rep.Max && rep.Max <= rep.Duration) {
		t.Errorf("latencies p50 %v p99 %v max %v duration %v", rep.P50, rep.P99, rep.Max, rep.Duration)
	}
	checkUnique(t, f, 300)
}

func TestDefaultPayloads(t *testing.T) {
	for _, vendor := range []string{bridge.VendorSecureagentics, bridge.VendorAgility, bridge.VendorAntly, ""} {
		t.Run(vendor, func(t *testing.T) {
			v := vendor
			if v == "" {
				v = bridge.VendorSecureagentics
			}
			cfg := bridge.SourceConfig{Name: "s", Vendor: v, Token: "tok", TokenHeader: "X-Token"}
			f, srv := newFakeBridge(t, cfg, nil)
			auth := bridge.ClientAuthFor(cfg)
			auth.Vendor = vendor
			rep, err := Run(context.Background(), Options{URL: srv.URL, Auth: auth, N: 50, Concurrency: 4})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Acked != 50 {
				t.Errorf("report %+v", rep)
			}
			checkUnique(t, f, 50)
			tmpl, err := newTemplate(nil, vendor, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			s := &sender{tmpl: tmpl, runID: "00000000"}
			if n := len(s.body(0)); n < 900 || n > 1100 {
				t.Errorf("default payload is %d bytes, want about 1 KB", n)
			}
		})
	}
}

func TestGivenPayloadKeepsItsFields(t *testing.T) {
	payload, err := os.ReadFile(filepath.Join("..", "examples", "agility", "analysis_done.json"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := newTemplate(payload, bridge.VendorAgility, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := &sender{tmpl: tmpl, runID: "abcd0123"}
	a, b := s.body(0), s.body(1)
	if bytes.Equal(a, b) {
		t.Fatal("two events with the same body")
	}
	ev, err := bridge.DecodeObject(a)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := ev["data"].(map[string]any)
	if ev["id"] != "bench-abcd0123-0000001" || ev["event_name"] != "analysis_done" || data["count_prediction_warning"] != int64(2) {
		t.Errorf("event %v", ev)
	}
	if _, err := newTemplate([]byte(`[1,2]`), "", time.Now()); err == nil {
		t.Error("a payload that is not an object was taken")
	}
}

func TestAntlyBodiesHashDifferently(t *testing.T) {
	payload, err := os.ReadFile(filepath.Join("..", "examples", "antly", "profile.Customer-create.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := bridge.SourceConfig{Name: "antly", Vendor: bridge.VendorAntly, Token: "tok", TokenHeader: "X-Antly-Token"}
	f, srv := newFakeBridge(t, cfg, nil)
	rep, err := Run(context.Background(), Options{URL: srv.URL, Auth: bridge.ClientAuthFor(cfg), N: 40, Concurrency: 4, Payload: payload})
	if err != nil || rep.Acked != 40 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	checkUnique(t, f, 40)
}

func TestErrorsByStatus(t *testing.T) {
	cfg := bridge.SourceConfig{Name: "sa", Vendor: bridge.VendorSecureagentics, Secret: "bench-secret"}
	_, srv := newFakeBridge(t, cfg, func(n int) int {
		switch {
		case n%10 == 0:
			return http.StatusServiceUnavailable
		case n%10 == 5:
			return http.StatusTooManyRequests
		}
		return 0
	})
	rep, err := Run(context.Background(), Options{URL: srv.URL, Auth: bridge.ClientAuthFor(cfg), N: 100, Concurrency: 5})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 100 || rep.Acked != 80 || rep.Errors != 20 || rep.Statuses[200] != 80 || rep.Statuses[503] != 10 || rep.Statuses[429] != 10 {
		t.Errorf("report %+v", rep)
	}
	if len(rep.FirstErrors) != 2 || !strings.Contains(strings.Join(rep.FirstErrors, "|"), `HTTP 503: {"error":"store unavailable"}`) {
		t.Errorf("first errors %q", rep.FirstErrors)
	}

	// A wrong secret: every post is refused.
	rep, err = Run(context.Background(), Options{URL: srv.URL, Auth: bridge.ClientAuth{Vendor: bridge.VendorSecureagentics, Secret: "wrong"}, N: 10})
	if err != nil || rep.Statuses[401] != 10 || rep.Acked != 0 || rep.Errors != 10 {
		t.Errorf("report %+v, %v", rep, err)
	}
	var out bytes.Buffer
	rep.Write(&out)
	for _, want := range []string{"sent 10 events", "0 acked (0.0 acks/s), 10 errors", "latency p50 ", "p99 ", "max ", "HTTP 401 Unauthorized: 10", "first errors:", "invalid or missing signature"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

func TestTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	rep, err := Run(context.Background(), Options{URL: url, N: 5, Concurrency: 2, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 5 || rep.Errors != 5 || rep.Statuses[0] != 5 || len(rep.FirstErrors) == 0 || rep.P99 != 0 {
		t.Errorf("report %+v", rep)
	}
	var out bytes.Buffer
	rep.Write(&out)
	if !strings.Contains(out.String(), "no answer (transport error): 5") {
		t.Errorf("summary:\n%s", out.String())
	}
}

func TestOpenLoopKeepsTheSchedule(t *testing.T) {
	cfg := bridge.SourceConfig{Name: "sa", Vendor: bridge.VendorSecureagentics, Insecure: true}
	f, srv := newFakeBridge(t, cfg, nil)
	rep, err := Run(context.Background(), Options{URL: srv.URL, N: 30, Concurrency: 4, Rate: 300})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Acked != 30 {
		t.Errorf("report %+v", rep)
	}
	// 30 events at 300/s: the last is scheduled 29/300 s after the first.
	if rep.Duration < 96*time.Millisecond {
		t.Errorf("30 events at 300/s took %v", rep.Duration)
	}
	checkUnique(t, f, 30)
}

// TestOpenLoopCountsQueueing checks that latency counts from the scheduled
// send time: with one slot and a server stalling the first request, the
// events scheduled behind it are late and their latency says so.
func TestOpenLoopCountsQueueing(t *testing.T) {
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		once.Do(func() { time.Sleep(200 * time.Millisecond) })
	}))
	defer srv.Close()
	rep, err := Run(context.Background(), Options{URL: srv.URL, N: 10, Concurrency: 1, Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	// Event 2 was due at 10 ms but could start only at about 200 ms.
	if rep.Acked != 10 || rep.P50 < 100*time.Millisecond {
		t.Errorf("p50 %v with a 200 ms stall ahead of most events; report %+v", rep.P50, rep)
	}
}

func TestStopEarly(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rep, err := Run(ctx, Options{URL: srv.URL, N: 1000, Rate: 50, Concurrency: 2})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v", err)
	}
	if rep.Sent == 0 || rep.Sent > 10 || rep.Errors != 0 {
		t.Errorf("report %+v", rep)
	}
}

func TestOptionsChecked(t *testing.T) {
	for _, o := range []Options{{N: 1}, {URL: "http://x", N: 0}, {URL: "http://x", N: 1, Rate: -1}} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 100; i++ {
		v = append(v, time.Duration(i))
	}
	if percentile(v, 0.5) != 50 || percentile(v, 0.99) != 99 || percentile(v[:1], 0.99) != 1 {
		t.Errorf("percentiles %v %v", percentile(v, 0.5), percentile(v, 0.99))
	}
}

// TestRandomIDBodies: the bodies of RandomIDBodies are Bodies' with ids in
// no order, still unique.
func TestRandomIDBodies(t *testing.T) {
	const n = 2000
	bs, err := RandomIDBodies(nil, bridge.VendorSecureagentics, n)
	if err != nil || len(bs) != n {
		t.Fatalf("%d bodies, %v", len(bs), err)
	}
	seen := map[string]bool{}
	ascending := 0
	prev := ""
	for _, b := range bs {
		ev, err := bridge.DecodeObject(b)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := ev["id"].(string)
		if seen[id] || !strings.HasPrefix(id, "bench-") || ev["type"] != "alert.triggered" {
			t.Fatalf("body %s: a repeated or malformed id", b)
		}
		seen[id] = true
		if id > prev {
			ascending++
		}
		prev = id
	}
	// In no order: about half the ids sort after the one before them (all of
	// Bodies' do).
	if ascending < n/4 || ascending > n*3/4 {
		t.Errorf("%d of %d ids sort after the one before them; want about half", ascending, n)
	}
}
