package httpsink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/sinks/internal/httpclient"
	"bridge/sinks/internal/sinktest"
)

const testSecret = "Bearer SECRET-collector-token-42"

// collector is a stand-in ingest endpoint: it records every request and
// answers 200, or the next scripted answer.
type collector struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recorded
	script   []answer
	count    int // requests, also when countOnly
	keep     bool
}

type recorded struct {
	header http.Header
	body   []byte
}

type answer struct {
	status int
	header map[string]string
	body   string
}

func newCollector(t testing.TB) *collector {
	c := &collector{keep: true}
	c.Server = httptest.NewServer(c)
	t.Cleanup(c.Close)
	return c
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.count++
	if c.keep {
		c.requests = append(c.requests, recorded{header: r.Header.Clone(), body: body})
	}
	a := answer{status: http.StatusOK, body: `{"ok":true}`}
	if len(c.script) > 0 {
		a, c.script = c.script[0], c.script[1:]
	}
	c.mu.Unlock()
	if r.Method != http.MethodPost {
		a = answer{status: http.StatusMethodNotAllowed}
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func (c *collector) Script(as ...answer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.script = append(c.script, as...)
}

func (c *collector) Requests() []recorded {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]recorded(nil), c.requests...)
}

func (c *collector) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

func testEvent(i int) *bridge.Event {
	return &bridge.Event{
		ID:       fmt.Sprintf("evt-%04d", i),
		Source:   "agility",
		Vendor:   "agility",
		Type:     "analysis_done",
		Time:     time.Date(2026, 11, 20, 10, 15, 30, 0, time.UTC),
		Received: time.Date(2026, 11, 20, 10, 15, 31, 250_000_000, time.UTC),
		Severity: "high",
		Title:    "2 failed predictions in myfile.pcap",
		Subject:  "an-9",
		Data:     map[string]any{"analysis_id": "an-9", "count_prediction_failure": int64(2)},
	}
}

func deliveries(n int) []*bridge.Delivery {
	ds := make([]*bridge.Delivery, n)
	for i := range ds {
		ds[i] = &bridge.Delivery{ID: int64(i + 1), Event: testEvent(i), Rule: "all", Sink: "archive", Attempt: 1}
	}
	return ds
}

func newSink(t testing.TB, url string, edit func(*Config), env ...bridge.SinkEnv) *Sink {
	t.Helper()
	cfg := DefaultConfig()
	cfg.URL = url
	cfg.Headers = map[string]bridge.Secret{"Authorization": testSecret, "X-Tenant": "acme"}
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	e := bridge.SinkEnv{Name: "archive", Version: "1.2.3"}
	if len(env) > 0 {
		e = env[0]
	}
	s, err := New(cfg, e)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// wantObjects is the JSON of the deliveries' events, as a JSON array.
func wantObjects(t *testing.T, ds []*bridge.Delivery) any {
	t.Helper()
	evs := make([]*bridge.Event, len(ds))
	for i, d := range ds {
		evs[i] = d.Event
	}
	b, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	return sinktest.JSON(t, b)
}

func TestSingle(t *testing.T) {
	c := newCollector(t)
	s := newSink(t, c.URL+"/ingest", nil)
	ds := deliveries(1)
	if _, err := s.Send(context.Background(), ds[0]); err != nil {
		t.Fatal(err)
	}
	reqs := c.Requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %d, want 1", len(reqs))
	}
	if got, want := sinktest.JSON(t, reqs[0].body), wantObjects(t, ds).([]any)[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("body = %s, want the event's JSON object", reqs[0].body)
	}
	for k, want := range map[string]string{
		"Content-Type":  "application/json",
		"Authorization": testSecret,
		"X-Tenant":      "acme",
		"User-Agent":    "bridge/1.2.3",
	} {
		if got := reqs[0].header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if max, wait := s.BatchLimits(); max != 1 || wait != 0 {
		t.Errorf("BatchLimits without batch = %d, %v; want 1, 0", max, wait)
	}
}

func TestBatch(t *testing.T) {
	c := newCollector(t)
	s := newSink(t, c.URL, func(c *Config) { c.Batch = true })
	ds := deliveries(10)
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), ds), 0)
	reqs := c.Requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %d, want 1", len(reqs))
	}
	if got, want := sinktest.JSON(t, reqs[0].body), wantObjects(t, ds); !reflect.DeepEqual(got, want) {
		t.Errorf("body = %s, want a JSON array of the events", reqs[0].body)
	}
	if got := reqs[0].header.Get("Authorization"); got != testSecret {
		t.Errorf("Authorization = %q", got)
	}
	if max, wait := s.BatchLimits(); max != DefaultBatchSize || wait != DefaultBatchWait {
		t.Errorf("BatchLimits = %d, %v", max, wait)
	}
	// A single delivery with batch on is still an array.
	if _, err := s.Send(context.Background(), ds[0]); err != nil {
		t.Fatal(err)
	}
	if got := c.Requests()[1].body; got[0] != '[' {
		t.Errorf("single delivery with batch on: %s, want an array", got)
	}
}

func TestNDJSON(t *testing.T) {
	c := newCollector(t)
	s := newSink(t, c.URL, func(c *Config) { c.Batch = true })
	ds := deliveries(5)
	for _, i := range []int{1, 3} {
		ds[i].Action = json.RawMessage(`{"format":"ndjson"}`)
	}
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), ds), 0)
	reqs := c.Requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want one per format", len(reqs))
	}
	if got, want := sinktest.JSON(t, reqs[0].body), wantObjects(t, []*bridge.Delivery{ds[0], ds[2], ds[4]}); !reflect.DeepEqual(got, want) {
		t.Errorf("json body = %s", reqs[0].body)
	}
	if ct := reqs[1].header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("ndjson Content-Type = %q", ct)
	}
	lines := strings.SplitAfter(string(reqs[1].body), "\n")
	if len(lines) != 3 || lines[2] != "" {
		t.Fatalf("ndjson body = %q, want two lines each ending in a newline", reqs[1].body)
	}
	want := wantObjects(t, []*bridge.Delivery{ds[1], ds[3]}).([]any)
	for i, l := range lines[:2] {
		if got := sinktest.JSON(t, []byte(l)); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("line %d = %s", i, l)
		}
	}
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		status    int
		header    map[string]string
		body      string
		wantErr   string
		permanent bool
		wait      time.Duration
	}{
		{status: 200},
		{status: 201, body: `{"id":"x"}`},
		{status: 204},
		{status: 400, body: `{"error":"field \"time\" is required"}` + "\n", wantErr: `http: HTTP 400: {"error":"field \"time\" is required"}`, permanent: true},
		{status: 401, wantErr: "http: HTTP 401 Unauthorized", permanent: true},
		{status: 404, body: "no such route", wantErr: "http: HTTP 404: no such route", permanent: true},
		{status: 408, wantErr: "http: HTTP 408 Request Timeout"},
		{status: 429, header: map[string]string{"Retry-After": "7"}, body: "slow down", wantErr: "http: HTTP 429: slow down", wait: 7 * time.Second},
		{status: 500, body: "boom", wantErr: "http: HTTP 500: boom"},
		{status: 503, header: map[string]string{"Retry-After": "120"}, wantErr: "http: HTTP 503 Service Unavailable", wait: 2 * time.Minute},
		{status: 301, header: map[string]string{"Location": "https://elsewhere.example/"}, wantErr: "http: HTTP 301 Moved Permanently", permanent: true},
	} {
		for _, batch := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/batch=%v", tc.status, batch), func(t *testing.T) {
				c := newCollector(t)
				c.Script(answer{status: tc.status, header: tc.header, body: tc.body})
				s := newSink(t, c.URL, func(c *Config) { c.Batch = batch })
				ds := deliveries(1)
				if batch {
					ds = deliveries(3)
				}
				for _, err := range s.SendBatch(context.Background(), ds) {
					sinktest.CheckErr(t, err, tc.wantErr, tc.permanent, tc.wait)
				}
				if got := c.Count(); got != 1 {
					t.Errorf("requests = %d, want 1 (no redirect followed, no retry inside the sink)", got)
				}
			})
		}
	}
}

func TestLongBodyIsTrimmed(t *testing.T) {
	c := newCollector(t)
	c.Script(answer{status: 422, body: strings.Repeat("é", 5000)})
	s := newSink(t, c.URL, nil)
	_, err := s.Send(context.Background(), deliveries(1)[0])
	if err == nil || !bridge.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	msg := strings.TrimPrefix(err.Error(), "http: HTTP 422: ")
	if n := len([]rune(msg)); n != httpclient.MaxMessageLen+1 || !strings.HasSuffix(msg, "…") {
		t.Errorf("message of %d runes: %.40q…", n, msg)
	}
}

func TestBatchSplitAndTooLarge(t *testing.T) {
	c := newCollector(t)
	c.Script(answer{status: 413, body: "request entity too large"})
	s := newSink(t, c.URL, func(c *Config) { c.Batch = true; c.BatchBytes = minBatchBytes })
	ds := deliveries(30)
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), ds), 0)
	var got []any
	for _, r := range c.Requests() {
		if len(r.body) > minBatchBytes {
			t.Errorf("request of %d bytes, over batch_bytes", len(r.body))
		}
		if arr, ok := sinktest.JSON(t, r.body).([]any); ok && len(r.body) > 0 {
			got = append(got, arr...)
		}
	}
	// The refused first request is recorded too; its events come again.
	first := len(sinktest.JSON(t, c.Requests()[0].body).([]any))
	if want := wantObjects(t, ds).([]any); !reflect.DeepEqual(got[first:], want) {
		t.Errorf("events delivered = %d, want %d in order", len(got)-first, len(want))
	}
}

func TestBusyHoldsBackTheRestOfTheBatch(t *testing.T) {
	c := newCollector(t)
	c.Script(answer{status: 503})
	s := newSink(t, c.URL, func(c *Config) { c.Batch = true; c.BatchBytes = minBatchBytes })
	for i, err := range s.SendBatch(context.Background(), deliveries(30)) {
		if err == nil || bridge.IsPermanent(err) {
			t.Errorf("delivery %d: err = %v, want retryable", i, err)
		}
	}
	if got := c.Count(); got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
}

func TestBadDeliveries(t *testing.T) {
	c := newCollector(t)
	s := newSink(t, c.URL, func(c *Config) { c.Batch = true })
	ds := deliveries(3)
	ds[0] = &bridge.Delivery{ID: 1}
	ds[1].Action = json.RawMessage(`{"format":"xml"}`)
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), ds), 2)
}

func TestNoSecretLeaks(t *testing.T) {
	var logs bytes.Buffer
	env := bridge.SinkEnv{Name: "archive", Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad credentials: "+r.Header.Get("Authorization"), http.StatusForbidden)
	}))
	defer echo.Close()
	var out []string
	check := func(what, s string) {
		t.Helper()
		out = append(out, s)
		if strings.Contains(s, "SECRET") {
			t.Errorf("%s shows a secret: %s", what, s)
		}
	}
	s := newSink(t, echo.URL+"/in?api_key=SECRET-in-query", func(c *Config) { c.TLS.InsecureSkipVerify = true }, env)
	_, err := s.Send(context.Background(), deliveries(1)[0])
	check("403 error", fmt.Sprint(err))
	req, err := s.DryRun(context.Background(), deliveries(1)[0])
	check("dry run", req+fmt.Sprint(err))
	echo.Close()
	_, err = s.Send(context.Background(), deliveries(1)[0])
	check("transport error", fmt.Sprint(err))
	// The URL is plain config; the header values are secrets wherever the
	// config is printed.
	printed := fmt.Sprintf("%v %+v %#v", s.cfg, s.cfg, s.cfg)
	j, _ := json.Marshal(s.cfg)
	if strings.Contains(printed+string(j), "SECRET-collector") {
		t.Errorf("config shows a header value: %s %s", printed, j)
	}
	check("logs", logs.String())
	if !strings.Contains(logs.String(), "insecure_skip_verify") {
		t.Errorf("no warning for insecure_skip_verify: %s", logs.String())
	}
	if !strings.Contains(req, "Authorization: <secret>") || !strings.Contains(req, "X-Tenant: <secret>") {
		t.Errorf("dry run = %s, want header names with hidden values", req)
	}
}

func TestDryRun(t *testing.T) {
	c := newCollector(t)
	s := newSink(t, c.URL, func(c *Config) { c.Batch = true })
	got, err := s.DryRun(context.Background(), deliveries(1)[0])
	if err != nil {
		t.Fatal(err)
	}
	want := "POST " + c.URL + " Authorization: <secret> Content-Type: application/json X-Tenant: <secret> [{\"id\":\"evt-0000\""
	if !strings.HasPrefix(got, want) {
		t.Errorf("dry run = %s\nwant prefix %s", got, want)
	}
	if c.Count() != 0 {
		t.Error("dry run sent a request")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "no url", edit: func(c *Config) { c.URL = "" }, want: []string{"url"}},
		{name: "scheme", edit: func(c *Config) { c.URL = "ftp://x" }, want: []string{"url"}},
		{name: "header name", edit: func(c *Config) { c.Headers = map[string]bridge.Secret{"Bad Name": "x"} }, want: []string{"headers.Bad Name"}},
		{name: "reserved header", edit: func(c *Config) { c.Headers = map[string]bridge.Secret{"content-length": "1"} }, want: []string{"headers.content-length"}},
		{name: "header value", edit: func(c *Config) { c.Headers = map[string]bridge.Secret{"X-A": "a\r\nX-B: b"} }, want: []string{"headers.X-A"}},
		{name: "format", edit: func(c *Config) { c.Format = "xml" }, want: []string{"format"}},
		{name: "batch", edit: func(c *Config) { c.BatchSize, c.BatchBytes = -1, 1 }, want: []string{"batch_bytes", "batch_size"}},
		{name: "client key", edit: func(c *Config) { c.TLS.KeyFile = "k.pem" }, want: []string{"tls.cert_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.URL = "https://collector.example/ingest"
			tc.edit(c)
			if got := sinktest.SortedFields(c.Validate()); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems at %v, want %v", got, tc.want)
			}
		})
	}
}

func TestActionValidate(t *testing.T) {
	for format, ok := range map[string]bool{"": true, "json": true, "ndjson": true, "{{ .data.f }}": true, "xml": false} {
		if err := (&Action{Format: format}).Validate(DefaultConfig()); (err == nil) != ok {
			t.Errorf("format %q: err = %v", format, err)
		}
	}
	typ := Type()
	if _, ok := typ.NewAction().(*Action); !ok {
		t.Error("NewAction does not return *Action")
	}
	cfg := typ.NewConfig().(*Config)
	cfg.URL = "http://127.0.0.1:1"
	if _, err := typ.New(cfg, bridge.SinkEnv{}); err != nil {
		t.Errorf("New: %v", err)
	}
}
