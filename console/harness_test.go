package console

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"bridge/bridge"
	"bridge/bridge/store/postgres"
	"bridge/bridge/store/postgres/pgtest"
	"bridge/bridge/store/sqlite"
	"bridge/rules"
	"bridge/sinks/file"
	"bridge/sinks/jira"
	"bridge/sinks/slack"
	"bridge/sinks/splunk"
)

// Test users. Their hashes use bcrypt's lowest cost, so tests stay fast.
const (
	testUser     = "admin"
	testPassword = "correct horse battery staple"
	otherUser    = "viewer"
	otherPass    = "another password"
	jiraSite     = "https://jira.example.net"
)

const testConfig = `
server:
  listen: "127.0.0.1:0"
  max_body_bytes: 65536
sources:
  - name: secureagentics
    vendor: secureagentics
    secret: test-secret
  - name: agility
    vendor: agility
    token: test-token
sinks:
  - name: ops-jira
    type: jira
    url: ` + jiraSite + `
    user: bot@example.net
    token: test-jira-token
    project: OPS
  - name: archive
    type: file
    path: archive.jsonl
rules:
  - name: archive-everything
    when: 'true'
    actions:
      - sink: archive
  - name: violations-to-jira
    when: type == "policy.violated"
    actions:
      - sink: ops-jira
        summary: '{{ .title }}'
        description: 'agent {{ .data.agent_id }}'
  - name: never
    when: severity == "critical" && type == "nothing"
    actions:
      - sink: archive
`

// env is a console over a real store, with the config above loaded.
type env struct {
	t       testing.TB
	store   bridge.Store
	rt      *bridge.Runtime
	set     *rules.Set
	metrics *bridge.Metrics
	stats   *bridge.WebhookStats
	h       http.Handler
	wakes   int
}

// stores are the stores every console test runs on: SQLite always,
// PostgreSQL when BRIDGE_TEST_POSTGRES names a server.
var stores = []struct {
	name string
	open func(t *testing.T) bridge.Store
}{
	{"sqlite", func(t *testing.T) bridge.Store {
		st, err := sqlite.Open(bridge.StoreConfig{Path: filepath.Join(t.TempDir(), "bridge.db"), Sync: "normal"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}},
	{"postgres", func(t *testing.T) bridge.Store {
		u := pgtest.TestDatabase(t)
		st, err := postgres.Open(context.Background(), postgres.Config{URL: u, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}},
}

// eachStore runs f on each store, as a subtest.
func eachStore(t *testing.T, f func(t *testing.T, e *env)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			f(t, newEnv(t, s.open(t)))
		})
	}
}

func newEnv(t testing.TB, st bridge.Store) *env { return newEnvWith(t, st, testConfig) }

// newEnvWith is newEnv with another config.
func newEnvWith(t testing.TB, st bridge.Store, config string) *env {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	types := map[string]bridge.SinkType{"jira": jira.Type(), "file": file.Type(), "slack": slack.Type(), "splunk_hec": splunk.Type()}
	cfg, err := bridge.Load(path, types)
	if err != nil {
		t.Fatal(err)
	}
	infos := map[string]rules.SinkInfo{}
	for _, s := range cfg.Sinks {
		typ := types[s.Type]
		infos[s.Name] = rules.SinkInfo{Type: &typ, Config: s.Config}
	}
	set, ps := rules.Compile(path, cfg.Rules, infos)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	rt := &bridge.Runtime{Config: cfg, Sources: map[string]*bridge.Source{}, Rules: set}
	for _, sc := range cfg.Sources {
		src, err := bridge.NewSource(sc)
		if err != nil {
			t.Fatal(err)
		}
		rt.Sources[sc.Name] = src
	}
	e := &env{t: t, store: st, rt: rt, set: set, metrics: bridge.NewMetrics(nil), stats: bridge.NewWebhookStats()}
	e.metrics.Reloaded(time.Now().Add(-time.Minute), nil)
	e.h, err = New(Options{
		Store:    st,
		Runtime:  func() *bridge.Runtime { return rt },
		Metrics:  e.metrics,
		Webhooks: e.stats,
		Users:    map[string]bridge.Secret{testUser: hash(t, testPassword), otherUser: hash(t, otherPass)},
		Version:  "1.2.3-test",
		JiraURLs: func(cfg *bridge.Config) map[string]string {
			out := map[string]string{}
			for _, s := range cfg.Sinks {
				if jc, ok := s.Config.(*jira.Config); ok {
					out[s.Name] = jc.URL
				}
			}
			return out
		},
		Wake: func(map[string]bool) { e.wakes++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func hash(t testing.TB, pw string) bridge.Secret {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return bridge.Secret(h)
}

// secureagentics is a Secureagentics webhook body.
// Its markup characters are written as they are, not as \u003c: the raw
// body the console shows holds them literally.
func secureagentics(id, typ, details, agent, alert string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(map[string]any{
		"id": id, "type": typ, "timestamp": "2024-01-15T11:02:47Z",
		"data": map[string]any{"details": details, "agent_id": agent, "alert_id": alert, "target": "javascript:alert(1)"},
	})
	return bytes.TrimSpace(buf.Bytes())
}

// ingest stores a webhook as the server would: normalized, evaluated,
// stored with its planned deliveries; the rules' matches are counted.
func (e *env) ingest(source string, body []byte, received time.Time) *bridge.Event {
	e.t.Helper()
	ev, err := e.rt.Sources[source].Normalize(body, received)
	if err != nil {
		e.t.Fatalf("normalize: %v", err)
	}
	eval := e.set.Evaluate(ev)
	dup, err := e.store.Ingest(context.Background(), ev, body, eval.Planned)
	if err != nil || dup {
		e.t.Fatalf("ingest %s: dup %v, %v", ev.ID, dup, err)
	}
	for _, r := range eval.Matched {
		e.metrics.RuleMatches.WithLabelValues(r).Inc()
	}
	e.stats.Add(source, bridge.OutcomeAccepted, received)
	return ev
}

// settle attempts every due delivery of sink once, with the outcome out
// gives it.
func (e *env) settle(sink string, out func(d *bridge.DeliveryRecord) bridge.Outcome) {
	e.t.Helper()
	e.settleSome(sink, nil, out)
}

// settleSome is settle, leaving the deliveries in keep as they are.
func (e *env) settleSome(sink string, keep map[int64]bool, out func(*bridge.DeliveryRecord) bridge.Outcome) {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now().Add(time.Hour) // every delivery is due
	for {
		ids, _, _, err := e.store.Due(ctx, sink, now, 100, keep)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(ids) == 0 {
			return
		}
		_, recs, err := e.store.Claim(ctx, ids, now)
		if err != nil {
			e.t.Fatal(err)
		}
		var outs []bridge.Outcome
		for _, r := range recs {
			o := out(r)
			o.ID, o.Chained = r.ID, r.ActionID != "" // as the pipeline records it
			if o.At.IsZero() {
				o.At = time.Now()
			}
			outs = append(outs, o)
		}
		if err := e.store.Record(ctx, outs); err != nil {
			e.t.Fatal(err)
		}
	}
}

func delivered(result string) func(*bridge.DeliveryRecord) bridge.Outcome {
	return func(*bridge.DeliveryRecord) bridge.Outcome {
		return bridge.Outcome{Status: bridge.StatusDelivered, Result: result}
	}
}

func failed(msg string) func(*bridge.DeliveryRecord) bridge.Outcome {
	return func(*bridge.DeliveryRecord) bridge.Outcome {
		return bridge.Outcome{Status: bridge.StatusFailed, Error: msg}
	}
}

// deliveries lists the store's deliveries matching f.
func (e *env) deliveries(f bridge.DeliveryFilter) []*bridge.DeliveryRecord {
	e.t.Helper()
	ds, err := e.store.Deliveries(context.Background(), f)
	if err != nil {
		e.t.Fatal(err)
	}
	return ds
}

// req is one request to the console.
type req struct {
	method, path string
	body         string
	header       http.Header
	user, pass   string // empty user: no Authorization
}

// do sends r to the console and returns the response with its body read.
func (e *env) do(r req) (*http.Response, string) {
	e.t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, "http://127.0.0.1:8081"+r.path, body)
	for k, vs := range r.header {
		hr.Header[k] = vs
	}
	if r.user != "" {
		hr.SetBasicAuth(r.user, r.pass)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, hr)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// get is an authenticated GET.
func (e *env) get(path string) (*http.Response, string) {
	e.t.Helper()
	return e.do(req{path: path, user: testUser, pass: testPassword})
}

// getJSON is an authenticated GET of an API route, decoded into v.
func (e *env) getJSON(path string, v any) *http.Response {
	e.t.Helper()
	res, body := e.get(path)
	if err := json.Unmarshal([]byte(body), v); err != nil {
		e.t.Fatalf("GET %s: %d %q: %v", path, res.StatusCode, body, err)
	}
	return res
}

// csrf returns the form token of user, as the pages carry it.
func (e *env) csrf(user string) string {
	return e.h.(*console).csrf.token(user)
}

// postForm is an authenticated form POST with the user's token.
func (e *env) postForm(path string, form url.Values) (*http.Response, string) {
	e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		form.Set("csrf", e.csrf(testUser))
	}
	return e.do(req{method: http.MethodPost, path: path, body: form.Encode(), user: testUser, pass: testPassword,
		header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}})
}

// postJSON is an authenticated API POST.
func (e *env) postJSON(path, body string) (*http.Response, string) {
	e.t.Helper()
	return e.do(req{method: http.MethodPost, path: path, body: body, user: testUser, pass: testPassword,
		header: http.Header{"Content-Type": {"application/json"}}})
}

// seed stores a small, varied history: two sources, delivered, failed and
// pending deliveries, a Jira issue key.
func (e *env) seed() (violation, analysis *bridge.Event) {
	e.t.Helper()
	now := time.Now().UTC()
	violation = e.ingest("secureagentics", secureagentics("evt_seed1", "policy.violated", "upload to an external host", "agt_1", "alrt_1"), now.Add(-10*time.Minute))
	analysis = e.ingest("agility", []byte(`{"id":"ana-1","event_name":"analysis_done","data":{"file_path":"x.pcap","count_prediction_failure":1}}`), now.Add(-5*time.Minute))
	e.settle("ops-jira", delivered("OPS-42"))
	e.settle("archive", failed("archive: open archive.jsonl: permission denied"))
	return violation, analysis
}

// mustStatus fails unless res has status want.
func mustStatus(t *testing.T, what string, res *http.Response, body string, want int) {
	t.Helper()
	if res.StatusCode != want {
		t.Fatalf("%s: status %d, want %d; body:\n%s", what, res.StatusCode, want, cutBody(body))
	}
}

func cutBody(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s: the page does not contain %q", what, w)
		}
	}
}

func mustNotContain(t *testing.T, what, body string, bad ...string) {
	t.Helper()
	for _, w := range bad {
		if strings.Contains(body, w) {
			t.Errorf("%s: the page contains %q", what, w)
		}
	}
}
