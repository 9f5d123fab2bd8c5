package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/sinks/slack/slackfake"
)

// The sink implements the contracts the pipeline relies on.
var (
	_ bridge.Sink      = (*Sink)(nil)
	_ bridge.DryRunner = (*Sink)(nil)
)

const testToken = "xoxb-1111-2222-sekrit"

// memState is an in-memory bridge.State.
type memState struct {
	mu sync.Mutex
	m  map[string]string
}

func newMemState() *memState { return &memState{m: map[string]string{}} }

func (s *memState) Get(_ context.Context, key string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return v, ok, nil
}

func (s *memState) Put(_ context.Context, key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = value
	return nil
}

func (s *memState) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// failState is a bridge.State that cannot write.
type failState struct{}

func (failState) Get(context.Context, string) (string, bool, error) { return "", false, nil }
func (failState) Put(context.Context, string, string) error         { return errors.New("disk full") }
func (failState) Delete(context.Context, string) error              { return errors.New("disk full") }

func testEvent() *bridge.Event {
	return &bridge.Event{
		ID: "evt-1", Source: "secureagentics", Vendor: "secureagentics", Type: "policy.violated",
		Time:     time.Date(2026, 11, 20, 10, 15, 30, 0, time.UTC),
		Received: time.Date(2026, 11, 20, 10, 15, 31, 0, time.UTC),
		Severity: "high", Title: "Policy violated on agent A-7", Subject: "alert-42 <!channel>",
		Data: map[string]any{"agent_id": "A-7"},
	}
}

func delivery(t *testing.T, fields map[string]string) *bridge.Delivery {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return &bridge.Delivery{ID: 1, Event: testEvent(), Rule: "r", Sink: "secops-slack", Action: b, Attempt: 1}
}

func newFake(t *testing.T, opts slackfake.Options) *slackfake.Server {
	t.Helper()
	if opts.Tokens == nil {
		opts.Tokens = []string{testToken}
	}
	if opts.Channels == nil {
		opts.Channels = []slackfake.Channel{
			{ID: "C0SECOPS", Name: "secops", Member: true},
			{ID: "C0OTHER", Name: "other", Member: true},
			{ID: "C0ARCHIVED", Name: "old", Member: true, Archived: true},
			{ID: "C0OUTSIDE", Name: "outside"},
		}
	}
	f := slackfake.New(opts)
	t.Cleanup(f.Close)
	return f
}

type sinkOpts struct {
	state  bridge.State
	logger *slog.Logger
	rate   bridge.RateLimit
	mutate func(*Config)
}

func botSink(t *testing.T, f *slackfake.Server, o sinkOpts) *Sink {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Token = testToken
	cfg.APIURL = f.APIURL()
	cfg.RateLimit = bridge.RateLimit{RPS: 1000, Burst: 1000}
	if o.rate.RPS > 0 {
		cfg.RateLimit = o.rate
	}
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	return mustSink(t, &cfg, o)
}

func webhookSink(t *testing.T, url string, o sinkOpts) *Sink {
	t.Helper()
	cfg := DefaultConfig()
	cfg.WebhookURL = bridge.Secret(url)
	cfg.RateLimit = bridge.RateLimit{RPS: 1000, Burst: 1000}
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	return mustSink(t, &cfg, o)
}

func mustSink(t *testing.T, cfg *Config, o sinkOpts) *Sink {
	t.Helper()
	if o.state == nil {
		o.state = newMemState()
	}
	s, err := newSink(cfg, bridge.SinkEnv{Name: "secops-slack", State: o.state, Logger: o.logger, Timeout: 5 * time.Second, Version: "test"}, time.Now, sleepCtx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// jsonEqual compares two JSON documents by value.
func jsonEqual(t *testing.T, want, got []byte) {
	t.Helper()
	var w, g any
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want is not JSON: %v\n%s", err, want)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v\n%s", err, got)
	}
	if !reflect.DeepEqual(w, g) {
		t.Errorf("JSON differs\nwant: %s\n got: %s", want, got)
	}
}

func TestSendPostsTextAndDefaultBlocks(t *testing.T) {
	f := newFake(t, slackfake.Options{})
	s := botSink(t, f, sinkOpts{})
	ts, err := s.Send(context.Background(), delivery(t, map[string]string{
		"channel": "#secops", "text": ":rotating_light: Policy violated on agent A-7",
	}))
	if err != nil {
		t.Fatal(err)
	}
	msgs := f.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if ts == "" || ts != m.TS {
		t.Errorf("result %q, want the message ts %q", ts, m.TS)
	}
	golden, err := os.ReadFile("testdata/default_message.json")
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Text   string          `json:"text"`
		Blocks json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(golden, &want); err != nil {
		t.Fatal(err)
	}
	if m.Channel != "C0SECOPS" || m.Text != want.Text || m.ThreadTS != "" {
		t.Errorf("message %+v", m)
	}
	jsonEqual(t, want.Blocks, m.Blocks)

	// slack-go posts a form with the token in it, never a header.
	reqs := f.Requests()
	if r := reqs[len(reqs)-1]; r.Method != "chat.postMessage" || r.ContentType != "application/x-www-form-urlencoded" || r.TokenFrom != "form" {
		t.Errorf("request %+v", r)
	}
}

func TestDefaultBlocksShowTextThatSaysMore(t *testing.T) {
	blocks := defaultBlocks(testEvent(), "AGILITY: *2* failed predictions in `x.pcap`")
	if len(blocks) != 4 {
		t.Fatalf("got %d blocks, want header, text, fields, context", len(blocks))
	}
	jsonEqual(t, []byte(`{"type":"section","text":{"type":"mrkdwn","text":"AGILITY: *2* failed predictions in `+"`x.pcap`"+`"}}`), blocks[1])

	ev := testEvent()
	ev.Title, ev.Subject, ev.Source = "", "", ""
	blocks = defaultBlocks(ev, "")
	jsonEqual(t, []byte(`{"type":"header","text":{"type":"plain_text","text":"policy.violated","emoji":true}}`), blocks[0])
	jsonEqual(t, []byte(`{"type":"section","fields":[{"type":"mrkdwn","text":"*Severity*\nhigh"},{"type":"mrkdwn","text":"*Type*\npolicy.violated"}]}`), blocks[1])
}

func TestSendCustomBlocks(t *testing.T) {
	f := newFake(t, slackfake.Options{})
	s := botSink(t, f, sinkOpts{})
	custom := `[{"type":"section","text":{"type":"mrkdwn","text":"*A-7* & <https://x.example|details>"}},{"type":"divider"}]`
	if _, err := s.Send(context.Background(), delivery(t, map[string]string{"channel": "C0SECOPS", "text": "hello", "blocks": custom})); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, []byte(custom), f.Messages()[0].Blocks)

	t.Run("empty array sends the text alone", func(t *testing.T) {
		if _, err := s.Send(context.Background(), delivery(t, map[string]string{"channel": "C0SECOPS", "text": "just text", "blocks": " [] "})); err != nil {
			t.Fatal(err)
		}
		msgs := f.Messages()
		if m := msgs[len(msgs)-1]; m.Text != "just text" || m.Blocks != nil {
			t.Errorf("message %+v", m)
		}
	})

	for _, tc := range []struct{ name, blocks, want string }{
		{"not JSON", `[{"type":"section",`, "slack: blocks must be a JSON array of Block Kit blocks: unexpected EOF"},
		{"an object", `{"type":"section"}`, "slack: blocks must be a JSON array of Block Kit blocks: json: cannot unmarshal object"},
		{"no type", `[{"text":"x"}]`, `slack: blocks: block 1 has no "type"`},
		{"not an object", `["x"]`, "slack: blocks: block 1 is not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.Requests())
			_, err := s.Send(context.Background(), delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x", "blocks": tc.blocks}))
			if err == nil || !bridge.IsPermanent(err) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v (permanent %v), want permanent %q", err, bridge.IsPermanent(err), tc.want)
			}
			if len(f.Requests()) != before {
				t.Error("a refused blocks template reached Slack")
			}
		})
	}
}

func TestSendRespectsSlackLimits(t *testing.T) {
	f := newFake(t, slackfake.Options{})
	s := botSink(t, f, sinkOpts{})
	long := func(n int) string { return strings.Repeat("é", n) }

	t.Run("default blocks", func(t *testing.T) {
		ev := testEvent()
		ev.Title, ev.Subject, ev.ID = long(500), strings.Repeat("<&>", 3000), long(5000)
		d := delivery(t, map[string]string{"channel": "C0SECOPS", "text": long(50000)})
		d.Event = ev
		if _, err := s.Send(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		msgs := f.Messages()
		m := msgs[len(msgs)-1]
		if n := len([]rune(m.Text)); n != maxTextRunes || !strings.HasSuffix(m.Text, "…") {
			t.Errorf("text cut to %d runes", n)
		}
	})
	t.Run("custom blocks", func(t *testing.T) {
		fields := make([]any, 12)
		for i := range fields {
			fields[i] = map[string]any{"type": "mrkdwn", "text": long(2500)}
		}
		blocks := []any{
			map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": long(200)}},
			map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": long(4000)}, "fields": fields},
		}
		for len(blocks) < 60 {
			blocks = append(blocks, map[string]any{"type": "divider"})
		}
		b, _ := json.Marshal(blocks)
		if _, err := s.Send(context.Background(), delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x", "blocks": string(b)})); err != nil {
			t.Fatal(err)
		}
		msgs := f.Messages()
		var got []map[string]any
		if err := json.Unmarshal(msgs[len(msgs)-1].Blocks, &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != maxBlocks {
			t.Errorf("%d blocks posted, want %d", len(got), maxBlocks)
		}
	})
	// The fake refuses what Slack refuses: over-long blocks fail there.
	t.Run("fake refuses oversize", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Token, cfg.APIURL = testToken, f.APIURL()
		over := `[{"type":"header","text":{"type":"plain_text","text":"` + long(151) + `"}}]`
		m := &message{Channel: "C0SECOPS", Text: "x", Blocks: []json.RawMessage{json.RawMessage(over[1 : len(over)-1])}}
		_, _, err := s.post(context.Background(), m)
		if err == nil || err.Error() != "slack: chat.postMessage: invalid_blocks" || !bridge.IsPermanent(err) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestCut(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"héllo", 5, "héllo"},
		{"héllo", 4, "hél…"},
		{"日本語テキスト", 3, "日本…"},
	} {
		if got := cut(tc.in, tc.n); got != tc.want {
			t.Errorf("cut(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	if got := cutEscaped(escape("a<b"), 4); got != "a…" {
		t.Errorf("cutEscaped split an entity: %q", got)
	}
}

func TestThreads(t *testing.T) {
	f := newFake(t, slackfake.Options{})
	state := newMemState()
	s := botSink(t, f, sinkOpts{state: state})
	send := func(s *Sink, key string) string {
		t.Helper()
		ts, err := s.Send(context.Background(), delivery(t, map[string]string{"channel": "#secops", "text": "x", "thread_by": key}))
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	first := send(s, "A-7")
	second := send(s, "A-7")
	other := send(s, "A-8")

	// A restart: a new sink sharing the same state.
	restarted := botSink(t, f, sinkOpts{state: state})
	third := send(restarted, "A-7")

	byTS := map[string]slackfake.Message{}
	for _, m := range f.Messages() {
		byTS[m.TS] = m
	}
	if byTS[first].ThreadTS != "" || byTS[other].ThreadTS != "" {
		t.Errorf("first messages of a key are not replies: %+v %+v", byTS[first], byTS[other])
	}
	for _, ts := range []string{second, third} {
		if got := byTS[ts].ThreadTS; got != first {
			t.Errorf("reply %s has thread_ts %q, want %q", ts, got, first)
		}
	}
	// Without a key, no thread.
	ts, err := s.Send(context.Background(), delivery(t, map[string]string{"channel": "#secops", "text": "x", "thread_by": " "}))
	if err != nil || ts == "" {
		t.Fatal(err)
	}
}

func TestThreadFirstMessageOnceUnderConcurrency(t *testing.T) {
	f := newFake(t, slackfake.Options{})
	s := botSink(t, f, sinkOpts{})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Send(context.Background(), delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x", "thread_by": "same"}))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var parents []string
	for _, m := range f.Messages() {
		if m.ThreadTS == "" {
			parents = append(parents, m.TS)
		}
	}
	if len(parents) != 1 {
		t.Fatalf("%d thread starts, want 1", len(parents))
	}
	for _, m := range f.Messages() {
		if m.TS != parents[0] && m.ThreadTS != parents[0] {
			t.Errorf("message %s not in the thread", m.TS)
		}
	}
}

func TestThreadParentDeletedStartsNewThread(t *testing.T) {
	f := newFake(t, slackfake.Options{})
	s := botSink(t, f, sinkOpts{})
	send := func() string {
		ts, err := s.Send(context.Background(), delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x", "thread_by": "k"}))
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	first := send()
	f.DeleteMessage("C0SECOPS", first)
	newParent := send() // posted un-threaded by Slack
	reply := send()
	msgs := f.Messages()
	if msgs[1].ThreadTS != "" || msgs[1].TS != newParent || msgs[2].ThreadTS != newParent || msgs[2].TS != reply {
		t.Errorf("messages %+v", msgs)
	}
}

func TestThreadRootRefused(t *testing.T) {
	f := newFake(t, slackfake.Options{})
	state := newMemState()
	s := botSink(t, f, sinkOpts{state: state})
	d := delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x", "thread_by": "k"})
	first, err := s.Send(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	f.Script("chat.postMessage", slackfake.Answer{Error: "invalid_thread_ts"})
	_, err = s.Send(context.Background(), d)
	if err == nil || bridge.IsPermanent(err) || !strings.HasPrefix(err.Error(), "slack: chat.postMessage: invalid_thread_ts: ") {
		t.Fatalf("err = %v, want a retryable invalid_thread_ts", err)
	}
	second, err := s.Send(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	msgs := f.Messages()
	if len(msgs) != 2 || msgs[1].TS != second || msgs[1].ThreadTS != "" || second == first {
		t.Errorf("the retry did not start a new thread: %+v", msgs)
	}
}

func TestBurstIsPacedWithoutRateLimit(t *testing.T) {
	// The fake allows 40 messages a second per channel with bursts of 8 (room
	// for scheduling jitter); the sink paces to 40 a second with bursts of 2.
	f := newFake(t, slackfake.Options{RateLimit: slackfake.RateLimit{PerSecond: 40, Burst: 8}})
	burst := func(s *Sink) (time.Duration, int) {
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		failed := 0
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if _, err := s.Send(ctx, delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x"})); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return time.Since(start), failed
	}

	paced := botSink(t, f, sinkOpts{rate: bridge.RateLimit{RPS: 40, Burst: 2}})
	took, failed := burst(paced)
	if failed != 0 || f.RateLimited() != 0 || len(f.Messages()) != 20 {
		t.Fatalf("paced burst: %d failed, %d answered 429, %d posted", failed, f.RateLimited(), len(f.Messages()))
	}
	// 2 at once, then 18 at 25 ms intervals.
	if min := 18 * 25 * time.Millisecond; took < min-20*time.Millisecond {
		t.Errorf("20 messages took %s, pacing needs at least %s", took, min)
	}

	// The same burst unpaced meets the fake's limit: pacing is what avoids it.
	unpaced := botSink(t, f, sinkOpts{rate: bridge.RateLimit{RPS: 1e6, Burst: 1000}})
	_, failed = burst(unpaced)
	if failed == 0 || f.RateLimited() == 0 {
		t.Errorf("unpaced burst: %d failed, %d answered 429; the fake should have limited it", failed, f.RateLimited())
	}
}

// sleepClock is a fake clock that sleeping advances, so pacing is exact
// and instant; slept lists every sleep.
type sleepClock struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
}

func (c *sleepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *sleepClock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	c.now = c.now.Add(d)
	return nil
}

func TestPacerWithClock(t *testing.T) {
	c := &sleepClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := newPacer(bridge.RateLimit{RPS: 1, Burst: 3}, c.Now, c.Sleep)
	for i := 0; i < 20; i++ {
		if err := p.wait(context.Background(), "C1"); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.slept) != 17 {
		t.Fatalf("c.slept %d times, want 17 (20 messages, bursts of 3)", len(c.slept))
	}
	for _, d := range c.slept {
		if d != time.Second {
			t.Errorf("c.slept %s between messages, want 1s", d)
		}
	}
	if err := p.wait(context.Background(), "C2"); err != nil || len(c.slept) != 17 {
		t.Errorf("another channel waited: %v", err)
	}

	// After a 429, the channel is held back for Retry-After.
	p.hold("C2", 30*time.Second)
	if err := p.wait(context.Background(), "C2"); err != nil || c.slept[len(c.slept)-1] != 30*time.Second {
		t.Errorf("after hold: err %v, c.slept %v", err, c.slept[len(c.slept)-1])
	}

	// A wait past the deadline returns RetryAfter at once.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n := len(c.slept)
	for i := 0; i < 3; i++ { // empty C3's burst
		if err := p.wait(ctx, "C3"); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.wait(ctx, "C3"); err != nil { // 1s: fits the deadline
		t.Fatal(err)
	}
	p.hold("C3", 5*time.Second)
	err := p.wait(ctx, "C3")
	d, ok := bridge.RetryDelay(err)
	if !ok || bridge.IsPermanent(err) || d != 5*time.Second || len(c.slept) != n+1 {
		t.Errorf("err %v, delay %s, c.slept %v", err, d, c.slept[n:])
	}
}

func TestLimiterDeadlineReturnsRetryAfter(t *testing.T) {
	f := newFake(t, slackfake.Options{})
	s := botSink(t, f, sinkOpts{rate: bridge.RateLimit{RPS: 1, Burst: 1}})
	if _, err := s.Send(context.Background(), delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x"})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Send(ctx, delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x"}))
	d, ok := bridge.RetryDelay(err)
	if !ok || d <= 0 || d > time.Second || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("err %v, delay %s, after %s", err, d, time.Since(start))
	}
	if len(f.Messages()) != 1 {
		t.Error("the second message was posted")
	}
}

func TestRateLimitedAnswerIsHonoured(t *testing.T) {
	f := newFake(t, slackfake.Options{})
	s := botSink(t, f, sinkOpts{})
	f.Script("chat.postMessage", slackfake.Answer{Status: 429, Error: "ratelimited", RetryAfter: "1"})
	d := delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x"})

	// What the pipeline does: wait as asked, then try again.
	start := time.Now()
	var ts string
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		ts, err = s.Send(context.Background(), d)
		if err == nil {
			break
		}
		if attempt == 1 && err.Error() != "slack: chat.postMessage: HTTP 429: ratelimited" {
			t.Errorf("err = %q", err)
		}
		wait, ok := bridge.RetryDelay(err)
		if !ok || bridge.IsPermanent(err) {
			t.Fatalf("attempt %d: err %v is not a RetryAfter", attempt, err)
		}
		time.Sleep(wait)
	}
	if err != nil || ts == "" || len(f.Messages()) != 1 {
		t.Fatalf("not delivered: %v", err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("delivered after %s, before Retry-After", took)
	}

	t.Run("HTTP-date Retry-After", func(t *testing.T) {
		f.Script("chat.postMessage", slackfake.Answer{Status: 429, Error: "ratelimited", RetryAfter: time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)})
		_, err := s.Send(context.Background(), delivery(t, map[string]string{"channel": "C0OTHER", "text": "x"}))
		if d, ok := bridge.RetryDelay(err); !ok || d < time.Second || d > 3*time.Second {
			t.Errorf("err %v, delay %s", err, d)
		}
	})
	t.Run("no Retry-After", func(t *testing.T) {
		f.Script("chat.postMessage", slackfake.Answer{Status: 429, Error: "ratelimited"})
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := s.Send(ctx, delivery(t, map[string]string{"channel": "#secops", "text": "x"}))
		if err == nil || bridge.IsPermanent(err) {
			t.Errorf("err %v, want a retryable error", err)
		}
	})
}

func TestErrorClasses(t *testing.T) {
	f := newFake(t, slackfake.Options{Tokens: []string{testToken, "xoxb-revoked"}})
	f.RevokeToken("xoxb-revoked", "token_revoked")
	for _, tc := range []struct {
		name      string
		token     string
		channel   string
		script    *slackfake.Answer
		want      string
		permanent bool
	}{
		{name: "unknown token", token: "xoxb-nope", channel: "C0SECOPS", want: "slack: chat.postMessage: invalid_auth", permanent: true},
		{name: "revoked token", token: "xoxb-revoked", channel: "C0SECOPS", want: "slack: chat.postMessage: token_revoked", permanent: true},
		{name: "unknown channel", channel: "#nope", want: "slack: chat.postMessage: channel_not_found", permanent: true},
		{name: "archived", channel: "#old", want: "slack: chat.postMessage: is_archived", permanent: true},
		{name: "not a member", channel: "C0OUTSIDE", want: "slack: chat.postMessage: not_in_channel", permanent: true},
		{name: "missing scope", script: &slackfake.Answer{Error: "missing_scope"}, want: "slack: chat.postMessage: missing_scope", permanent: true},
		{name: "account inactive", script: &slackfake.Answer{Error: "account_inactive"}, want: "slack: chat.postMessage: account_inactive", permanent: true},
		{name: "no permission", script: &slackfake.Answer{Error: "no_permission"}, want: "slack: chat.postMessage: no_permission", permanent: true},
		{name: "invalid blocks", script: &slackfake.Answer{Error: "invalid_blocks"}, want: "slack: chat.postMessage: invalid_blocks", permanent: true},
		{name: "too long", script: &slackfake.Answer{Error: "msg_too_long"}, want: "slack: chat.postMessage: msg_too_long", permanent: true},
		{name: "unknown code", script: &slackfake.Answer{Error: "restricted_action"}, want: "slack: chat.postMessage: restricted_action", permanent: true},
		{name: "HTTP 400", script: &slackfake.Answer{Status: 400, Error: "invalid_arguments"}, want: "slack: chat.postMessage: HTTP 400: invalid_arguments", permanent: true},
		{name: "ratelimited ok:false", script: &slackfake.Answer{Error: "ratelimited"}, want: "slack: chat.postMessage: ratelimited"},
		{name: "internal error", script: &slackfake.Answer{Error: "internal_error"}, want: "slack: chat.postMessage: internal_error"},
		{name: "fatal error", script: &slackfake.Answer{Error: "fatal_error"}, want: "slack: chat.postMessage: fatal_error"},
		{name: "service unavailable", script: &slackfake.Answer{Error: "service_unavailable"}, want: "slack: chat.postMessage: service_unavailable"},
		{name: "request timeout", script: &slackfake.Answer{Error: "request_timeout"}, want: "slack: chat.postMessage: request_timeout"},
		{name: "HTTP 500 page", script: &slackfake.Answer{Status: 500}, want: "slack: chat.postMessage: HTTP 500 Internal Server Error"},
		{name: "HTTP 503", script: &slackfake.Answer{Status: 503, RetryAfter: "7"}, want: "slack: chat.postMessage: HTTP 503 Service Unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := botSink(t, f, sinkOpts{mutate: func(c *Config) {
				if tc.token != "" {
					c.Token = bridge.Secret(tc.token)
				}
			}})
			if tc.script != nil {
				f.Script("chat.postMessage", *tc.script)
			}
			ch := tc.channel
			if ch == "" {
				ch = "C0SECOPS"
			}
			before := len(f.Requests())
			_, err := s.Send(context.Background(), delivery(t, map[string]string{"channel": ch, "text": "x"}))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if bridge.IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %v, want %v", bridge.IsPermanent(err), tc.permanent)
			}
			if n := len(f.Requests()) - before; n != 1 {
				t.Errorf("%d requests, want exactly 1 (the sink never retries itself)", n)
			}
		})
	}
	if _, ok := bridge.RetryDelay(classify("m", errors.New("x"), &answer{status: 503, header: http.Header{"Retry-After": {"7"}}})); !ok {
		t.Error("a 503 with Retry-After lost the delay")
	}
}

func TestWebhook(t *testing.T) {
	f := newFake(t, slackfake.Options{Webhooks: map[string]string{"/services/T0/B0/good": "C0SECOPS", "/services/T0/B0/archived": "C0ARCHIVED"}})
	s := webhookSink(t, f.WebhookURL("/services/T0/B0/good"), sinkOpts{})
	res, err := s.Send(context.Background(), delivery(t, map[string]string{"text": ":rotating_light: Policy violated on agent A-7"}))
	if err != nil || res != "" {
		t.Fatalf("result %q, err %v", res, err)
	}
	m := f.Messages()[0]
	golden, _ := os.ReadFile("testdata/default_message.json")
	var want struct {
		Blocks json.RawMessage `json:"blocks"`
	}
	_ = json.Unmarshal(golden, &want)
	if m.Via != "webhook" || m.Channel != "C0SECOPS" || m.Text != ":rotating_light: Policy violated on agent A-7" {
		t.Errorf("message %+v", m)
	}
	jsonEqual(t, want.Blocks, m.Blocks)

	for _, tc := range []struct {
		name      string
		path      string
		script    *slackfake.Answer
		want      string
		permanent bool
		delay     time.Duration
	}{
		{name: "revoked", path: "/services/T0/B0/gone", want: "slack: webhook: HTTP 404: no_service", permanent: true},
		{name: "archived", path: "/services/T0/B0/archived", want: "slack: webhook: HTTP 410: channel_is_archived", permanent: true},
		{name: "invalid payload", script: &slackfake.Answer{Status: 400, Error: "invalid_payload"}, want: "slack: webhook: HTTP 400: invalid_payload", permanent: true},
		{name: "prohibited", script: &slackfake.Answer{Status: 403, Error: "action_prohibited"}, want: "slack: webhook: HTTP 403: action_prohibited", permanent: true},
		{name: "rate limited", script: &slackfake.Answer{Status: 429, Error: "rate_limited", RetryAfter: "2"}, want: "slack: webhook: HTTP 429: rate_limited", delay: 2 * time.Second},
		{name: "server error", script: &slackfake.Answer{Status: 500, Error: "rollup_error"}, want: "slack: webhook: HTTP 500: rollup_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/services/T0/B0/good"
			}
			s := webhookSink(t, f.WebhookURL(path), sinkOpts{})
			if tc.script != nil {
				f.Script("webhook", *tc.script)
			}
			_, err := s.Send(context.Background(), delivery(t, map[string]string{"text": "x"}))
			if err == nil || err.Error() != tc.want || bridge.IsPermanent(err) != tc.permanent {
				t.Fatalf("err = %v (permanent %v), want %q (permanent %v)", err, bridge.IsPermanent(err), tc.want, tc.permanent)
			}
			if d, _ := bridge.RetryDelay(err); d != tc.delay {
				t.Errorf("delay %s, want %s", d, tc.delay)
			}
		})
	}

	t.Run("thread_by is refused", func(t *testing.T) {
		_, err := s.Send(context.Background(), delivery(t, map[string]string{"text": "x", "thread_by": "k"}))
		if !bridge.IsPermanent(err) || !strings.Contains(err.Error(), "thread_by needs a bot token") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestDryRun(t *testing.T) {
	f := newFake(t, slackfake.Options{})
	state := newMemState()
	s := botSink(t, f, sinkOpts{state: state})
	got, err := s.DryRun(context.Background(), delivery(t, map[string]string{"channel": "#secops", "text": ":rotating_light: Policy violated on agent A-7"}))
	if err != nil {
		t.Fatal(err)
	}
	golden, _ := os.ReadFile("testdata/default_message.json")
	jsonEqual(t, golden, []byte(got))
	if strings.Contains(got, testToken) {
		t.Error("the dry run shows the token")
	}

	// A reply shows its thread, read from the state without changing it.
	if _, err := s.Send(context.Background(), delivery(t, map[string]string{"channel": "#secops", "text": "x", "thread_by": "k"})); err != nil {
		t.Fatal(err)
	}
	parent := f.Messages()[0].TS
	got, err = s.DryRun(context.Background(), delivery(t, map[string]string{"channel": "#secops", "text": "x", "thread_by": "k"}))
	if err != nil || !strings.Contains(got, `"thread_ts":"`+parent+`"`) {
		t.Errorf("dry run %s, %v", got, err)
	}
	got, _ = s.DryRun(context.Background(), delivery(t, map[string]string{"channel": "#secops", "text": "x", "thread_by": "new"}))
	if strings.Contains(got, "thread_ts") || len(f.Messages()) != 1 {
		t.Errorf("dry run of a new thread: %s", got)
	}
	if n := len(f.Requests()); n != 1 {
		t.Errorf("dry runs made requests: %d", n)
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	const hookSecret = "B0HOOK/Xverysecretpart"
	f := newFake(t, slackfake.Options{Webhooks: map[string]string{"/services/T0/" + hookSecret: "C0SECOPS"}})
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var errs []error
	collect := func(_ string, err error) { errs = append(errs, err) }

	bad := botSink(t, f, sinkOpts{logger: logger, mutate: func(c *Config) { c.Token = testToken + "-wrong" }})
	collect(bad.Send(context.Background(), delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x"})))
	good := botSink(t, f, sinkOpts{logger: logger})
	f.Script("chat.postMessage", slackfake.Answer{Status: 500}, slackfake.Answer{Status: 429, RetryAfter: "1"})
	collect(good.Send(context.Background(), delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x"})))
	collect(good.Send(context.Background(), delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x"})))
	collect(good.DryRun(context.Background(), delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x"})))

	// A state that cannot store a thread: the sink logs it.
	broken := botSink(t, f, sinkOpts{logger: logger, state: failState{}})
	collect(broken.Send(context.Background(), delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x", "thread_by": "k"})))
	if !strings.Contains(logs.String(), "disk full") {
		t.Errorf("the state failure was not logged: %s", logs.String())
	}

	hook := f.WebhookURL("/services/T0/" + hookSecret)
	wh := webhookSink(t, hook, sinkOpts{logger: logger})
	f.Script("webhook", slackfake.Answer{Status: 404, Error: "no_service"})
	collect(wh.Send(context.Background(), delivery(t, map[string]string{"text": "x"})))
	collect(wh.DryRun(context.Background(), delivery(t, map[string]string{"text": "x"})))
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	collect(wh.Send(ctx, delivery(t, map[string]string{"text": "x"})))
	// A webhook that cannot be reached: transport errors name the URL.
	closed := slackfake.New(slackfake.Options{})
	closed.Close()
	dead := webhookSink(t, closed.WebhookURL("/services/T0/"+hookSecret), sinkOpts{logger: logger})
	collect(dead.Send(context.Background(), delivery(t, map[string]string{"text": "x"})))
	collect("", good.cfg.Validate())
	cfg := DefaultConfig()
	cfg.Token, cfg.WebhookURL = testToken, bridge.Secret("::"+hookSecret)
	collect("", cfg.Validate())
	var out bytes.Buffer
	_, err := Check(context.Background(), &cfg, nil, &out)
	collect("", err)
	fmt.Fprintf(&out, "%v %+v %#v", cfg, cfg, cfg)

	var all strings.Builder
	for _, err := range errs {
		if err != nil {
			all.WriteString(err.Error() + "\n")
		}
	}
	all.Write(logs.Bytes())
	all.Write(out.Bytes())
	for _, secret := range []string{testToken, "Xverysecretpart", "sekrit"} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("a secret leaked:\n%s", all.String())
		}
	}
	t.Logf("errors, logs and output:\n%s", all.String())
	if !strings.Contains(all.String(), "invalid_auth") || !strings.Contains(all.String(), "no_service") || !strings.Contains(all.String(), "connection refused") {
		t.Errorf("the errors lost their meaning:\n%s", all.String())
	}
}

// FuzzParseBlocks: rendered blocks come from event data; whatever they are,
// parsing never panics and what it accepts fits Slack's limits.
func FuzzParseBlocks(f *testing.F) {
	f.Add(`[{"type":"section","text":{"type":"mrkdwn","text":"hi"}}]`)
	f.Add(`[{"type":"section","fields":[{"type":"mrkdwn","text":"a"}]},{"type":"header","text":{"type":"plain_text","text":"é"}}]`)
	f.Add(`[{"type":"context","elements":[]}]`)
	f.Add(`[1, null, "x"]`)
	f.Fuzz(func(t *testing.T, s string) {
		blocks, err := parseBlocks(s)
		if err != nil {
			return
		}
		if len(blocks) > maxBlocks {
			t.Fatalf("%d blocks", len(blocks))
		}
		for _, b := range blocks {
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("block %s: %v", b, err)
			}
			if text, ok := v["text"].(map[string]any); ok && v["type"] == "header" {
				if s, ok := text["text"].(string); ok && len([]rune(s)) > maxHeaderRunes {
					t.Fatalf("header of %d runes", len([]rune(s)))
				}
			}
		}
	})
}
