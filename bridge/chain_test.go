package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// linkSink is a fakeSink whose results a person can open.
type linkSink struct{ *fakeSink }

func (s linkSink) Link(result string) string { return "https://tracker.example/browse/" + result }

// chainRender stands in for package rules' renderer: RESULT and LINK in
// the stored fields become the result and link of action "ticket".
func chainRender(stored json.RawMessage, ev *Event, results, links map[string]string) (json.RawMessage, error) {
	if strings.Contains(string(stored), "BROKEN") {
		return nil, errors.New(`template: text: function "nope" not defined`)
	}
	r := strings.NewReplacer("RESULT", results["ticket"], "LINK", links["ticket"], "EVENT", ev.ID)
	return json.RawMessage(r.Replace(string(stored))), nil
}

// ingestChain stores an event with a ticket and a chat message that runs
// after it.
func (e *pipeEnv) ingestChain(id, text string) {
	e.t.Helper()
	ev := &Event{ID: id, Source: "src", Vendor: "antly", Type: "t", Severity: "info", Time: e.clock.Now(), Received: e.clock.Now()}
	planned := []Planned{
		{Rule: "r", Index: 0, Sink: "jira", ID: "ticket", Action: json.RawMessage(`{"summary":"s"}`)},
		{Rule: "r", Index: 1, Sink: "chat", After: "ticket", AfterIndex: 0, Action: json.RawMessage(`{"text":"` + text + `"}`)},
	}
	if dup, err := e.store.Ingest(context.Background(), ev, []byte(`{"event":"t","data":{}}`), planned); err != nil || dup {
		e.t.Fatalf("ingest %s: dup=%v err=%v", id, dup, err)
	}
}

// waitSink waits until the delivery of event id to sink has status want.
func (e *pipeEnv) waitSink(id, sink, want string) *DeliveryRecord {
	e.t.Helper()
	return e.waitUntil(id, sink, "status "+want, func(d *DeliveryRecord) bool { return d.Status == want })
}

// chainSinks runs a Jira-like sink with links, "jira", and a chat sink,
// "chat", one worker each.
func (e *pipeEnv) chainSinks() (jira linkSink, chat *fakeSink) {
	jira, chat = linkSink{newFakeSink()}, newFakeSink()
	e.p.SetSinks([]SinkSpec{
		{Name: "jira", Sink: jira, Timeout: time.Second, Concurrency: 1, Retry: testRetry, Key: "jira"},
		{Name: "chat", Sink: chat, Timeout: time.Second, Concurrency: 1, Retry: testRetry, Key: "chat"},
	})
	return jira, chat
}

// TestChainedDelivery: through the pipeline and the store, a dependent
// waits while the action it runs after retries, is sent once that action
// is delivered, rendered with its result and link; it fails, saying why,
// when that action fails, and a replay of the action releases it.
func TestChainedDelivery(t *testing.T) {
	e := newPipeEnv(t, "", nil, false)
	e.p.opt.Render = chainRender
	jira, chat := e.chainSinks()
	jira.mu.Lock()
	jira.script = []error{errors.New("503: busy")}
	jira.mu.Unlock()
	e.ingestChain("e1", "opened RESULT at LINK for EVENT")
	e.waitUntil("e1", "jira", "1 attempt", func(d *DeliveryRecord) bool { return d.Attempts >= 1 })
	if d := e.waitSink("e1", "chat", StatusPending); !d.Waiting() {
		t.Fatalf("the dependent while its action retries: %+v", d)
	}
	e.clock.Add(time.Minute) // past the retry
	if d := e.waitSink("e1", "jira", StatusDelivered); d.Link != "https://tracker.example/browse/ok-e1" {
		t.Errorf("the ticket's link: %q", d.Link)
	}
	e.waitSink("e1", "chat", StatusDelivered)
	got := chat.delivered()
	if len(got) != 1 || string(got[0].Action) != `{"text":"opened ok-e1 at https://tracker.example/browse/ok-e1 for e1"}` {
		t.Fatalf("chat got %d deliveries, the first %s", len(got), got[0].Action)
	}

	jira.mu.Lock()
	jira.script = []error{Permanent(errors.New("400: project OPS does not exist"))}
	jira.mu.Unlock()
	e.ingestChain("e2", "again RESULT")
	e.waitSink("e2", "jira", StatusFailed)
	d := e.waitSink("e2", "chat", StatusFailed)
	if !strings.Contains(d.LastError, `runs after action "ticket"`) || !strings.Contains(d.LastError, "project OPS does not exist") {
		t.Errorf("the dependent's last error: %q", d.LastError)
	}
	ticket := e.waitSink("e2", "jira", StatusFailed)
	if _, err := e.store.Replay(context.Background(), []int64{ticket.ID}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.waitSink("e2", "chat", StatusDelivered)
	if got := chat.delivered(); len(got) != 2 || string(got[1].Action) != `{"text":"again ok-e2"}` {
		t.Errorf("after the replay chat got %d deliveries", len(got))
	}

	// A dependent whose fields do not render fails, saying why.
	e.ingestChain("e3", "BROKEN")
	d = e.waitSink("e3", "chat", StatusFailed)
	if !strings.Contains(d.LastError, `render (after "ticket")`) || !strings.Contains(d.LastError, `"nope" not defined`) || d.Attempts != 1 {
		t.Errorf("the dependent that does not render: %+v", d)
	}
}
