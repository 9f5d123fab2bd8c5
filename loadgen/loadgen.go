// Package loadgen posts signed webhook events at a bridge (or any endpoint)
// and measures how fast they are acknowledged. It backs `bridge bench`.
package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"bridge/bridge"
)

// DefaultTimeout is the per-request timeout when Options.Timeout is zero:
// Secureagentics gives up on a delivery after 10 s.
const DefaultTimeout = 10 * time.Second

// maxFirstErrors is how many distinct error messages a Report keeps.
const maxFirstErrors = 5

// idMarker stands for the unique event id in a payload template.
const idMarker = "LOADGEN-ID-9c41f6e2"

// Options says what to send, where and how fast.
type Options struct {
	URL  string            // where to POST
	Auth bridge.ClientAuth // how to sign each request; Auth.Vendor also picks how ids are made unique
	N    int               // how many events to send
	// Concurrency is the most requests in flight (at least 1). Without a
	// Rate, that many senders post back to back (closed loop).
	Concurrency int
	// Rate, when positive, sends Rate events per second on a fixed schedule
	// (open loop), however slow the answers; latency then counts from each
	// event's scheduled time, so a stalled server shows in the percentiles
	// instead of slowing the load down.
	Rate float64
	// Payload is the event to send, a JSON object. Each copy gets a fresh id:
	// its top-level "id" is replaced, or for Antly, whose ids are hashes of
	// the body, a top-level "bench_id" is added. Nil: a ~1 KB event of the
	// vendor (a Secureagentics alert.triggered unless Auth.Vendor says
	// otherwise).
	Payload []byte
	Timeout time.Duration // per request; DefaultTimeout when zero
	// WatchFile, when set, is a file sink's output (one event JSON object a
	// line) that the run tails to measure end-to-end latency: from each
	// event's send time to its line appearing in the file. The run waits up
	// to WatchWait (30 s when zero) after the last answer for the lines.
	WatchFile string
	WatchWait time.Duration
}

// Report is what a run measured.
type Report struct {
	Sent     int           // requests sent
	Acked    int           // 2xx answers
	Errors   int           // everything else: other statuses and transport errors
	Duration time.Duration // from the first send to the last answer
	// Latency percentiles (nearest rank) over the requests that got an HTTP
	// answer, of any status.
	P50, P99, Max time.Duration
	Statuses      map[int]int // answers by HTTP status; 0 counts transport errors (refused, timed out)
	FirstErrors   []string    // the first few distinct errors, with the server's answer
	// End to end, with Options.WatchFile: how many acknowledged events
	// reached the file, and the latency percentiles from send to line.
	Watched                bool
	Delivered              int
	E2EP50, E2EP99, E2EMax time.Duration
}

// result is one request's outcome.
type result struct {
	sent    bool
	status  int // 0: no HTTP answer
	latency time.Duration
	err     string
	since   time.Time // when the event was sent (or scheduled)
}

// Run sends o.N events and reports what happened. When ctx ends early it
// stops sending and returns what was measured so far with ctx's error.
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.check(); err != nil {
		return Report{}, err
	}
	tmpl, err := newTemplate(o.Payload, o.Auth.Vendor, time.Now())
	if err != nil {
		return Report{}, err
	}
	conc := max(o.Concurrency, 1)
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	runID, err := newRunID()
	if err != nil {
		return Report{}, err
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(conc*2, 100)
	tr.MaxIdleConnsPerHost = conc
	tr.IdleConnTimeout = 90 * time.Second
	defer tr.CloseIdleConnections()
	s := &sender{
		client:  &http.Client{Transport: tr},
		o:       o,
		tmpl:    tmpl,
		runID:   runID,
		timeout: timeout,
	}

	results := make([]result, o.N)
	var w *watcher
	if o.WatchFile != "" {
		if w, err = newWatcher(o.WatchFile, "bench-"+runID+"-"); err != nil {
			return Report{}, err
		}
		defer w.stop()
	}
	start := time.Now()
	var wg sync.WaitGroup
	if o.Rate > 0 {
		s.openLoop(ctx, start, conc, results, &wg)
	} else {
		var next atomic.Int64
		for range conc {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := int(next.Add(1) - 1)
					if i >= o.N {
						return
					}
					results[i] = s.post(ctx, i, time.Now())
				}
			})
		}
	}
	wg.Wait()
	rep := summarize(results, time.Since(start))
	if w != nil {
		w.finish(ctx, &rep, results, o.WatchWait)
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("loadgen: stopped after %d of %d events: %w", rep.Sent, o.N, err)
	}
	return rep, nil
}

func (o Options) check() error {
	var errs []error
	if o.URL == "" {
		errs = append(errs, errors.New("no URL"))
	}
	if o.N <= 0 {
		errs = append(errs, fmt.Errorf("the number of events must be positive, got %d", o.N))
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) {
		errs = append(errs, fmt.Errorf("the rate must be positive or 0 (as fast as possible), got %v", o.Rate))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	return nil
}

// openLoop starts one request per scheduled time, i/Rate seconds after
// start, with at most conc in flight. A request that has to wait for a free
// slot is late, and its latency shows it.
func (s *sender) openLoop(ctx context.Context, start time.Time, conc int, results []result, wg *sync.WaitGroup) {
	slots := make(chan struct{}, conc)
	timer := time.NewTimer(0)
	defer timer.Stop()
	interval := float64(time.Second) / s.o.Rate
	for i := range results {
		at := start.Add(time.Duration(float64(i) * interval))
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-slots }()
			results[i] = s.post(ctx, i, at)
		})
	}
}

// sender posts one event at a time; it is shared by all goroutines of a run.
type sender struct {
	client  *http.Client
	o       Options
	tmpl    [][]byte // the payload split where the id goes
	runID   string
	timeout time.Duration
}

// body returns event i's payload, with its own id.
func (s *sender) body(i int) []byte { return eventBody(s.tmpl, s.runID, i) }

// eventBody is event i of a run: the template with the run's i-th id.
func eventBody(tmpl [][]byte, runID string, i int) []byte {
	id := fmt.Sprintf("bench-%s-%07d", runID, i+1)
	return bytes.Join(tmpl, []byte(id))
}

// Bodies returns the first n payloads a Run with this payload and vendor
// would send (see Options.Payload; nil: the vendor's default event), their
// ids made unique by a new run id, for load tools other than Run: the wrk
// load of scripts/bench-ingest.sh posts the same events as `bridge bench`.
func Bodies(payload []byte, vendor string, n int) ([][]byte, error) {
	return bodies(payload, vendor, n, eventBody)
}

// RandomIDBodies is Bodies with ids in no order, as vendors' UUIDs are
// (Bodies numbers them in turn): the store's (source, id) index then takes
// each event's id on a page of its own, as in production.
func RandomIDBodies(payload []byte, vendor string, n int) ([][]byte, error) {
	return bodies(payload, vendor, n, func(tmpl [][]byte, runID string, i int) []byte {
		h := sha256.Sum256(binary.BigEndian.AppendUint64([]byte(runID), uint64(i)))
		return bytes.Join(tmpl, []byte("bench-"+runID+"-"+hex.EncodeToString(h[:12])))
	})
}

func bodies(payload []byte, vendor string, n int, body func(tmpl [][]byte, runID string, i int) []byte) ([][]byte, error) {
	tmpl, err := newTemplate(payload, vendor, time.Now())
	if err != nil {
		return nil, err
	}
	runID, err := newRunID()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = body(tmpl, runID, i)
	}
	return out, nil
}

// post sends event i; its latency counts from since.
func (s *sender) post(ctx context.Context, i int, since time.Time) result {
	body := s.body(i)
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, s.o.URL, bytes.NewReader(body))
	if err != nil {
		return result{sent: true, err: err.Error()}
	}
	req.Header.Set("User-Agent", "bridge-bench")
	s.o.Auth.Apply(req, body)
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return result{} // the run was stopped: not the server's failure
		}
		return result{sent: true, latency: time.Since(since), err: err.Error()}
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	var answer []byte
	if !ok {
		answer, _ = io.ReadAll(io.LimitReader(resp.Body, 512))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	r := result{sent: true, status: resp.StatusCode, latency: time.Since(since), since: since}
	if !ok {
		r.err = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(strings.ToValidUTF8(string(answer), "")))
	}
	return r
}

// summarize counts results and computes the latency percentiles.
func summarize(results []result, d time.Duration) Report {
	rep := Report{Duration: d, Statuses: map[int]int{}}
	var lat []time.Duration
	seen := map[string]bool{}
	for _, r := range results {
		if !r.sent {
			continue
		}
		rep.Sent++
		rep.Statuses[r.status]++
		if r.status >= 200 && r.status <= 299 {
			rep.Acked++
		} else {
			rep.Errors++
			if len(rep.FirstErrors) < maxFirstErrors && !seen[r.err] {
				seen[r.err] = true
				rep.FirstErrors = append(rep.FirstErrors, r.err)
			}
		}
		if r.status != 0 {
			lat = append(lat, r.latency)
		}
	}
	if len(lat) > 0 {
		sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
		rep.P50 = percentile(lat, 0.50)
		rep.P99 = percentile(lat, 0.99)
		rep.Max = lat[len(lat)-1]
	}
	return rep
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Write prints a human summary: counts, acks per second, latency
// percentiles and errors by status.
func (r Report) Write(w io.Writer) {
	secs := r.Duration.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(r.Acked) / secs
	}
	fmt.Fprintf(w, "sent %d events in %s: %d acked (%.1f acks/s), %d errors\n",
		r.Sent, roundDuration(r.Duration), r.Acked, rate, r.Errors)
	fmt.Fprintf(w, "latency p50 %s, p99 %s, max %s\n", roundDuration(r.P50), roundDuration(r.P99), roundDuration(r.Max))
	if r.Watched {
		fmt.Fprintf(w, "end to end (sent to line in file): %d of %d acked events arrived; p50 %s, p99 %s, max %s\n",
			r.Delivered, r.Acked, roundDuration(r.E2EP50), roundDuration(r.E2EP99), roundDuration(r.E2EMax))
	}
	codes := make([]int, 0, len(r.Statuses))
	for c := range r.Statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		if c == 0 {
			fmt.Fprintf(w, "no answer (transport error): %d\n", r.Statuses[c])
		} else {
			fmt.Fprintf(w, "HTTP %d %s: %d\n", c, http.StatusText(c), r.Statuses[c])
		}
	}
	if len(r.FirstErrors) > 0 {
		fmt.Fprintln(w, "first errors:")
		for _, e := range r.FirstErrors {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

// roundDuration keeps three significant figures or so.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond / 10)
	}
}

func newRunID() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("loadgen: run id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newTemplate decodes the payload (or makes the default one), puts the id
// marker where each event's id goes and splits the encoded payload there.
func newTemplate(payload []byte, vendor string, now time.Time) ([][]byte, error) {
	var m map[string]any
	if payload == nil {
		m = defaultPayload(vendor, now)
	} else {
		var err error
		if m, err = bridge.DecodeObject(payload); err != nil {
			return nil, fmt.Errorf("loadgen: payload: %w", err)
		}
	}
	if vendor == bridge.VendorAntly {
		m["bench_id"] = idMarker
	} else {
		m["id"] = idMarker
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("loadgen: payload: %w", err)
	}
	return bytes.Split(b, []byte(idMarker)), nil
}

// benchText fills the default payloads up to about 1 KB with readable text.
const benchText = "Agent support-triage-bot sent 150 prompts in the last minute, above the 100 prompts/min limit of policy rate-limit-default. " +
	"Recent prompts summarized customer tickets, searched the knowledge base and drafted replies; no external uploads were attempted. " +
	"This event was generated by bridge bench to measure how fast webhooks are acknowledged; it describes no real incident. "

// defaultPayloadSize is about the size of a default payload, in bytes.
const defaultPayloadSize = 1024

// defaultPayload is a realistic event of the vendor, filled up to about
// defaultPayloadSize bytes with a data.notes text.
func defaultPayload(vendor string, now time.Time) map[string]any {
	m := basePayload(vendor, now)
	m["id"] = "bench-00000000-0000000" // as long as the ids to come
	b, _ := json.Marshal(m)
	delete(m, "id")
	if n := defaultPayloadSize - len(b) - len(`,"notes":""`); n > 0 {
		notes := strings.Repeat(benchText, n/len(benchText)+1)[:n]
		m["data"].(map[string]any)["notes"] = strings.TrimSpace(notes)
	}
	return m
}

// basePayload is a realistic event of the vendor, without an id.
func basePayload(vendor string, now time.Time) map[string]any {
	ts := now.UTC().Format(time.RFC3339)
	switch vendor {
	case bridge.VendorAgility:
		return map[string]any{
			"event_name": "analysis_done",
			"created":    now.UTC().Format("2006-01-02T15:04:05.000000"),
			"data": map[string]any{
				"analysis_id": "c16fa458-c596-496d-8ee5-05761c5fb1b0", "service_keys": "volte",
				"file_path": "bench.pcap", "user_id": "00000000-0000-0000-0000-000000000000",
				"final_status": "true", "final_status_ts": now.UTC().Format("2006-01-02T15:04:05.000000"),
				"error_message": "", "count_callflows": 2, "count_results": 2, "unique_service": 1,
				"unique_nes": 16, "unique_protocols": 5, "unique_procedures": 7,
				"count_prediction_success": 0, "count_prediction_failure": 0,
				"count_prediction_warning": 2, "count_prediction_unknown": 0,
				"created_on":          now.UTC().Format("2006-01-02T15:04:05.000000"),
				"updated_on":          now.UTC().Format("2006-01-02T15:04:05.000000"),
				"analyzed_file_paths": []any{"bench.pcap"},
			},
		}
	case bridge.VendorAntly:
		return map[string]any{
			"event":     "profile.Customer:update",
			"timestamp": ts,
			"data": map[string]any{
				"id": "12345", "name": "John Doe", "email": "john.doe@example.com",
				"created_at": "2024-08-21T10:00:00Z", "updated_at": ts,
			},
		}
	}
	return map[string]any{
		"type":      "alert.triggered",
		"timestamp": ts,
		"data": map[string]any{
			"alert_id": "alrt_bench", "agent_id": "agt_bench",
			"details": "Rate limit exceeded: 150 prompts/min",
			"rule":    "rate-limit-default",
		},
	}
}
