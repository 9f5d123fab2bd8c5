package splunk

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/sinks/internal/sinktest"
	"bridge/sinks/splunk/hecfake"
)

const testToken = "11111111-2222-3333-4444-SECRETTOKEN5"

func testEvent(i int) *bridge.Event {
	return &bridge.Event{
		ID:       fmt.Sprintf("evt-%04d", i),
		Source:   "secureagentics",
		Vendor:   "secureagentics",
		Type:     "alert.triggered",
		Time:     time.Date(2026, 11, 20, 10, 15, 30, 123_000_000, time.UTC),
		Received: time.Date(2026, 11, 20, 10, 15, 31, 0, time.UTC),
		Severity: "high",
		Title:    "Disk full on db01",
		Subject:  "al-1",
		Data:     map[string]any{"alert_id": "al-1", "agent_id": "ag-7", "score": int64(95)},
	}
}

func deliveries(n int) []*bridge.Delivery {
	ds := make([]*bridge.Delivery, n)
	for i := range ds {
		ds[i] = &bridge.Delivery{ID: int64(i + 1), Event: testEvent(i), Rule: "all", Sink: "splunk", Attempt: 1}
	}
	return ds
}

// newSink builds a sink against url after applying edit to a valid config.
func newSink(t testing.TB, url string, edit func(*Config), env ...bridge.SinkEnv) *Sink {
	t.Helper()
	cfg := DefaultConfig()
	cfg.URL = url
	cfg.Token = testToken
	cfg.Host = "bridge-01"
	cfg.Index = "security"
	if edit != nil {
		edit(cfg)
	}
	e := bridge.SinkEnv{Name: "splunk", Version: "1.2.3"}
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

func TestGoldenEnvelope(t *testing.T) {
	hec := hecfake.New(testToken)
	defer hec.Close()
	s := newSink(t, hec.URL, nil)

	if _, err := s.Send(context.Background(), deliveries(2)[1]); err != nil {
		t.Fatalf("Send: %v", err)
	}
	evs := hec.Events()
	if len(evs) != 1 {
		t.Fatalf("collector got %d events, want 1", len(evs))
	}
	want, err := os.ReadFile("testdata/envelope.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if got, w := sinktest.JSON(t, evs[0].Raw), sinktest.JSON(t, want); !reflect.DeepEqual(got, w) {
		t.Errorf("envelope:\n got %s\nwant %s", evs[0].Raw, want)
	}
	if got := hec.Authorizations(); !reflect.DeepEqual(got, []string{"Splunk " + testToken}) {
		t.Errorf("Authorization headers = %q", got)
	}
}

func TestEnvelopeEventIsTheEventObject(t *testing.T) {
	hec := hecfake.New(testToken)
	defer hec.Close()
	s := newSink(t, hec.URL, nil)
	ev := testEvent(7)
	if _, err := s.Send(context.Background(), &bridge.Delivery{ID: 1, Event: ev}); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(ev)
	if got := hec.Events()[0].Event; !reflect.DeepEqual(sinktest.JSON(t, got), sinktest.JSON(t, want)) {
		t.Errorf("event = %s, want %s", got, want)
	}
}

func TestEnvelopeOptionalFields(t *testing.T) {
	hec := hecfake.New(testToken)
	defer hec.Close()
	s := newSink(t, hec.URL, func(c *Config) { c.Index = "" })
	ev := testEvent(1)
	ev.Time = time.Date(2026, 11, 20, 10, 15, 30, 0, time.UTC)
	d := &bridge.Delivery{ID: 1, Event: ev, Action: json.RawMessage(`{"sourcetype":"bridge:alert"}`)}
	if _, err := s.Send(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(hec.Events()[0].Raw, &env); err != nil {
		t.Fatal(err)
	}
	if _, ok := env["index"]; ok {
		t.Errorf("index sent without one configured: %s", hec.Events()[0].Raw)
	}
	if got := string(env["time"]); got != "1795169730" {
		t.Errorf("time = %s, want 1795169730", got)
	}
	if got := string(env["sourcetype"]); got != `"bridge:alert"` {
		t.Errorf("sourcetype = %s, want the action's", got)
	}
}

func TestBatchInOneRequest(t *testing.T) {
	hec := hecfake.New(testToken)
	defer hec.Close()
	s := newSink(t, hec.URL, nil)
	ds := deliveries(25)
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), ds), 0)
	if got := hec.Requests(); got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
	var want []string
	for _, d := range ds {
		want = append(want, d.Event.ID)
	}
	if got := hec.EventIDs(); !reflect.DeepEqual(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func TestBatchSplitByBytes(t *testing.T) {
	var (
		mu    sync.Mutex
		sizes []int
	)
	hec := hecfake.New(testToken)
	defer hec.Close()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sizes = append(sizes, int(r.ContentLength))
		mu.Unlock()
		req, _ := http.NewRequest(r.Method, hec.URL+r.URL.Path, r.Body)
		req.Header = r.Header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	}))
	defer proxy.Close()
	s := newSink(t, proxy.URL, func(c *Config) { c.BatchBytes = minBatchBytes })
	ds := deliveries(40)
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), ds), 0)
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) < 2 {
		t.Errorf("requests = %d, want the batch split", len(sizes))
	}
	for _, n := range sizes {
		if n > minBatchBytes {
			t.Errorf("request of %d bytes, over batch_bytes %d", n, minBatchBytes)
		}
	}
	if got := len(hec.EventIDs()); got != 40 {
		t.Errorf("events = %d, want 40", got)
	}
}

func TestAnswers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		answer    *hecfake.Answer // scripted; nil: the collector decides
		token     bridge.Secret
		action    string
		wantErr   string
		permanent bool
		wait      time.Duration // the Retry-After asked for, 0: none
	}{
		{name: "success"},
		{name: "missing token", token: "-", wantErr: "splunk_hec: HTTP 401: Token is required (code 2)", permanent: true},
		{name: "wrong token", token: "wrong", wantErr: "splunk_hec: HTTP 403: Invalid token (code 4)", permanent: true},
		{name: "token disabled", answer: &hecfake.Answer{Status: 403, Code: 1, Text: "Token disabled"},
			wantErr: "splunk_hec: HTTP 403: Token disabled (code 1)", permanent: true},
		{name: "bad index", action: `{"index":"nope"}`, wantErr: "splunk_hec: HTTP 400: Incorrect index (code 7)", permanent: true},
		{name: "bad data", answer: &hecfake.Answer{Status: 400, Code: 6, Text: "Invalid data format"},
			wantErr: "splunk_hec: HTTP 400: Invalid data format (code 6)", permanent: true},
		{name: "event required", answer: &hecfake.Answer{Status: 400, Code: 12, Text: "Event field is required"},
			wantErr: "splunk_hec: HTTP 400: Event field is required (code 12)", permanent: true},
		{name: "busy", answer: ptr(hecfake.Busy("")), wantErr: "splunk_hec: HTTP 503: Server is busy (code 9)"},
		{name: "busy with retry-after", answer: ptr(hecfake.Busy("30")),
			wantErr: "splunk_hec: HTTP 503: Server is busy (code 9)", wait: 30 * time.Second},
		{name: "queues full", answer: &hecfake.Answer{Status: 503, Code: 18, Text: "HEC is unhealthy, queues are full"},
			wantErr: "splunk_hec: HTTP 503: HEC is unhealthy, queues are full (code 18)"},
		{name: "internal error", answer: &hecfake.Answer{Status: 500, Code: 8, Text: "Internal server error"},
			wantErr: "splunk_hec: HTTP 500: Internal server error (code 8)"},
		{name: "too many requests", answer: &hecfake.Answer{Status: 429, Code: 9, Text: "Server is busy", RetryAfter: "2"},
			wantErr: "splunk_hec: HTTP 429: Server is busy (code 9)", wait: 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hec := hecfake.New(testToken, hecfake.AllowIndexes("security"))
			defer hec.Close()
			if tc.answer != nil {
				hec.Script(*tc.answer)
			}
			s := newSink(t, hec.URL, func(c *Config) {
				switch tc.token {
				case "":
				case "-":
					c.Token = ""
				default:
					c.Token = tc.token
				}
			})
			d := deliveries(1)[0]
			d.Action = json.RawMessage(tc.action)
			_, err := s.Send(context.Background(), d)
			sinktest.CheckErr(t, err, tc.wantErr, tc.permanent, tc.wait)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestNonSplunkAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html><body>\n  upstream\n  gone </body></html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	s := newSink(t, srv.URL, nil)
	_, err := s.Send(context.Background(), deliveries(1)[0])
	sinktest.CheckErr(t, err, "splunk_hec: HTTP 502: <html><body> upstream gone </body></html>", false, 0)
}

func TestUnreachableIsRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	s := newSink(t, url+"/?token="+testToken, nil)
	_, err := s.Send(context.Background(), deliveries(1)[0])
	if err == nil || bridge.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), url) {
		t.Errorf("error shows the URL: %v", err)
	}
}

func TestBusyThenRetried(t *testing.T) {
	hec := hecfake.New(testToken)
	defer hec.Close()
	hec.Script(hecfake.Busy("1"))
	s := newSink(t, hec.URL, nil)
	ds := deliveries(3)
	for _, err := range s.SendBatch(context.Background(), ds) {
		sinktest.CheckErr(t, err, "splunk_hec: HTTP 503: Server is busy (code 9)", false, time.Second)
	}
	if n := len(hec.Events()); n != 0 {
		t.Fatalf("busy collector kept %d events", n)
	}
	// The pipeline's next attempt.
	for i, err := range s.SendBatch(context.Background(), ds) {
		if err != nil {
			t.Errorf("retry of delivery %d: %v", i, err)
		}
	}
	if got, want := hec.Requests(), 2; got != want {
		t.Errorf("requests = %d, want %d", got, want)
	}
	if got := len(hec.EventIDs()); got != 3 {
		t.Errorf("events = %d, want 3", got)
	}
}

func TestBusyHoldsBackTheRestOfTheBatch(t *testing.T) {
	hec := hecfake.New(testToken)
	defer hec.Close()
	hec.Script(hecfake.Busy(""))
	s := newSink(t, hec.URL, func(c *Config) { c.BatchBytes = minBatchBytes })
	for i, err := range s.SendBatch(context.Background(), deliveries(40)) {
		if err == nil || bridge.IsPermanent(err) {
			t.Errorf("delivery %d: err = %v, want retryable", i, err)
		}
	}
	if got := hec.Requests(); got != 1 {
		t.Errorf("requests = %d, want 1 (the rest held back while busy)", got)
	}
}

func TestTooLargeIsSplit(t *testing.T) {
	hec := hecfake.New(testToken)
	defer hec.Close()
	hec.Script(hecfake.Answer{Status: 413, Code: 27, Text: "Content too large"})
	s := newSink(t, hec.URL, nil)
	for i, err := range s.SendBatch(context.Background(), deliveries(8)) {
		if err != nil {
			t.Errorf("delivery %d: %v", i, err)
		}
	}
	if got := hec.Requests(); got != 3 {
		t.Errorf("requests = %d, want 3 (one refused, two halves)", got)
	}
	if got := len(hec.EventIDs()); got != 8 {
		t.Errorf("events = %d, want 8", got)
	}
}

func TestInvalidEventNumber(t *testing.T) {
	ids := func(ds []*bridge.Delivery, skip ...int) []string {
		var out []string
		for i, d := range ds {
			if !slices.Contains(skip, i) {
				out = append(out, d.Event.ID)
			}
		}
		return out
	}
	t.Run("refused event fails, the others are resent", func(t *testing.T) {
		hec := hecfake.New(testToken)
		defer hec.Close()
		hec.Script(hecfake.InvalidFormat(2))
		s := newSink(t, hec.URL, nil)
		ds := deliveries(5)
		errs := s.SendBatch(context.Background(), ds)
		for i, err := range errs {
			if i == 2 {
				sinktest.CheckErr(t, err, "splunk_hec: HTTP 400: Invalid data format (code 6)", true, 0)
			} else if err != nil {
				t.Errorf("delivery %d: %v", i, err)
			}
		}
		if got := hec.Requests(); got != 2 {
			t.Errorf("requests = %d, want 2", got)
		}
		if got, want := hec.EventIDs(), ids(ds, 2); !reflect.DeepEqual(got, want) {
			t.Errorf("events = %v, want %v", got, want)
		}
	})
	t.Run("bad index of one action", func(t *testing.T) {
		hec := hecfake.New(testToken, hecfake.AllowIndexes("security"), hecfake.KeepBeforeInvalid())
		defer hec.Close()
		s := newSink(t, hec.URL, nil)
		ds := deliveries(6)
		for _, i := range []int{2, 4} {
			ds[i].Action = json.RawMessage(`{"index":"secret-ops"}`)
		}
		errs := s.SendBatch(context.Background(), ds)
		for i, err := range errs {
			if i == 2 || i == 4 {
				sinktest.CheckErr(t, err, "splunk_hec: HTTP 400: Incorrect index (code 7)", true, 0)
			} else if err != nil {
				t.Errorf("delivery %d: %v", i, err)
			}
		}
		// Both events bound for the refused index fail on the first answer,
		// so one resend carries the rest.
		if got := hec.Requests(); got != 2 {
			t.Errorf("requests = %d, want 2", got)
		}
		// This collector indexed the two events before the refused one, so
		// the resend duplicates them: at least once, never the refused ones.
		got := hec.EventIDs()
		slices.Sort(got)
		got = slices.Compact(got)
		if want := ids(ds, 2, 4); !reflect.DeepEqual(got, want) {
			t.Errorf("distinct events = %v, want %v", got, want)
		}
	})
	t.Run("sink index refused fails the whole request once", func(t *testing.T) {
		hec := hecfake.New(testToken, hecfake.AllowIndexes("main"))
		defer hec.Close()
		s := newSink(t, hec.URL, nil)
		sinktest.CheckBatch(t, s.SendBatch(context.Background(), deliveries(50)), 50)
		if got := hec.Requests(); got != 1 {
			t.Errorf("requests = %d, want 1", got)
		}
	})
	t.Run("resends are bounded", func(t *testing.T) {
		hec := hecfake.New(testToken)
		defer hec.Close()
		for range maxResends + 1 {
			hec.Script(hecfake.InvalidFormat(0))
		}
		s := newSink(t, hec.URL, nil)
		errs := s.SendBatch(context.Background(), deliveries(20))
		for i, err := range errs {
			switch {
			case i <= maxResends:
				sinktest.CheckErr(t, err, "splunk_hec: HTTP 400: Invalid data format (code 6)", true, 0)
			case err == nil || bridge.IsPermanent(err):
				t.Errorf("delivery %d: err = %v, want retryable", i, err)
			}
		}
		if got := hec.Requests(); got != maxResends+1 {
			t.Errorf("requests = %d, want %d", got, maxResends+1)
		}
	})
	t.Run("number out of range fails the request", func(t *testing.T) {
		hec := hecfake.New(testToken)
		defer hec.Close()
		hec.Script(hecfake.InvalidFormat(9))
		s := newSink(t, hec.URL, nil)
		sinktest.CheckBatch(t, s.SendBatch(context.Background(), deliveries(3)), 3)
	})
}

func TestBadDeliveries(t *testing.T) {
	hec := hecfake.New(testToken)
	defer hec.Close()
	s := newSink(t, hec.URL, nil)
	ds := deliveries(3)
	ds[0] = &bridge.Delivery{ID: 9}
	ds[1].Action = json.RawMessage(`{"format":"cef"}`)
	sinktest.CheckBatch(t, s.SendBatch(context.Background(), ds), 2)
}

func TestNoSecretLeaks(t *testing.T) {
	var logs bytes.Buffer
	env := bridge.SinkEnv{Name: "splunk", Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Version: "1"}
	var out []string
	check := func(what, s string) {
		t.Helper()
		out = append(out, s)
		if strings.Contains(s, testToken) {
			t.Errorf("%s shows the token: %s", what, s)
		}
	}

	hec := hecfake.New("another-token", hecfake.AllowIndexes("main"))
	defer hec.Close()
	s := newSink(t, hec.URL+"/?token="+testToken, func(c *Config) { c.TLS.InsecureSkipVerify = true }, env)
	_, err := s.Send(context.Background(), deliveries(1)[0])
	check("403 error", fmt.Sprint(err))
	req, err := s.DryRun(context.Background(), deliveries(1)[0])
	check("dry run", req+fmt.Sprint(err))

	ok := hecfake.New(testToken, hecfake.AllowIndexes("main"))
	defer ok.Close()
	s = newSink(t, ok.URL, nil, env)
	_, err = s.Send(context.Background(), deliveries(1)[0])
	check("400 error", fmt.Sprint(err))
	ok.Close()
	_, err = s.Send(context.Background(), deliveries(1)[0])
	check("transport error", fmt.Sprint(err))

	cfg := s.cfg
	check("config", fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg))
	j, _ := json.Marshal(cfg)
	check("config as JSON", string(j))
	check("logs", logs.String())
	if !strings.Contains(logs.String(), "insecure_skip_verify") {
		t.Errorf("no warning logged for insecure_skip_verify: %s", logs.String())
	}
	if len(out) == 0 || !strings.Contains(strings.Join(out, " "), "<secret>") {
		t.Errorf("dry run does not show the token as <secret>: %v", out)
	}
}

func TestDryRun(t *testing.T) {
	hec := hecfake.New(testToken)
	defer hec.Close()
	s := newSink(t, hec.URL, nil)
	got, err := s.DryRun(context.Background(), deliveries(1)[0])
	if err != nil {
		t.Fatal(err)
	}
	want := "POST " + hec.URL + "/services/collector/event Authorization: Splunk <secret> {"
	if !strings.HasPrefix(got, want) || !strings.Contains(got, `"event":{"id":"evt-0000"`) {
		t.Errorf("dry run = %s", got)
	}
	if hec.Requests() != 0 {
		t.Errorf("dry run sent %d requests", hec.Requests())
	}
}

func TestTLS(t *testing.T) {
	hec := hecfake.New(testToken, hecfake.TLS())
	defer hec.Close()
	dir := t.TempDir()
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hec.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	env := bridge.SinkEnv{BaseDir: dir}

	s := newSink(t, hec.URL, func(c *Config) { c.TLS.CAFile = "ca.pem" }, env)
	if _, err := s.Send(context.Background(), deliveries(1)[0]); err != nil {
		t.Errorf("with ca_file: %v", err)
	}
	s = newSink(t, hec.URL, nil, env)
	if _, err := s.Send(context.Background(), deliveries(1)[0]); err == nil {
		t.Error("an unknown CA was trusted")
	}
	cfg := DefaultConfig()
	cfg.URL, cfg.Token, cfg.TLS.CAFile = hec.URL, testToken, "missing.pem"
	if _, err := New(cfg, env); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Errorf("missing ca_file: err = %v", err)
	}
}

func TestEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"https://splunk.example:8088":                           "https://splunk.example:8088/services/collector/event",
		"https://splunk.example:8088/":                          "https://splunk.example:8088/services/collector/event",
		"https://proxy.example/splunk":                          "https://proxy.example/splunk/services/collector/event",
		"https://splunk.example:8088/services/collector":        "https://splunk.example:8088/services/collector",
		"https://splunk.example:8088/services/collector/event/": "https://splunk.example:8088/services/collector/event/",
	} {
		if got := (&Config{URL: in}).endpoint(); got != want {
			t.Errorf("endpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "empty", edit: func(c *Config) { c.URL, c.Token = "", "" }, want: []string{"token", "url"}},
		{name: "scheme", edit: func(c *Config) { c.URL = "splunk.example:8088" }, want: []string{"url"}},
		{name: "no host", edit: func(c *Config) { c.URL = "https:///x" }, want: []string{"url"}},
		{name: "format", edit: func(c *Config) { c.Format = "cef" }, want: []string{"format"}},
		{name: "batch", edit: func(c *Config) { c.BatchSize, c.BatchBytes = 0, 10 }, want: []string{"batch_bytes", "batch_size"}},
		{name: "client cert", edit: func(c *Config) { c.TLS.CertFile = "c.pem" }, want: []string{"tls.cert_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.URL, c.Token = "https://splunk.example:8088", "t"
			tc.edit(c)
			if got := sinktest.SortedFields(c.Validate()); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems at %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := DefaultConfig()
	if c.Sourcetype != "_json" || c.BatchSize != 500 || c.BatchWait.D() != 500*time.Millisecond || c.BatchBytes != 1<<20 || c.Format != "json" {
		t.Errorf("defaults = %+v", c)
	}
	s := newSink(t, "https://splunk.example:8088", nil)
	if max, wait := s.BatchLimits(); max != 500 || wait != 500*time.Millisecond {
		t.Errorf("BatchLimits = %d, %v", max, wait)
	}
}

func TestActionValidate(t *testing.T) {
	for format, ok := range map[string]bool{"": true, "json": true, "{{ .data.format }}": true, "cef": false} {
		err := (&Action{Format: format}).Validate(DefaultConfig())
		if (err == nil) != ok {
			t.Errorf("format %q: err = %v", format, err)
		}
		if f, _, isField := bridge.AsFieldError(err); err != nil && (!isField || f != "format") {
			t.Errorf("format %q: err = %v, want a FieldError on format", format, err)
		}
	}
	typ := Type()
	if _, ok := typ.NewAction().(*Action); !ok {
		t.Error("NewAction does not return *Action")
	}
	if _, err := typ.New(typ.NewConfig(), bridge.SinkEnv{}); err != nil {
		t.Errorf("New with defaults: %v", err)
	}
}

func TestContextCancelled(t *testing.T) {
	hec := hecfake.New(testToken)
	defer hec.Close()
	s := newSink(t, hec.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, err := range s.SendBatch(ctx, deliveries(2)) {
		if err == nil || bridge.IsPermanent(err) || !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want a retryable context.Canceled", err)
		}
	}
}

// FuzzAnswerError checks that any answer maps to an error of the class its
// status calls for, without panicking.
func FuzzAnswerError(f *testing.F) {
	f.Add(400, []byte(`{"text":"Incorrect index","code":7,"invalid-event-number":3}`))
	f.Add(503, []byte(`{"text":"Server is busy","code":9}`))
	f.Add(502, []byte("<html>bad gateway</html>"))
	f.Add(200, []byte(`{"text":"Success","code":0}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			return
		}
		invalid, err := answerError(status, http.Header{}, body)
		if status >= 200 && status < 300 {
			if err != nil || invalid != -1 {
				t.Fatalf("2xx gave %v, %d", err, invalid)
			}
			return
		}
		if err == nil || !strings.HasPrefix(err.Error(), "splunk_hec: HTTP ") {
			t.Fatalf("status %d gave %v", status, err)
		}
		retry := status == 408 || status == 429 || status >= 500
		if bridge.IsPermanent(err) == retry {
			t.Fatalf("status %d: permanent = %v", status, bridge.IsPermanent(err))
		}
	})
}
