package jira

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"bridge/bridge"
	"bridge/sinks/internal/sinktest"
	"bridge/sinks/jira/jirafake"
)

// memState is an in-memory bridge.State; sharing one between two sinks
// plays a restart.
type memState struct {
	mu sync.Mutex
	m  map[string]string
}

func newMemState() *memState { return &memState{m: map[string]string{}} }

func (s *memState) Get(_ context.Context, k string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok, nil
}

func (s *memState) Put(_ context.Context, k, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return nil
}

func (s *memState) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

// clock is a manual clock shared by a sink and the stand-in.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const (
	testUser  = "bot@example.com"
	testToken = "tok-3f9a-very-secret"
)

type harness struct {
	t     *testing.T
	srv   *jirafake.Server
	state *memState
	clock *clock
	logs  *syncBuffer
	cfg   *Config
}

func newHarness(t *testing.T, opts jirafake.Options) *harness {
	t.Helper()
	c := newClock()
	opts.User, opts.Token = testUser, testToken
	if opts.Now == nil {
		opts.Now = c.Now
	}
	if opts.Components == nil {
		opts.Components = []string{"Backend", "Frontend"}
	}
	srv := jirafake.New(opts)
	t.Cleanup(srv.Close)
	cfg := DefaultConfig()
	cfg.URL, cfg.Token, cfg.Project = srv.URL, bridge.Secret(testToken), "OPS"
	if opts.Flavor == jirafake.Cloud {
		cfg.User = testUser
	}
	return &harness{t: t, srv: srv, state: newMemState(), clock: c, logs: &syncBuffer{}, cfg: cfg}
}

// sink builds a new sink instance on the harness's state: calling it twice
// plays a restart.
func (h *harness) sink() *Sink {
	h.t.Helper()
	s, err := newSink(h.cfg, bridge.SinkEnv{
		Name: "ops-jira", State: h.state, Timeout: 5 * time.Second, Version: "test",
		Logger: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, h.clock.Now)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func event(subject string) *bridge.Event {
	return &bridge.Event{ID: "ev-" + subject, Source: "agility", Vendor: "agility", Type: "analysis_done",
		Time: time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC), Severity: "high", Title: "t", Subject: subject}
}

func delivery(t *testing.T, id int64, ev *bridge.Event, action map[string]any) *bridge.Delivery {
	t.Helper()
	b, err := json.Marshal(action)
	if err != nil {
		t.Fatal(err)
	}
	return &bridge.Delivery{ID: id, Event: ev, Rule: "r", Sink: "ops-jira", Action: b, Attempt: 1}
}

func send(t *testing.T, s *Sink, d *bridge.Delivery) string {
	t.Helper()
	key, err := s.Send(context.Background(), d)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return key
}

func jsonEqual(t *testing.T, got, want any) {
	t.Helper()
	norm := func(v any) any {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var out any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	g, w := norm(got), norm(want)
	if !reflect.DeepEqual(g, w) {
		gb, _ := json.MarshalIndent(g, "", "  ")
		wb, _ := json.MarshalIndent(w, "", "  ")
		t.Errorf("got\n%s\nwant\n%s", gb, wb)
	}
}

func TestCreateSendsEveryField(t *testing.T) {
	longSummary := "Ünïcode\nsummary " + strings.Repeat("é", 300)
	longDesc := "h2. Details\n*bold* " + strings.Repeat("ß", 40000)
	custom := map[string]jirafake.CustomField{
		"customfield_10010": {Name: "Analysis", Type: jirafake.FieldText},
		"customfield_10011": {Name: "Failures", Type: jirafake.FieldNumber},
		"customfield_10012": {Name: "Severity", Type: jirafake.FieldOption, Options: []string{"High", "Low"}},
		"customfield_10013": {Name: "Areas", Type: jirafake.FieldOptions, Options: []string{"net", "disk"}},
	}
	for _, tc := range []struct {
		name     string
		flavor   jirafake.Flavor
		assignee map[string]any
	}{
		{"cloud", jirafake.Cloud, map[string]any{"accountId": "5b10ac8d82e05b22cc7d4ef5"}},
		{"datacenter", jirafake.DataCenter, map[string]any{"name": "5b10ac8d82e05b22cc7d4ef5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, jirafake.Options{Flavor: tc.flavor, CustomFields: custom})
			s := h.sink()
			key := send(t, s, delivery(t, 1, event("a1"), map[string]any{
				"project": "SEC", "issue_type": "Bug", "summary": longSummary, "description": longDesc,
				"priority": "High", "labels": []string{"agility", " high  sev ", "agility"}, "components": []string{"Backend"},
				"assignee": "5b10ac8d82e05b22cc7d4ef5",
				"fields": map[string]any{
					"customfield_10010": "an-123", "customfield_10011": 42,
					"customfield_10012": map[string]any{"value": "High"},
					"customfield_10013": []any{map[string]any{"value": "net"}, map[string]any{"value": "disk"}},
				},
				"dedupe": "agility:an-123",
			}))
			if key != "SEC-1" {
				t.Fatalf("key %q, want SEC-1", key)
			}
			iss, _ := h.srv.Issue(key)
			if n := utf8.RuneCountInString(iss.Summary); n != 255 || strings.Contains(iss.Summary, "\n") || !strings.HasSuffix(iss.Summary, "…") {
				t.Errorf("summary has %d runes: %q", n, iss.Summary[:40])
			}
			if n := utf8.RuneCountInString(iss.Description); n != 32767 || !strings.HasPrefix(iss.Description, "h2. Details\n*bold*") {
				t.Errorf("description has %d runes", n)
			}
			jsonEqual(t, iss.Labels, []string{"agility", "high-sev", DedupeLabel("agility:an-123")})
			jsonEqual(t, iss.Components, []string{"Backend"})
			jsonEqual(t, iss.Assignee, tc.assignee)
			jsonEqual(t, iss.Custom, map[string]any{
				"customfield_10010": "an-123", "customfield_10011": 42,
				"customfield_10012": map[string]any{"value": "High"},
				"customfield_10013": []any{map[string]any{"value": "net"}, map[string]any{"value": "disk"}},
			})
			if iss.IssueType != "Bug" || iss.Priority != "High" || iss.Project != "SEC" {
				t.Errorf("issue %+v", iss)
			}
			if !strings.Contains(h.logs.String(), h.srv.URL+"/browse/SEC-1") {
				t.Errorf("browse URL not logged: %s", h.logs.String())
			}
		})
	}
}

func TestCreateRequestGolden(t *testing.T) {
	st, err := resolve(Action{
		Summary: "AGILITY: 2 failed", Description: "d", Priority: "High", Labels: []string{"a b"},
		Components: []string{"Backend"}, Assignee: "abc",
		Fields: FieldValues{"customfield_1": json.Number("12345678901234567"), "customfield_2": map[string]any{"value": "x"}},
	}, &Config{Project: "OPS"}, event("s1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		fl       flavor
		assignee string
	}{{"cloud", flavorCloud, `{"accountId":"abc"}`}, {"datacenter", flavorDataCenter, `{"name":"abc"}`}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(buildIssue(st, tc.fl))
			if err != nil {
				t.Fatal(err)
			}
			want := `{"fields":{"assignee":` + tc.assignee + `,"components":[{"name":"Backend"}],
				"customfield_1":12345678901234567,"customfield_2":{"value":"x"},"description":"d",
				"issuetype":{"name":"Task"},"labels":["a-b","` + DedupeLabel("agility:analysis_done:s1") + `"],
				"priority":{"name":"High"},"project":{"key":"OPS"},"summary":"AGILITY: 2 failed"}}`
			var g, w any
			_ = json.Unmarshal(got, &g)
			if err := json.Unmarshal([]byte(want), &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("request body\n%s\nwant\n%s", got, want)
			}
			if strings.Contains(string(got), "Password") || !strings.Contains(string(got), "12345678901234567") {
				t.Errorf("body %s", got)
			}
		})
	}
}

func TestRepeat(t *testing.T) {
	for _, tc := range []struct {
		name        string
		flavor      jirafake.Flavor
		onDuplicate string
		description string
		wantComment string
	}{
		{"comment with description/cloud", jirafake.Cloud, "", "second {{ rendered }}", "second {{ rendered }}"},
		{"comment with description/datacenter", jirafake.DataCenter, "comment", "second", "second"},
		{"repeat line", jirafake.Cloud, "comment", "", "Seen again: Disk full (event ev-x from agility at 2026-11-23T11:00:00Z)"},
		{"skip", jirafake.Cloud, "skip", "second", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, jirafake.Options{Flavor: tc.flavor})
			s := h.sink()
			first := send(t, s, delivery(t, 1, event("x"), map[string]any{"summary": "Disk full", "description": "first"}))
			again := send(t, s, delivery(t, 2, event("x"), map[string]any{"summary": "Disk full", "description": tc.description, "on_duplicate": tc.onDuplicate}))
			if first != again {
				t.Fatalf("repeat result %q, want %q", again, first)
			}
			issues := h.srv.Issues()
			if len(issues) != 1 {
				t.Fatalf("%d issues, want 1", len(issues))
			}
			var want []string
			if tc.wantComment != "" {
				want = []string{tc.wantComment}
			}
			jsonEqual(t, issues[0].Comments, want)
		})
	}
}

func TestTwentyAtOnceOpenOneTicket(t *testing.T) {
	h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud, SearchLag: time.Hour})
	s := h.sink()
	var wg sync.WaitGroup
	keys := make([]string, 20)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Go(func() {
			keys[i], errs[i] = s.Send(context.Background(), delivery(t, int64(i+1), event("same"), map[string]any{"summary": "same"}))
		})
	}
	wg.Wait()
	for i := range 20 {
		if errs[i] != nil || keys[i] != "OPS-1" {
			t.Errorf("send %d: %q, %v", i, keys[i], errs[i])
		}
	}
	issues := h.srv.Issues()
	if len(issues) != 1 || len(issues[0].Comments) != 19 {
		t.Fatalf("%d issues (%+v), want 1 with 19 comments", len(issues), issues)
	}
}

func TestRestartWhileSearchLags(t *testing.T) {
	for _, fl := range []jirafake.Flavor{jirafake.Cloud, jirafake.DataCenter} {
		t.Run(map[jirafake.Flavor]string{jirafake.Cloud: "cloud", jirafake.DataCenter: "datacenter"}[fl], func(t *testing.T) {
			h := newHarness(t, jirafake.Options{Flavor: fl, SearchLag: time.Hour})
			first := send(t, h.sink(), delivery(t, 1, event("r"), map[string]any{"summary": "s"}))
			second := send(t, h.sink(), delivery(t, 2, event("r"), map[string]any{"summary": "s"}))
			if first != second || len(h.srv.Issues()) != 1 {
				t.Fatalf("results %q %q, %d issues; want one", first, second, len(h.srv.Issues()))
			}
		})
	}
}

func TestSearchFindsIssueTheStoreForgot(t *testing.T) {
	h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud, SearchLag: 5 * time.Second, PageSize: 1})
	s := h.sink()
	first := send(t, s, delivery(t, 1, event("f"), map[string]any{"summary": "s"}))
	// The same sink reconciles its own new issue although search lags.
	h.state.m = map[string]string{}
	if again := send(t, s, delivery(t, 2, event("f"), map[string]any{"summary": "s"})); again != first {
		t.Fatalf("got %q, want %q", again, first)
	}
	// A new instance with an empty store finds it once the lag has passed.
	h.state.m = map[string]string{}
	h.clock.Advance(6 * time.Second)
	if again := send(t, h.sink(), delivery(t, 3, event("f"), map[string]any{"summary": "s"})); again != first {
		t.Fatalf("got %q, want %q", again, first)
	}
	if n := len(h.srv.Issues()); n != 1 {
		t.Fatalf("%d issues", n)
	}
}

func TestDoneIssueLeadsToNewTicket(t *testing.T) {
	h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
	s := h.sink()
	a := map[string]any{"summary": "s"}
	first := send(t, s, delivery(t, 1, event("d"), a))
	h.srv.SetStatus(first, "Done", "done")
	second := send(t, s, delivery(t, 2, event("d"), a))
	third := send(t, s, delivery(t, 3, event("d"), a))
	if first == second || second != third {
		t.Fatalf("results %s %s %s", first, second, third)
	}
	iss, _ := h.srv.Issue(second)
	if len(h.srv.Issues()) != 2 || len(iss.Comments) != 1 {
		t.Fatalf("issues %+v", h.srv.Issues())
	}
}

func TestDeletedIssue(t *testing.T) {
	t.Run("found gone by the status check", func(t *testing.T) {
		h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
		s := h.sink()
		first := send(t, s, delivery(t, 1, event("del"), map[string]any{"summary": "s"}))
		h.srv.DeleteIssue(first)
		if second := send(t, s, delivery(t, 2, event("del"), map[string]any{"summary": "s"})); second == first {
			t.Fatalf("still %s", second)
		}
	})
	t.Run("gone when commenting", func(t *testing.T) {
		h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
		s := h.sink()
		first := send(t, s, delivery(t, 1, event("del"), map[string]any{"summary": "s"}))
		h.srv.FailNext(jirafake.RouteComment, 1, jirafake.Failure{Status: 404,
			Body: `{"errorMessages":["Issue does not exist or you do not have permission to see it."],"errors":{}}`})
		d := delivery(t, 2, event("del"), map[string]any{"summary": "s"})
		if _, err := s.Send(context.Background(), d); err == nil || bridge.IsPermanent(err) {
			t.Fatalf("err %v", err)
		}
		if again := send(t, s, d); again != first || len(h.srv.Issues()) != 1 {
			t.Fatalf("got %s, %d issues", again, len(h.srv.Issues()))
		}
	})
}

func TestServiceUnavailableThenSuccess(t *testing.T) {
	h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
	s := h.sink()
	h.srv.FailNext(jirafake.RouteCreate, 3, jirafake.Failure{Status: 503, Body: "<html>Service Unavailable</html>"})
	d := delivery(t, 1, event("u"), map[string]any{"summary": "s"})
	for i := range 3 {
		_, err := s.Send(context.Background(), d)
		if err == nil || bridge.IsPermanent(err) || !strings.Contains(err.Error(), "HTTP 503: <html>Service Unavailable</html>") {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	if key := send(t, s, d); key != "OPS-1" || len(h.srv.Issues()) != 1 {
		t.Fatalf("key %q, %d issues", key, len(h.srv.Issues()))
	}
}

func TestTooManyRequestsWaits(t *testing.T) {
	for _, route := range []string{jirafake.RouteCreate, jirafake.RouteSearchJQL, jirafake.RouteComment} {
		t.Run(route, func(t *testing.T) {
			h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
			s := h.sink()
			if route == jirafake.RouteComment {
				send(t, s, delivery(t, 1, event("q"), map[string]any{"summary": "s"}))
			}
			h.srv.FailNext(route, 1, jirafake.Failure{Status: 429, RetryAfter: "7",
				Body: `{"errorMessages":["Rate limit exceeded."],"errors":{}}`})
			d := delivery(t, 2, event("q"), map[string]any{"summary": "s"})
			_, err := s.Send(context.Background(), d)
			wait, ok := bridge.RetryDelay(err)
			if !ok || wait != 7*time.Second || bridge.IsPermanent(err) || !strings.Contains(err.Error(), "Rate limit exceeded.") {
				t.Fatalf("err %v, wait %v", err, wait)
			}
			send(t, s, d)
			if n := len(h.srv.Issues()); n != 1 {
				t.Fatalf("%d issues", n)
			}
		})
	}
}

func TestBadPriorityFailsThenDeliversAfterFix(t *testing.T) {
	h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
	s := h.sink()
	d := delivery(t, 1, event("p"), map[string]any{"summary": "s", "priority": "Urgent"})
	_, err := s.Send(context.Background(), d)
	if !bridge.IsPermanent(err) || !strings.Contains(err.Error(), "priority: Priority name 'Urgent' is not valid") {
		t.Fatalf("err %v", err)
	}
	if !strings.HasPrefix(err.Error(), "jira: create issue: HTTP 400: ") {
		t.Errorf("error text %q", err)
	}
	h.srv.AddPriority("Urgent")
	if key := send(t, s, d); key != "OPS-1" {
		t.Fatalf("key %q", key)
	}
}

func TestCreateWithUnknownOutcome(t *testing.T) {
	t.Run("stored but no answer", func(t *testing.T) {
		h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud, SearchLag: 20 * time.Second})
		s := h.sink()
		h.srv.FailNext(jirafake.RouteCreate, 1, jirafake.Failure{Hang: true})
		d := delivery(t, 1, event("h"), map[string]any{"summary": "s"})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := s.Send(ctx, d)
		cancel()
		// The next attempt searches again soon, not only after search_lag.
		if wait, ok := bridge.RetryDelay(err); !ok || wait != pendingRecheck || bridge.IsPermanent(err) {
			t.Fatalf("err %v", err)
		}
		// The retry and a restart must not create while search lags.
		for _, sk := range []*Sink{s, h.sink()} {
			h.clock.Advance(5 * time.Second)
			_, err = sk.Send(context.Background(), d)
			if wait, ok := bridge.RetryDelay(err); !ok || wait <= 0 || wait > pendingRecheck {
				t.Fatalf("err %v", err)
			}
		}
		if n := h.srv.Count(jirafake.RouteCreate); n != 1 {
			t.Fatalf("%d creates", n)
		}
		// Once search shows the issue, the delivery adopts it without a comment.
		h.clock.Advance(15 * time.Second)
		key := send(t, h.sink(), d)
		issues := h.srv.Issues()
		if len(issues) != 1 || issues[0].Key != key || len(issues[0].Comments) != 0 {
			t.Fatalf("issues %+v", issues)
		}
		// Another event of the key comments.
		send(t, h.sink(), delivery(t, 2, event("h"), map[string]any{"summary": "s"}))
		if iss, _ := h.srv.Issue(key); len(iss.Comments) != 1 {
			t.Fatalf("comments %v", iss.Comments)
		}
	})
	t.Run("not stored", func(t *testing.T) {
		h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud, SearchLag: 20 * time.Second})
		s := h.sink()
		h.srv.FailNext(jirafake.RouteCreate, 1, jirafake.Failure{Status: 504, Body: "upstream timed out"})
		d := delivery(t, 1, event("g"), map[string]any{"summary": "s"})
		_, err := s.Send(context.Background(), d)
		if _, ok := bridge.RetryDelay(err); !ok || !strings.Contains(err.Error(), "upstream timed out") {
			t.Fatalf("err %v", err)
		}
		h.clock.Advance(DefaultSearchLag + time.Second)
		if key := send(t, s, d); key != "OPS-1" || len(h.srv.Issues()) != 1 {
			t.Fatalf("key %q issues %d", key, len(h.srv.Issues()))
		}
	})
}

// TestRedeliveryOfTheCreatingDelivery plays a crash after the sink
// remembered an issue and before the pipeline recorded the delivery: the
// redelivery of that delivery reports the issue without a comment, while
// another delivery of the dedupe key still comments.
func TestRedeliveryOfTheCreatingDelivery(t *testing.T) {
	action := map[string]any{"summary": "s"}
	sk := stateKey("OPS", DedupeLabel("agility:analysis_done:c"))
	// comments returns the comments of the one issue there must be.
	comments := func(h *harness) []string {
		t.Helper()
		issues := h.srv.Issues()
		if len(issues) != 1 {
			t.Fatalf("%d issues, want 1: %+v", len(issues), issues)
		}
		return issues[0].Comments
	}
	// stored is the dedupe key's record in the state.
	stored := func(h *harness) record {
		t.Helper()
		var rec record
		if err := json.Unmarshal([]byte(h.state.m[sk]), &rec); err != nil {
			t.Fatalf("state %q: %v", h.state.m[sk], err)
		}
		return rec
	}
	// hang sends d's create, which Jira stores but never answers.
	hang := func(h *harness, d *bridge.Delivery) {
		t.Helper()
		h.srv.FailNext(jirafake.RouteCreate, 1, jirafake.Failure{Hang: true})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if _, err := h.sink().Send(ctx, d); err == nil {
			t.Fatal("a create without an answer succeeded")
		}
		if rec := stored(h); rec.Pending.IsZero() || rec.Delivery != d.ID {
			t.Fatalf("pending marker %+v", rec)
		}
	}

	t.Run("crash after remembering the new issue", func(t *testing.T) {
		h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
		s := h.sink()
		var faults []string
		s.fault = func(point string) {
			// The key is durable at the fault point.
			if rec := stored(h); rec.Key != "OPS-1" || rec.Delivery != 7 {
				t.Errorf("state at the fault point: %+v", rec)
			}
			faults = append(faults, point)
		}
		d := delivery(t, 7, event("c"), action)
		key := send(t, s, d)
		jsonEqual(t, faults, []string{FaultAfterRemember})
		// The outcome was lost: after the restart, the pipeline sends d again.
		for range 2 {
			if again := send(t, h.sink(), d); again != key {
				t.Fatalf("redelivery reported %q, want %q", again, key)
			}
		}
		if c := comments(h); len(c) != 0 {
			t.Fatalf("the redelivery commented on its own issue: %q", c)
		}
		if n := h.srv.Count(jirafake.RouteCreate); n != 1 {
			t.Fatalf("%d creates", n)
		}
		// Another event of the dedupe key is a repeat, as before.
		if again := send(t, h.sink(), delivery(t, 8, event("c"), action)); again != key || len(comments(h)) != 1 {
			t.Fatalf("repeat: %q, comments %q", again, comments(h))
		}
		if rec := stored(h); rec.Delivery != 7 {
			t.Errorf("the repeat took over the issue: %+v", rec)
		}
	})

	t.Run("record of an older version", func(t *testing.T) {
		h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
		d := delivery(t, 1, event("c"), action)
		key := send(t, h.sink(), d)
		h.state.m[sk] = `{"key":"` + key + `","id":"10000"}` // no delivery
		if again := send(t, h.sink(), delivery(t, 2, event("c"), action)); again != key || len(comments(h)) != 1 {
			t.Fatalf("repeat: %q, comments %q", again, comments(h))
		}
	})

	t.Run("own pending create found by search, then another crash", func(t *testing.T) {
		h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud, SearchLag: 10 * time.Second})
		d := delivery(t, 3, event("c"), action)
		hang(h, d)
		h.clock.Advance(11 * time.Second) // search shows the issue now
		key := send(t, h.sink(), d)
		if rec := stored(h); rec.Key != key || rec.Delivery != 3 || !rec.Pending.IsZero() {
			t.Fatalf("adopted record %+v", rec)
		}
		// The adoption's outcome was lost too: d comes once more.
		if again := send(t, h.sink(), d); again != key {
			t.Fatalf("redelivery reported %q, want %q", again, key)
		}
		if c := comments(h); len(c) != 0 {
			t.Fatalf("a redelivery commented on its own issue: %q", c)
		}
		if again := send(t, h.sink(), delivery(t, 4, event("c"), action)); again != key || len(comments(h)) != 1 {
			t.Fatalf("repeat: %q, comments %q", again, comments(h))
		}
	})

	t.Run("another delivery finds the pending create's issue", func(t *testing.T) {
		h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud, SearchLag: 10 * time.Second})
		first := delivery(t, 5, event("c"), action)
		hang(h, first)
		h.clock.Advance(11 * time.Second)
		// A repeat of the key finds the issue: it comments, and the issue
		// stays the pending create's.
		key := send(t, h.sink(), delivery(t, 6, event("c"), action))
		if c := comments(h); len(c) != 1 {
			t.Fatalf("the repeat made %d comments, want 1", len(c))
		}
		if rec := stored(h); rec.Key != key || rec.Delivery != 5 {
			t.Fatalf("record %+v, want the issue of delivery 5", rec)
		}
		// The pending create's own retry reports the issue it opened.
		if again := send(t, h.sink(), first); again != key || len(comments(h)) != 1 {
			t.Fatalf("retry of the create: %q, comments %q", again, comments(h))
		}
		if n := h.srv.Count(jirafake.RouteCreate); n != 1 {
			t.Fatalf("%d creates", n)
		}
	})
}

func TestSiteKindDetection(t *testing.T) {
	for _, tc := range []struct {
		name            string
		flavor          jirafake.Flavor
		user            string
		failServerInfo  bool
		want            flavor
		search, jql     int
		serverInfoCalls int
	}{
		{"cloud by serverInfo", jirafake.Cloud, testUser, false, flavorCloud, 0, 2, 1},
		{"datacenter by serverInfo", jirafake.DataCenter, "", false, flavorDataCenter, 2, 0, 1},
		{"datacenter by 404 from search/jql", jirafake.DataCenter, testUser, true, flavorDataCenter, 2, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, jirafake.Options{Flavor: tc.flavor})
			h.cfg.User = tc.user
			if tc.failServerInfo {
				h.srv.FailNext(jirafake.RouteServerInfo, 1, jirafake.Failure{Status: 503})
			}
			s := h.sink()
			send(t, s, delivery(t, 1, event("k1"), map[string]any{"summary": "s"}))
			send(t, s, delivery(t, 2, event("k2"), map[string]any{"summary": "s"}))
			if s.flavor != tc.want || h.srv.Count(jirafake.RouteSearch) != tc.search || h.srv.Count(jirafake.RouteSearchJQL) != tc.jql ||
				h.srv.Count(jirafake.RouteServerInfo) != tc.serverInfoCalls {
				t.Fatalf("flavor %v, counts %v", s.flavor, h.srv.Counts())
			}
		})
	}
}

func TestStatusClassification(t *testing.T) {
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{400, true}, {401, true}, {403, true}, {404, true}, {409, true}, {410, true},
		{408, false}, {429, false}, {500, false}, {502, false}, {503, false}, {504, false},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
			h.srv.FailNext(jirafake.RouteSearchJQL, 1, jirafake.Failure{Status: tc.status,
				Body: `{"errorMessages":["first","second"],"errors":{"b":"two","a":"one"}}`})
			_, err := h.sink().Send(context.Background(), delivery(t, 1, event("c"), map[string]any{"summary": "s"}))
			if err == nil || bridge.IsPermanent(err) != tc.permanent {
				t.Fatalf("err %v, permanent %v", err, bridge.IsPermanent(err))
			}
			if want := "first; second; a: one; b: two"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		})
	}
}

func TestNoSecretLeaks(t *testing.T) {
	h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
	h.cfg.Token = "wrong-" + testToken
	s := h.sink()
	_, err := s.Send(context.Background(), delivery(t, 1, event("l"), map[string]any{"summary": "s"}))
	if !bridge.IsPermanent(err) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err %v", err)
	}
	dry, _ := s.DryRun(context.Background(), delivery(t, 1, event("l"), map[string]any{"summary": "s"}))
	var out bytes.Buffer
	_, _ = Check(context.Background(), h.cfg, nil, &out)
	for _, text := range []string{err.Error(), h.logs.String(), dry, out.String()} {
		if strings.Contains(text, testToken) {
			t.Errorf("secret leaked: %s", text)
		}
	}
}

func TestDefaultAndDisabledDedupe(t *testing.T) {
	h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
	s := h.sink()
	send(t, s, delivery(t, 1, event("z"), map[string]any{"summary": "s"}))
	iss, _ := h.srv.Issue("OPS-1")
	jsonEqual(t, iss.Labels, []string{DedupeLabel("agility:analysis_done:z")})
	for i := range 2 {
		send(t, s, delivery(t, int64(2+i), event("z"), map[string]any{"summary": "s", "dedupe": ""}))
	}
	if n := len(h.srv.Issues()); n != 3 {
		t.Fatalf("%d issues, want 3", n)
	}
	if iss, _ := h.srv.Issue("OPS-2"); len(iss.Labels) != 0 {
		t.Errorf("labels %v", iss.Labels)
	}
}

func TestDryRunSendsNothing(t *testing.T) {
	h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
	out, err := h.sink().DryRun(context.Background(), delivery(t, 1, event("y"), map[string]any{"summary": "s", "assignee": "abc"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"POST " + h.srv.URL + "/rest/api/2/issue ", `"accountId":"abc"`, DedupeLabel("agility:analysis_done:y"), "comment on"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run %q lacks %q", out, want)
		}
	}
	if n := h.srv.Total(); n != 0 {
		t.Errorf("%d requests", n)
	}
}

func TestRenderedActionProblemsArePermanent(t *testing.T) {
	h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
	s := h.sink()
	for _, a := range []map[string]any{
		{"summary": "  "},
		{"summary": "s", "on_duplicate": "reopen"},
	} {
		if _, err := s.Send(context.Background(), delivery(t, 1, event("e"), a)); !bridge.IsPermanent(err) {
			t.Errorf("%v: err %v", a, err)
		}
	}
	d := &bridge.Delivery{ID: 1, Event: event("e"), Action: json.RawMessage(`{"summary": 5}`)}
	if _, err := s.Send(context.Background(), d); !bridge.IsPermanent(err) {
		t.Errorf("err %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		fields []string
	}{
		{"ok cloud", Config{URL: "https://x.atlassian.net", User: "a@b.c", Token: "t"}, nil},
		{"ok dc", Config{URL: "https://jira.example/jira", Token: "t"}, nil},
		{"empty", Config{}, []string{"url", "token"}},
		{"bad url", Config{URL: "jira.example", Token: "t"}, []string{"url"}},
		{"credentials in url", Config{URL: "https://u:p@jira.example", Token: "t"}, []string{"url"}},
		{"template project", Config{URL: "https://j.example", Token: "t", Project: "{{ .x }}"}, []string{"project"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sinktest.Fields(tc.cfg.Validate())
			jsonEqual(t, got, tc.fields)
		})
	}
}

func TestActionValidate(t *testing.T) {
	withProject := &Config{Project: "OPS"}
	for _, tc := range []struct {
		name   string
		a      Action
		cfg    *Config
		fields []string
	}{
		{"ok", Action{Summary: "s"}, withProject, nil},
		{"project from action", Action{Summary: "s", Project: "SEC"}, &Config{}, nil},
		{"no project", Action{Summary: "s"}, &Config{}, []string{"project"}},
		{"no summary", Action{}, withProject, []string{"summary"}},
		{"bad on_duplicate", Action{Summary: "s", OnDuplicate: "reopen"}, withProject, []string{"on_duplicate"}},
		{"templated on_duplicate", Action{Summary: "s", OnDuplicate: "{{ .data.mode }}"}, withProject, nil},
		{"field owned by a key", Action{Summary: "s", Fields: FieldValues{"priority": "High"}}, withProject, []string{"fields.priority"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jsonEqual(t, sinktest.Fields(tc.a.Validate(tc.cfg)), tc.fields)
		})
	}
}

func TestTextHelpers(t *testing.T) {
	for in, want := range map[string]string{"high sev": "high-sev", "  a \t b\n c ": "a-b-c", "ok": "ok", "   ": ""} {
		if got := ValidLabel(in); got != want {
			t.Errorf("ValidLabel(%q) = %q, want %q", in, got, want)
		}
	}
	// SHA-256("agility:an-1") starts with these 12 hex digits.
	if got := DedupeLabel("agility:an-1"); got != "bridge-"+hashHex("agility:an-1")[:12] || len(got) != len("bridge-")+12 {
		t.Errorf("DedupeLabel = %q", got)
	}
	if got := cutRunes("äöü", 3); got != "äöü" {
		t.Errorf("cutRunes kept %q", got)
	}
	if got := cutRunes("äöüß", 3); got != "äö…" {
		t.Errorf("cutRunes = %q", got)
	}
}

func TestDecodeKeepsExactNumbers(t *testing.T) {
	var a Action
	d := &bridge.Delivery{Action: json.RawMessage(`{"summary":"s","fields":{"customfield_1":12345678901234567}}`)}
	if err := d.DecodeAction(&a); err != nil {
		t.Fatal(err)
	}
	if n, ok := a.Fields["customfield_1"].(json.Number); !ok || n.String() != "12345678901234567" {
		t.Fatalf("%#v", a.Fields["customfield_1"])
	}
}

func TestStateErrorIsRetried(t *testing.T) {
	h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
	s := h.sink()
	s.state = failingState{}
	_, err := s.Send(context.Background(), delivery(t, 1, event("s"), map[string]any{"summary": "s"}))
	if err == nil || bridge.IsPermanent(err) || h.srv.Count(jirafake.RouteCreate) != 0 {
		t.Fatalf("err %v", err)
	}
}

type failingState struct{}

func (failingState) Get(context.Context, string) (string, bool, error) {
	return "", false, errors.New("disk full")
}
func (failingState) Put(context.Context, string, string) error { return errors.New("disk full") }
func (failingState) Delete(context.Context, string) error      { return errors.New("disk full") }

func FuzzReadMessage(f *testing.F) {
	f.Add([]byte(`{"errorMessages":["x"],"errors":{"priority":"bad"}}`))
	f.Add([]byte(`{"message":"HTTP 404 Not Found","status-code":404}`))
	f.Add([]byte("<html>503</html>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		msg := readMessage(io.NopCloser(bytes.NewReader(b)))
		if utf8.ValidString(string(b)) && utf8.RuneCountInString(msg) > 64<<10 {
			t.Fatalf("message of %d runes", utf8.RuneCountInString(msg))
		}
	})
}
