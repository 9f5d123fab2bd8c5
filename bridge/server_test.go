package bridge

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// allRules plans one delivery to sink "out" for every event.
type allRules struct{}

func (allRules) Evaluate(ev *Event) Evaluation {
	return Evaluation{Matched: []string{"all"}, Planned: []Planned{{Rule: "all", Sink: "out", Action: json.RawMessage(`{"text":"x"}`)}}}
}

type testServer struct {
	*httptest.Server
	store   Store
	metrics *Metrics
	bridge  *Server
}

const testSecret = "test-signing-secret"

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	store, err := OpenTestStore(filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	metrics := NewMetrics(store.PendingCounts)
	srv := NewServer(store, metrics, slog.New(slog.NewTextHandler(io.Discard, nil)))
	cfg := &Config{Server: ServerConfig{MaxBodyBytes: 4096}}
	rt := &Runtime{Config: cfg, Sources: map[string]*Source{}, Rules: allRules{}}
	for _, sc := range []SourceConfig{
		{Name: "sa", Vendor: "secureagentics", Secret: testSecret},
		{Name: "ag", Vendor: "agility", Token: "agility-token"},
		{Name: "limited", Vendor: "antly", Token: "t", TokenHeader: "X-Antly-Token", RateLimit: &RateLimit{RPS: 0.01, Burst: 2}},
	} {
		src, err := NewSource(sc)
		if err != nil {
			t.Fatal(err)
		}
		rt.Sources[sc.Name] = src
	}
	srv.SetRuntime(rt)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &testServer{Server: hs, store: store, metrics: metrics, bridge: srv}
}

func sign(body string) string {
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

type answer struct {
	status int
	body   map[string]string
	header http.Header
}

func (ts *testServer) post(t *testing.T, method, path, body string, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer is not a JSON object: %q", raw)
	}
	return answer{resp.StatusCode, out, resp.Header}
}

func (ts *testServer) countEvents(t *testing.T) int {
	t.Helper()
	evs, err := ts.store.Events(context.Background(), EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

const alertBody = `{"id":"evt_1","type":"alert.triggered","timestamp":"2024-01-15T10:30:00Z","data":{"alert_id":"alrt_xyz","agent_id":"agt_1","details":"Rate limit exceeded"}}`

// TestWebhookStatusTable checks every row of the SPEC's status table through
// the real HTTP handler.
func TestWebhookStatusTable(t *testing.T) {
	ts := newTestServer(t)
	sig := func(b string) map[string]string { return map[string]string{"X-Secureagentics-Signature": sign(b)} }
	big := `{"id":"big","type":"x","data":{"pad":"` + strings.Repeat("a", 5000) + `"}}`
	cases := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		field, want              string // a key of the answer and what it must contain
		outcome                  string
	}{
		{"stored", "POST", "/webhooks/sa", alertBody, sig(alertBody), 200, "status", "accepted", OutcomeAccepted},
		{"duplicate", "POST", "/webhooks/sa", alertBody, sig(alertBody), 200, "status", "duplicate", OutcomeDuplicate},
		{"test ping", "POST", "/webhooks/sa", `{"id":"evt_ping","type":"ping"}`, sig(`{"id":"evt_ping","type":"ping"}`), 200, "status", "accepted", OutcomeAccepted},
		{"uppercase hex signature", "POST", "/webhooks/sa", `{"id":"evt_2","type":"agent.error","data":{}}`,
			map[string]string{"X-Secureagentics-Signature": strings.ToUpper(sign(`{"id":"evt_2","type":"agent.error","data":{}}`))}, 200, "status", "accepted", OutcomeAccepted},
		{"not JSON", "POST", "/webhooks/sa", `{"id":`, sig(`{"id":`), 400, "error", "JSON", OutcomeInvalid},
		{"not an object", "POST", "/webhooks/sa", `[1,2]`, sig(`[1,2]`), 400, "error", "object", OutcomeInvalid},
		{"missing type", "POST", "/webhooks/sa", `{"id":"e"}`, sig(`{"id":"e"}`), 400, "error", "type", OutcomeInvalid},
		{"data not an object", "POST", "/webhooks/sa", `{"id":"e","type":"t","data":5}`, sig(`{"id":"e","type":"t","data":5}`), 400, "error", "data", OutcomeInvalid},
		{"signature missing", "POST", "/webhooks/sa", alertBody, nil, 401, "error", "invalid or missing signature or token", OutcomeUnauthorized},
		{"signature wrong", "POST", "/webhooks/sa", alertBody, map[string]string{"X-Secureagentics-Signature": sign("other")}, 401, "error", "invalid or missing signature or token", OutcomeUnauthorized},
		{"token wrong", "POST", "/webhooks/ag", `{"id":"a","event_name":"analysis_done"}`, map[string]string{"Authorization": "Bearer nope"}, 401, "error", "invalid or missing signature or token", OutcomeUnauthorized},
		{"token as bearer", "POST", "/webhooks/ag", `{"id":"a","event_name":"analysis_done"}`, map[string]string{"Authorization": "Bearer agility-token"}, 200, "status", "accepted", OutcomeAccepted},
		{"token in query", "POST", "/webhooks/ag?token=agility-token", `{"id":"b","event_name":"analysis_done"}`, nil, 200, "status", "accepted", OutcomeAccepted},
		{"unknown source", "POST", "/webhooks/nope", alertBody, nil, 404, "error", "unknown source", ""},
		{"wrong method", "GET", "/webhooks/sa", "", nil, 405, "error", "POST", ""},
		{"too large", "POST", "/webhooks/sa", big, sig(big), 413, "error", "larger than 4096", OutcomeTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := ts.post(t, c.method, c.path, c.body, c.header)
			if a.status != c.status {
				t.Fatalf("status %d, want %d (%v)", a.status, c.status, a.body)
			}
			if !strings.Contains(a.body[c.field], c.want) {
				t.Errorf("answer %v: %q does not contain %q", a.body, c.field, c.want)
			}
			if c.status == 405 && a.header.Get("Allow") != "POST" {
				t.Errorf("405 without Allow: POST")
			}
		})
	}
	// accepted: evt_1, evt_ping, evt_2, a, b.
	if n := ts.countEvents(t); n != 5 {
		t.Errorf("%d events stored, want 5: bad input must store nothing", n)
	}
	for _, c := range []struct {
		source, outcome string
		want            float64
	}{
		{"sa", OutcomeAccepted, 3}, {"sa", OutcomeDuplicate, 1}, {"sa", OutcomeInvalid, 4},
		{"sa", OutcomeUnauthorized, 2}, {"sa", OutcomeTooLarge, 1}, {"ag", OutcomeUnauthorized, 1},
	} {
		if got := testutil.ToFloat64(ts.metrics.Webhooks.WithLabelValues(c.source, c.outcome)); got != c.want {
			t.Errorf("bridge_webhooks_total{source=%s,outcome=%s} = %v, want %v", c.source, c.outcome, got, c.want)
		}
	}
	// The accepted event's answer carries its id, and its delivery is pending.
	ds, err := ts.store.Deliveries(context.Background(), DeliveryFilter{EventID: "evt_1"})
	if err != nil || len(ds) != 1 || ds[0].Status != StatusPending {
		t.Errorf("deliveries of evt_1: %+v %v", ds, err)
	}
}

func TestWebhookRateLimit(t *testing.T) {
	ts := newTestServer(t)
	h := map[string]string{"X-Antly-Token": "t"}
	for i := 0; i < 2; i++ {
		if a := ts.post(t, "POST", "/webhooks/limited", `{"event":"profile.Customer:create","data":{"id":"`+string(rune('a'+i))+`"}}`, h); a.status != 200 {
			t.Fatalf("request %d within the burst: %d %v", i, a.status, a.body)
		}
	}
	// Forged requests are refused before the limit and do not use it up.
	for i := 0; i < 3; i++ {
		if a := ts.post(t, "POST", "/webhooks/limited", `{"event":"x"}`, map[string]string{"X-Antly-Token": "forged"}); a.status != 401 {
			t.Fatalf("forged request: %d", a.status)
		}
	}
	a := ts.post(t, "POST", "/webhooks/limited", `{"event":"profile.Customer:create","data":{"id":"c"}}`, h)
	if a.status != 429 || a.header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: status %d, Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	if got := testutil.ToFloat64(ts.metrics.Webhooks.WithLabelValues("limited", OutcomeRateLimited)); got != 1 {
		t.Errorf("rate_limited count %v", got)
	}
}

// TestWebhookStoreFailure checks that a store that cannot take the event
// answers 503 and keeps nothing of it.
func TestWebhookStoreFailure(t *testing.T) {
	ts := newTestServer(t)
	// The event row would insert, its delivery cannot: nothing may remain.
	if err := ExecTestStore(ts.store, "DROP TABLE deliveries"); err != nil {
		t.Fatal(err)
	}
	a := ts.post(t, "POST", "/webhooks/sa", alertBody, map[string]string{"X-Secureagentics-Signature": sign(alertBody)})
	if a.status != 503 {
		t.Fatalf("status %d, want 503: %v", a.status, a.body)
	}
	if n := ts.countEvents(t); n != 0 {
		t.Errorf("%d events stored after a failed write: half-stored", n)
	}
	ts.store.Close()
	a = ts.post(t, "POST", "/webhooks/sa", alertBody, map[string]string{"X-Secureagentics-Signature": sign(alertBody)})
	if a.status != 503 {
		t.Fatalf("closed store: status %d, want 503", a.status)
	}
}

func TestHealthAndReady(t *testing.T) {
	ts := newTestServer(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := ts.Client().Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	resp, err := ts.Client().Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "bridge_config_last_reload_successful") {
		t.Errorf("metrics lack bridge_config_last_reload_successful")
	}
	ts.metrics.SetSinks([]string{"quiet"})
	if got := testutil.CollectAndCount(ts.metrics.Registry, "bridge_delivery_pending"); got != 1 {
		t.Errorf("%d bridge_delivery_pending series, want 1: a sink with nothing pending reads 0", got)
	}
	ts.store.Close()
	ts.bridge.readyTTL = 0
	resp, err = ts.Client().Get(ts.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("readyz with a closed store: %d, want 503", resp.StatusCode)
	}
}

// TestReadyzFollowsLastWrite fills the database until a webhook is refused
// (a low max_page_count makes SQLite answer "database or disk is full", as a
// full disk does): /readyz must fail at once, with the reason, and stay
// failing while the database is full; once there is room again it must
// recover by its own probe, with no webhook arriving, and webhooks must be
// accepted again.
func TestReadyzFollowsLastWrite(t *testing.T) {
	ts := newTestServer(t)
	clock := &fakeClock{t: time.Now()}
	ts.bridge.now = clock.Now
	sig := func(b string) map[string]string { return map[string]string{"X-Secureagentics-Signature": sign(b)} }
	if a := ts.post(t, "GET", "/readyz", "", nil); a.status != 200 {
		t.Fatalf("readyz before: %d %v", a.status, a.body)
	}
	// No more pages than the database has now.
	if err := ExecTestStore(ts.store, "PRAGMA max_page_count = 1"); err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 3000)
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("100 events of 3 KB stored in a full database")
		}
		body := fmt.Sprintf(`{"id":"fill_%d","type":"alert.triggered","data":{"pad":"%s"}}`, i, pad)
		a := ts.post(t, "POST", "/webhooks/sa", body, sig(body))
		if a.status == 503 {
			if a.body["error"] != "cannot store the event now, retry later" {
				t.Errorf("webhook 503: %v", a.body)
			}
			break
		}
		if a.status != 200 {
			t.Fatalf("webhook %d: %d %v", i, a.status, a.body)
		}
	}
	notReady := func(when string) {
		t.Helper()
		a := ts.post(t, "GET", "/readyz", "", nil)
		if e := a.body["error"]; a.status != 503 || !strings.HasPrefix(e, "store not writable: last write failed ") || !strings.Contains(e, "database or disk is full") {
			t.Fatalf("readyz %s: %d %v; want 503 with the store's last write error", when, a.status, a.body)
		}
	}
	notReady("right after the refused webhook")
	// A second later the probe finds the database still full.
	clock.Add(1100 * time.Millisecond)
	notReady("after a probe of the full database")
	// Room again, and no webhook: the answer stands until the next probe
	// (at most one a second), which finds the room.
	if err := ExecTestStore(ts.store, "PRAGMA max_page_count = 1000000"); err != nil {
		t.Fatal(err)
	}
	notReady("before the next probe")
	clock.Add(1100 * time.Millisecond)
	if a := ts.post(t, "GET", "/readyz", "", nil); a.status != 200 || a.body["status"] != "ready" {
		t.Fatalf("readyz after the disk has room again: %d %v; want 200 with no webhook needed", a.status, a.body)
	}
	body := `{"id":"after","type":"alert.triggered","data":{"pad":"` + pad + `"}}`
	if a := ts.post(t, "POST", "/webhooks/sa", body, sig(body)); a.status != 200 || a.body["status"] != "accepted" {
		t.Fatalf("webhook after recovery: %d %v", a.status, a.body)
	}
}
