package jira

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/sinks/internal/sinktest"
	"bridge/sinks/jira/jirafake"
)

var flavors = []struct {
	name   string
	flavor jirafake.Flavor
}{{"cloud", jirafake.Cloud}, {"datacenter", jirafake.DataCenter}}

// The dedupe key of the lifecycle tests' events, as their actions name it.
const lifeKey = "agility:an-1"

// opens is the action that opens (and, with reopen_within, reopens) tickets.
func opens(extra map[string]any) map[string]any {
	a := map[string]any{"summary": "AGILITY: failures", "description": "failed again", "dedupe": lifeKey}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// resolves is the resolve action of the same key.
func resolves(extra map[string]any) map[string]any {
	a := map[string]any{"resolve": true, "dedupe": lifeKey}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

func issueOf(t *testing.T, h *harness, key string) jirafake.Issue {
	t.Helper()
	iss, ok := h.srv.Issue(key)
	if !ok {
		t.Fatalf("no issue %s", key)
	}
	return iss
}

func wantPermanent(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil || !bridge.IsPermanent(err) {
		t.Fatalf("err %v, want a permanent failure", err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q lacks %q", err, p)
		}
	}
}

func TestResolve(t *testing.T) {
	for _, fl := range flavors {
		t.Run(fl.name, func(t *testing.T) {
			h := newHarness(t, jirafake.Options{Flavor: fl.flavor})
			s := h.sink()
			key := send(t, s, delivery(t, 1, event("a"), opens(nil)))
			got := send(t, s, delivery(t, 2, event("b"), resolves(map[string]any{"comment": "The analysis is clean again."})))
			if got != key {
				t.Fatalf("resolve result %q, want %q", got, key)
			}
			iss := issueOf(t, h, key)
			if iss.Status != "Done" || iss.Resolution != "Done" || !iss.Resolved.Equal(h.clock.Now()) {
				t.Fatalf("issue after resolve: %+v", iss)
			}
			jsonEqual(t, iss.Comments, []string{"The analysis is clean again."})
			jsonEqual(t, h.srv.Transitions(), []jirafake.Transitioned{{Key: key, Name: "Done", From: "To Do", To: "Done", Resolution: "Done"}})
			if l := s.Link(got); l != h.srv.URL+"/browse/"+key || s.Link("") != "" {
				t.Errorf("link %q", l)
			}

			// Nothing open any more: a second resolve sends nothing.
			h.srv.ResetCounts()
			if got := send(t, s, delivery(t, 3, event("c"), resolves(map[string]any{"comment": "again"}))); got != "" {
				t.Fatalf("resolve without an open ticket: result %q", got)
			}
			jsonEqual(t, h.srv.Counts(), map[string]int{jirafake.RouteGetIssue: 1})
			if c := issueOf(t, h, key).Comments; len(c) != 1 {
				t.Errorf("comments %q", c)
			}
		})
	}
}

func TestResolveWithoutTicket(t *testing.T) {
	t.Run("never opened", func(t *testing.T) {
		h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
		if got := send(t, h.sink(), delivery(t, 1, event("a"), resolves(nil))); got != "" {
			t.Fatalf("result %q", got)
		}
		if n := h.srv.Count(jirafake.RouteDoTransition) + h.srv.Count(jirafake.RouteComment) + h.srv.Count(jirafake.RouteCreate); n != 0 {
			t.Fatalf("requests %v", h.srv.Counts())
		}
	})
	t.Run("resolved by a person", func(t *testing.T) {
		h := newHarness(t, jirafake.Options{Flavor: jirafake.DataCenter})
		s := h.sink()
		key := send(t, s, delivery(t, 1, event("a"), opens(nil)))
		h.srv.SetStatus(key, "Done", "done")
		if got := send(t, s, delivery(t, 2, event("b"), resolves(map[string]any{"comment": "c"}))); got != "" {
			t.Fatalf("result %q", got)
		}
		if len(h.srv.Transitions()) != 0 || len(issueOf(t, h, key).Comments) != 0 {
			t.Fatalf("transitions %v, issue %+v", h.srv.Transitions(), issueOf(t, h, key))
		}
	})
	t.Run("deleted", func(t *testing.T) {
		h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
		s := h.sink()
		key := send(t, s, delivery(t, 1, event("a"), opens(nil)))
		h.srv.DeleteIssue(key)
		if got := send(t, s, delivery(t, 2, event("b"), resolves(nil))); got != "" {
			t.Fatalf("result %q", got)
		}
	})
	t.Run("the store forgot it", func(t *testing.T) {
		h := newHarness(t, jirafake.Options{Flavor: jirafake.DataCenter})
		key := send(t, h.sink(), delivery(t, 1, event("a"), opens(nil)))
		h.state.m = map[string]string{}
		if got := send(t, h.sink(), delivery(t, 2, event("b"), resolves(nil))); got != key || issueOf(t, h, key).Status != "Done" {
			t.Fatalf("result %q, issue %+v", got, issueOf(t, h, key))
		}
	})
}

func TestTransitionNames(t *testing.T) {
	// OPS/Bug resolves only from In Progress, through "Resolve Issue".
	wf := jirafake.DefaultWorkflow()
	wf.Transitions = append(wf.Transitions[:2], jirafake.Transition{ID: "51", Name: "Resolve Issue", From: []string{"In Progress"}, To: "Done", Resolution: "Done"})
	for _, tc := range []struct {
		name       string
		action     map[string]any
		issueType  string
		wantErr    []string
		transition string
	}{
		{"default", nil, "", nil, "Done"},
		{"other case and space", map[string]any{"transition": "  dONE "}, "", nil, "Done"},
		{"unknown", map[string]any{"transition": "Close"}, "", []string{
			`jira: OPS-1: Jira offers no transition "Close" from its status "To Do" (it offers: "Start Progress" (→ In Progress), "Done" (→ Done)); set transition: to one of them`}, ""},
		{"not from this status", map[string]any{"transition": "resolve issue"}, "Bug", []string{
			`no transition "resolve issue" from its status "To Do" (it offers: "Start Progress" (→ In Progress))`}, ""},
	} {
		for _, fl := range flavors {
			t.Run(tc.name+"/"+fl.name, func(t *testing.T) {
				h := newHarness(t, jirafake.Options{Flavor: fl.flavor, Workflows: map[string]jirafake.Workflow{"OPS/Bug": wf}})
				s := h.sink()
				open := map[string]any{}
				if tc.issueType != "" {
					open["issue_type"] = tc.issueType
				}
				key := send(t, s, delivery(t, 1, event("a"), opens(open)))
				_, err := s.Send(context.Background(), delivery(t, 2, event("b"), resolves(tc.action)))
				if tc.wantErr != nil {
					wantPermanent(t, err, tc.wantErr...)
					if n := h.srv.Count(jirafake.RouteDoTransition); n != 0 {
						t.Errorf("%d transitions sent", n)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := h.srv.Transitions(); len(got) != 1 || got[0].Name != tc.transition || issueOf(t, h, key).StatusCategory != "done" {
					t.Fatalf("transitions %+v", got)
				}
			})
		}
	}
}

func TestResolveScreenFields(t *testing.T) {
	custom := map[string]jirafake.CustomField{"customfield_10030": {Name: "Root cause", Type: jirafake.FieldText, Required: true}}
	rootCause := jirafake.ResolutionScreenWorkflow()
	rootCause.Transitions[2].Screen = []string{"resolution", "customfield_10030"}
	for _, tc := range []struct {
		name      string
		wf        *jirafake.Workflow
		action    map[string]any
		script    *jirafake.Failure // Jira's answer to the transition
		wantErr   []string
		sent      int    // transitions that reached Jira
		wantState string // the resolution the issue ends with
	}{
		{name: "screen requires a resolution, none set", wf: ptr(jirafake.ResolutionScreenWorkflow()), wantErr: []string{
			`the screen of transition "Done" requires a resolution; set resolution: in the action (one of: Done, Won't Do, Duplicate, Cannot Reproduce)`}},
		{name: "resolution set, any case", wf: ptr(jirafake.ResolutionScreenWorkflow()), action: map[string]any{"resolution": "won't do"}, sent: 1, wantState: "Won't Do"},
		{name: "resolution the screen does not offer", wf: ptr(jirafake.ResolutionScreenWorkflow()), action: map[string]any{"resolution": "Fixed"}, wantErr: []string{
			`transition "Done" offers no resolution "Fixed" (it offers: Done, Won't Do, Duplicate, Cannot Reproduce); change resolution: in the action`}},
		{name: "no screen: the resolution is not sent", action: map[string]any{"resolution": "Won't Do"}, sent: 1, wantState: "Done"},
		{name: "Jira asks for the resolution", action: map[string]any{"resolution": "Done"}, sent: 1,
			script: &jirafake.Failure{Status: 400, Body: `{"errorMessages":[],"errors":{"resolution":"Resolution is required."}}`},
			wantErr: []string{`jira: transition OPS-1 through "Done": HTTP 400: resolution: Resolution is required.`,
				"The transition's screen requires a resolution: set resolution: in the action"}},
		{name: "screen requires another field", wf: &rootCause, action: map[string]any{"resolution": "Done"}, sent: 1, wantErr: []string{
			"HTTP 400: customfield_10030: Root cause is required.",
			"The transition's screen requires customfield_10030, which the bridge does not set"}},
	} {
		for _, fl := range flavors {
			t.Run(tc.name+"/"+fl.name, func(t *testing.T) {
				opts := jirafake.Options{Flavor: fl.flavor, CustomFields: custom}
				if tc.wf != nil {
					opts.Workflows = map[string]jirafake.Workflow{"OPS": *tc.wf}
				}
				h := newHarness(t, opts)
				s := h.sink()
				key := send(t, s, delivery(t, 1, event("a"), opens(map[string]any{"fields": map[string]any{"customfield_10030": "x"}})))
				if tc.script != nil {
					h.srv.FailNext(jirafake.RouteDoTransition, 1, *tc.script)
				}
				_, err := s.Send(context.Background(), delivery(t, 2, event("b"), resolves(tc.action)))
				if n := h.srv.Count(jirafake.RouteDoTransition); n != tc.sent {
					t.Errorf("%d transitions sent, want %d", n, tc.sent)
				}
				if tc.wantErr != nil {
					wantPermanent(t, err, tc.wantErr...)
					if iss := issueOf(t, h, key); iss.StatusCategory == "done" {
						t.Errorf("issue %+v", iss)
					}
					// A refused transition leaves no marker behind.
					if strings.Contains(h.state.m[stateKey("OPS", DedupeLabel(lifeKey))], "moving") {
						t.Errorf("state %s", h.state.m[stateKey("OPS", DedupeLabel(lifeKey))])
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if iss := issueOf(t, h, key); iss.Resolution != tc.wantState {
					t.Errorf("resolution %q, want %q", iss.Resolution, tc.wantState)
				}
			})
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestReopen(t *testing.T) {
	for _, fl := range flavors {
		t.Run(fl.name, func(t *testing.T) {
			h := newHarness(t, jirafake.Options{Flavor: fl.flavor})
			within := opens(map[string]any{"reopen_within": "72h"})
			key := send(t, h.sink(), delivery(t, 1, event("a"), within))
			send(t, h.sink(), delivery(t, 2, event("b"), resolves(nil)))

			// Within 72h of the resolution: reopened, with a comment.
			h.clock.Advance(71 * time.Hour)
			if got := send(t, h.sink(), delivery(t, 3, event("c"), within)); got != key {
				t.Fatalf("reopen result %q, want %q", got, key)
			}
			iss := issueOf(t, h, key)
			if iss.Status != "To Do" || iss.Resolution != "" || len(h.srv.Issues()) != 1 {
				t.Fatalf("after the reopen: %+v", iss)
			}
			jsonEqual(t, iss.Comments, []string{"Reopened: seen again within 72h of the resolution.\n\nfailed again"})
			if tr := h.srv.Transitions(); len(tr) != 2 || tr[1].Name != "Reopen" {
				t.Fatalf("transitions %+v", tr)
			}
			// Open again: a repeat comments, as before.
			send(t, h.sink(), delivery(t, 4, event("d"), within))
			if c := issueOf(t, h, key).Comments; len(c) != 2 || c[1] != "failed again" {
				t.Fatalf("comments %q", c)
			}

			// Resolved once more, and longer ago than 72h: a new ticket.
			send(t, h.sink(), delivery(t, 5, event("e"), resolves(nil)))
			h.clock.Advance(72*time.Hour + time.Second)
			second := send(t, h.sink(), delivery(t, 6, event("f"), within))
			if second == key || len(h.srv.Issues()) != 2 || issueOf(t, h, key).StatusCategory != "done" {
				t.Fatalf("after the window: %q, issues %+v", second, h.srv.Issues())
			}
			if len(h.srv.Transitions()) != 3 {
				t.Errorf("transitions %+v", h.srv.Transitions())
			}
		})
	}
}

func TestReopenResolvedInJira(t *testing.T) {
	noResolution := jirafake.DefaultWorkflow()
	noResolution.Transitions[2].Resolution = "" // Done sets no resolution, so no resolutiondate
	for _, tc := range []struct {
		name     string
		flavor   jirafake.Flavor
		wf       *jirafake.Workflow
		byPerson bool
		reopens  bool
	}{
		// Jira's resolutiondate says when.
		{"by a person/cloud", jirafake.Cloud, nil, true, true},
		{"by a person/datacenter", jirafake.DataCenter, nil, true, true},
		// Data Center without a resolution: only the sink's own record says when.
		{"by the bridge, workflow without resolution/datacenter", jirafake.DataCenter, &noResolution, false, true},
		// Cloud still has statuscategorychangedate.
		{"by the bridge, workflow without resolution/cloud", jirafake.Cloud, &noResolution, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := jirafake.Options{Flavor: tc.flavor}
			if tc.wf != nil {
				opts.Workflows = map[string]jirafake.Workflow{"OPS": *tc.wf}
			}
			h := newHarness(t, opts)
			within := opens(map[string]any{"reopen_within": 3600})
			key := send(t, h.sink(), delivery(t, 1, event("a"), within))
			if tc.byPerson {
				h.srv.SetStatus(key, "Done", "done")
			} else {
				send(t, h.sink(), delivery(t, 2, event("b"), resolves(nil)))
				if !issueOf(t, h, key).Resolved.IsZero() {
					t.Fatal("the workflow set a resolution")
				}
			}
			h.clock.Advance(59 * time.Minute)
			got := send(t, h.sink(), delivery(t, 3, event("c"), within))
			if reopened := got == key && issueOf(t, h, key).StatusCategory == "new"; reopened != tc.reopens {
				t.Fatalf("result %q, issues %+v", got, h.srv.Issues())
			}
		})
	}
	t.Run("nobody knows when", func(t *testing.T) {
		// A person resolved it in a Data Center workflow without resolution.
		h := newHarness(t, jirafake.Options{Flavor: jirafake.DataCenter, Workflows: map[string]jirafake.Workflow{"OPS": noResolution}})
		within := opens(map[string]any{"reopen_within": "1h"})
		key := send(t, h.sink(), delivery(t, 1, event("a"), within))
		h.state.m = map[string]string{} // and the store does not know it
		h.srv.SetStatus(key, "Done", "done")
		if got := send(t, h.sink(), delivery(t, 2, event("b"), within)); got == key {
			t.Fatalf("a ticket the bridge does not know reopened")
		}
	})
}

// TestLifecycleWhileSearchLags: search shows an issue as it was a minute
// ago, and every step runs on a new sink instance (a restart) over the same
// state. The bridge's memory of key to issue, with the resolution time it
// recorded, decides; a lagging search never does.
func TestLifecycleWhileSearchLags(t *testing.T) {
	for _, fl := range flavors {
		t.Run(fl.name, func(t *testing.T) {
			h := newHarness(t, jirafake.Options{Flavor: fl.flavor, SearchLag: time.Minute})
			within := opens(map[string]any{"reopen_within": "10m"})
			key := send(t, h.sink(), delivery(t, 1, event("a"), within))
			h.clock.Advance(2 * time.Minute) // search shows the issue open
			if got := send(t, h.sink(), delivery(t, 2, event("b"), resolves(nil))); got != key {
				t.Fatalf("resolve: %q", got)
			}
			// Search still shows it open; the memory says Done: reopen.
			if got := send(t, h.sink(), delivery(t, 3, event("c"), within)); got != key || issueOf(t, h, key).StatusCategory != "new" {
				t.Fatalf("reopen: %q, %+v", got, issueOf(t, h, key))
			}
			// Resolved again; a repeat of an action without reopen_within
			// opens a new ticket although search shows the old one open.
			h.clock.Advance(2 * time.Minute)
			send(t, h.sink(), delivery(t, 4, event("d"), resolves(nil)))
			second := send(t, h.sink(), delivery(t, 5, event("e"), opens(nil)))
			if second == key || len(h.srv.Issues()) != 2 {
				t.Fatalf("after resolve: %q, issues %+v", second, h.srv.Issues())
			}
			if c := issueOf(t, h, key).Comments; len(c) != 1 {
				t.Errorf("the done issue got comments: %q", c)
			}
			// A store that forgot everything: search (lagging) shows the
			// second ticket's Done predecessor open, but a resolve checks
			// the issue itself and resolves the open one.
			h.clock.Advance(2 * time.Minute)
			h.state.m = map[string]string{}
			if got := send(t, h.sink(), delivery(t, 6, event("f"), resolves(nil))); got != second {
				t.Fatalf("resolve with an empty store: %q, want %q", got, second)
			}
		})
	}
}

// crash is what a test's fault function panics with: the process "dies" at
// that point, and the next sink instance plays the restart.
type crash struct{ point string }

// sendCrashing sends d on s, crashing at point; it reports whether it did.
func sendCrashing(t *testing.T, s *Sink, d *bridge.Delivery, point string) (crashed bool) {
	t.Helper()
	s.fault = func(p string) {
		if p == point {
			panic(crash{p})
		}
	}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crash); !ok {
				panic(r)
			}
			crashed = true
		}
	}()
	if _, err := s.Send(context.Background(), d); err != nil {
		t.Fatalf("send before the crash: %v", err)
	}
	return false
}

// TestLifecycleCrash kills the sink at each lifecycle fault point and
// redelivers the delivery on a new sink instance, as the pipeline does
// after a restart: the ticket is moved once, its comment posted once
// (at least once where the crash fell between the move and the comment),
// and the result is the issue key.
func TestLifecycleCrash(t *testing.T) {
	for _, tc := range []struct {
		point    string
		resolve  bool
		comments []string // the issue's comments after the redelivery
	}{
		{FaultAfterTransition, true, []string{"resolved by the bridge"}},
		{FaultAfterResolve, true, []string{"resolved by the bridge"}},
		{FaultAfterTransition, false, []string{"resolved by the bridge", "Reopened: seen again within 1h of the resolution.\n\nfailed again"}},
		{FaultAfterReopen, false, []string{"resolved by the bridge", "Reopened: seen again within 1h of the resolution.\n\nfailed again"}},
	} {
		op := map[bool]string{true: "resolve", false: "reopen"}[tc.resolve]
		for _, fl := range flavors {
			t.Run(op+"/"+tc.point+"/"+fl.name, func(t *testing.T) {
				h := newHarness(t, jirafake.Options{Flavor: fl.flavor, SearchLag: time.Hour})
				within := opens(map[string]any{"reopen_within": "1h"})
				res := resolves(map[string]any{"comment": "resolved by the bridge"})
				key := send(t, h.sink(), delivery(t, 1, event("a"), within))
				d := delivery(t, 2, event("b"), res)
				if !tc.resolve {
					send(t, h.sink(), d)
					d = delivery(t, 3, event("c"), within)
				}
				if !sendCrashing(t, h.sink(), d, tc.point) {
					t.Fatalf("no crash at %s", tc.point)
				}
				for range 2 {
					if got := send(t, h.sink(), d); got != key {
						t.Fatalf("redelivery: %q, want %q", got, key)
					}
				}
				wantCat := map[bool]string{true: "done", false: "new"}[tc.resolve]
				iss := issueOf(t, h, key)
				if iss.StatusCategory != wantCat || len(h.srv.Issues()) != 1 {
					t.Fatalf("issues %+v", h.srv.Issues())
				}
				jsonEqual(t, iss.Comments, tc.comments)
				if n := len(h.srv.Transitions()); n != map[bool]int{true: 1, false: 2}[tc.resolve] {
					t.Errorf("transitions %+v", h.srv.Transitions())
				}
				// Another event of the key goes on as usual.
				next := delivery(t, 9, event("z"), within)
				if tc.resolve {
					// Done within the window: a reopen.
					if got := send(t, h.sink(), next); got != key || issueOf(t, h, key).StatusCategory != "new" {
						t.Fatalf("next event: %q %+v", got, issueOf(t, h, key))
					}
				} else if got := send(t, h.sink(), next); got != key || len(issueOf(t, h, key).Comments) != len(tc.comments)+1 {
					t.Fatalf("next event: %q %+v", got, issueOf(t, h, key))
				}
			})
		}
	}

	t.Run("transition answer lost", func(t *testing.T) {
		// Jira carries the transition out and the answer never comes.
		h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
		s := h.sink()
		key := send(t, s, delivery(t, 1, event("a"), opens(nil)))
		h.srv.FailNext(jirafake.RouteDoTransition, 1, jirafake.Failure{Hang: true})
		d := delivery(t, 2, event("b"), resolves(map[string]any{"comment": "clean"}))
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := s.Send(ctx, d)
		cancel()
		if err == nil || bridge.IsPermanent(err) {
			t.Fatalf("err %v", err)
		}
		if got := send(t, h.sink(), d); got != key {
			t.Fatalf("retry: %q", got)
		}
		if iss := issueOf(t, h, key); iss.StatusCategory != "done" || len(iss.Comments) != 1 || h.srv.Count(jirafake.RouteDoTransition) != 1 {
			t.Fatalf("issue %+v, %d transitions", iss, h.srv.Count(jirafake.RouteDoTransition))
		}
	})
}

func TestLifecycleValidate(t *testing.T) {
	cfg := &Config{Project: "OPS"}
	key := "k"
	empty := ""
	for _, tc := range []struct {
		name   string
		a      Action
		fields []string
	}{
		{"resolve", Action{Resolve: true, Dedupe: &key, Transition: "Close", Comment: "c", Resolution: "Done"}, nil},
		{"resolve without dedupe", Action{Resolve: true}, []string{"resolve"}},
		{"resolve with dedupe off", Action{Resolve: true, Dedupe: &empty}, []string{"resolve"}},
		{"resolve does not reopen", Action{Resolve: true, Dedupe: &key, ReopenWithin: Window(time.Hour), ReopenTransition: "R"}, []string{"reopen_transition", "reopen_within"}},
		{"reopen", Action{Summary: "s", ReopenWithin: Window(time.Hour), ReopenTransition: "Back"}, nil},
		{"reopen_transition alone", Action{Summary: "s", ReopenTransition: "Back"}, []string{"reopen_transition"}},
		{"reopen without dedupe", Action{Summary: "s", Dedupe: &empty, ReopenWithin: Window(time.Hour)}, []string{"reopen_within"}},
		{"resolve keys without resolve", Action{Summary: "s", Transition: "Done", Comment: "c", Resolution: "Done"}, []string{"comment", "resolution", "transition"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sinktest.Fields(tc.a.Validate(cfg))
			jsonEqual(t, got, tc.fields)
		})
	}
}

func TestWindowDecoding(t *testing.T) {
	for in, want := range map[string]time.Duration{`"72h"`: 72 * time.Hour, `3600`: time.Hour, `"90"`: 90 * time.Second, `""`: 0, `null`: 0, `1.5`: 1500 * time.Millisecond} {
		var w Window
		if err := json.Unmarshal([]byte(in), &w); err != nil || w.D() != want {
			t.Errorf("%s: %v %v, want %v", in, w.D(), err, want)
		}
	}
	for _, in := range []string{`"soon"`, `"-1h"`, `true`, `-5`} {
		var w Window
		if err := json.Unmarshal([]byte(in), &w); err == nil {
			t.Errorf("%s decoded to %v", in, w.D())
		}
	}
	// A rendered action keeps its window.
	var a Action
	d := &bridge.Delivery{Action: json.RawMessage(`{"summary":"s","reopen_within":"72h","reopen_transition":"Back"}`)}
	if err := d.DecodeAction(&a); err != nil || a.ReopenWithin.D() != 72*time.Hour {
		t.Fatalf("%v %v", a.ReopenWithin.D(), err)
	}
}

func TestLifecycleDryRun(t *testing.T) {
	h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
	s := h.sink()
	out, err := s.DryRun(context.Background(), delivery(t, 1, event("a"), resolves(map[string]any{"resolution": "Done", "comment": "clean"})))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/transitions through \"Done\"", DedupeLabel(lifeKey), `resolution "Done"`, `comment "clean"`, "nothing when no issue of the key is open"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run %q lacks %q", out, want)
		}
	}
	out, _ = s.DryRun(context.Background(), delivery(t, 1, event("a"), opens(map[string]any{"reopen_within": "72h"})))
	if !strings.Contains(out, `resolved less than 72h ago, reopen it through "Reopen"`) {
		t.Errorf("dry run %q", out)
	}
	if h.srv.Total() != 0 {
		t.Errorf("%d requests", h.srv.Total())
	}
}
