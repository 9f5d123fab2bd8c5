package jira

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jira "github.com/andygrunwald/go-jira"
	"github.com/trivago/tgo/tcontainer"

	"bridge/bridge"
)

// flavor is the kind of Jira the sink talks to, which decides the search
// endpoint and how an assignee is named.
type flavor int32

const (
	flavorUnknown flavor = iota
	flavorCloud
	flavorDataCenter
)

func (f flavor) String() string {
	switch f {
	case flavorCloud:
		return "cloud"
	case flavorDataCenter:
		return "datacenter"
	}
	return "unknown"
}

// maxReconcile is how many recently created issue ids a Cloud search passes
// in reconcileIssues (Jira's limit).
const maxReconcile = 50

// Sink delivers jira actions to one Jira site. It is safe for concurrent use.
type Sink struct {
	cfg    *Config
	log    *slog.Logger
	state  bridge.State
	hc     *http.Client
	client *jira.Client
	site   string // the site's address without a trailing slash
	lag    time.Duration
	now    func() time.Time
	locks  bridge.Locker // one delivery per dedupe key talks to Jira at a time; shared across reloads

	mu     sync.Mutex
	flavor flavor
	recent []int // ids of issues this sink created lately, oldest first

	fault func(point string) // SinkEnv.Fault: nil but in fault-injection tests
}

// pendingRecheck is how often a delivery whose earlier create has an unknown
// outcome searches again while search_lag lasts: it adopts the issue as
// soon as search shows it, and creates only once search_lag has passed.
const pendingRecheck = 5 * time.Second

// New builds a jira sink from its validated config: one HTTP client with
// the sink's timeout, authenticating with basic auth (user and API token) or
// a bearer personal access token (token alone).
func New(cfg *Config, env bridge.SinkEnv) (*Sink, error) {
	return newSink(cfg, env, time.Now)
}

func newSink(cfg *Config, env bridge.SinkEnv, now func() time.Time) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("jira: %w", err)
	}
	if env.State == nil {
		return nil, errors.New("jira: the sink needs durable state for dedupe")
	}
	hc := newHTTPClient(cfg, env)
	site := strings.TrimRight(cfg.URL, "/")
	client, err := jira.NewClient(hc, site)
	if err != nil {
		return nil, fmt.Errorf("jira: %w", err)
	}
	log := env.Log()
	return &Sink{
		cfg: cfg, log: log, state: env.State, hc: hc, client: client, site: site,
		lag: cfg.SearchLag.D(), now: now, fault: env.Fault, locks: env.KeyLocks(),
	}, nil
}

// newHTTPClient returns the sink's one HTTP client: its own connection pool,
// a User-Agent, the credentials, and the per-attempt timeout as a backstop.
func newHTTPClient(cfg *Config, env bridge.SinkEnv) *http.Client {
	version := env.Version
	if version == "" {
		version = "dev"
	}
	var rt http.RoundTripper = &headers{next: http.DefaultTransport.(*http.Transport).Clone(), userAgent: "bridge/" + version}
	if cfg.User != "" {
		rt = &jira.BasicAuthTransport{Username: cfg.User, Password: cfg.Token.Value(), Transport: rt}
	} else {
		rt = &jira.PATAuthTransport{Token: cfg.Token.Value(), Transport: rt}
	}
	timeout := env.Timeout
	if timeout <= 0 {
		timeout = bridge.DefaultSinkTimeout
	}
	return &http.Client{Transport: rt, Timeout: timeout}
}

// headers sets the User-Agent and Accept headers of every request.
type headers struct {
	next      http.RoundTripper
	userAgent string
}

func (h *headers) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", h.userAgent)
	r.Header.Set("Accept", "application/json")
	return h.next.RoundTrip(r)
}

// Close releases the sink's idle connections.
func (s *Sink) Close(context.Context) error {
	s.hc.CloseIdleConnections()
	return nil
}

// record is what the sink remembers of a dedupe key in its state: the issue
// that holds it, or a create whose outcome is not known yet. Delivery is the
// delivery whose create it was (0 for an issue found without a pending
// create of ours, and in records written before the key kept it), so that a
// redelivery of that one delivery, after a crash before its outcome was
// recorded, reports the issue instead of commenting on it.
//
// Resolved, Moving and Done serve the ticket's lifecycle: when the sink
// resolved the issue, which delivery is moving it through a transition right
// now, and which deliveries completed a resolve or a reopen of the key's
// tickets, so that their redeliveries do not do it again.
type record struct {
	Key      string    `json:"key,omitempty"`
	ID       string    `json:"id,omitempty"`
	Pending  time.Time `json:"pending,omitzero"`   // when a create of unknown outcome was sent
	Delivery int64     `json:"delivery,omitempty"` // the delivery that sent the create
	Resolved time.Time `json:"resolved,omitzero"`  // when this sink resolved Key
	Moving   *moving   `json:"moving,omitempty"`   // a transition of Key whose outcome is not recorded yet
	Done     []doneOp  `json:"done,omitempty"`     // the latest completed resolves and reopens, oldest first
}

// moving is a transition a delivery started: it is recorded before the
// transition is sent and cleared once the delivery's work is recorded.
type moving struct {
	Delivery int64     `json:"delivery"`
	Op       string    `json:"op"` // opResolve or opReopen
	Since    time.Time `json:"since"`
}

// doneOp is a delivery that resolved or reopened the issue Key.
type doneOp struct {
	Delivery int64  `json:"delivery"`
	Key      string `json:"key"`
}

// Lifecycle operations, as recorded in moving.Op.
const (
	opResolve = "resolve"
	opReopen  = "reopen"
)

// maxDone bounds record.Done.
const maxDone = 16

// createdBy reports whether d's own create, in an earlier attempt, opened
// rec's issue.
func (rec record) createdBy(d *bridge.Delivery) bool {
	return rec.Key != "" && d.ID != 0 && rec.Delivery == d.ID
}

// doneBy returns the issue d resolved or reopened in an earlier attempt
// whose outcome was not recorded, if it did.
func (rec record) doneBy(d *bridge.Delivery) (string, bool) {
	if d.ID == 0 {
		return "", false
	}
	for _, op := range rec.Done {
		if op.Delivery == d.ID {
			return op.Key, true
		}
	}
	return "", false
}

// movingBy reports whether d started op on rec's issue in an earlier
// attempt that did not finish.
func (rec record) movingBy(d *bridge.Delivery, op string) bool {
	return rec.Moving != nil && d.ID != 0 && rec.Moving.Delivery == d.ID && rec.Moving.Op == op
}

// next returns a record for another state of the key that keeps what must
// survive every change: the deliveries that completed lifecycle work.
func (rec record) next(n record) record {
	n.Done = rec.Done
	return n
}

// withDone returns rec with d's completed work on key added and no
// transition in flight.
func (rec record) withDone(d *bridge.Delivery, key string) record {
	rec.Moving = nil
	if d.ID == 0 {
		return rec
	}
	done := append(append([]doneOp(nil), rec.Done...), doneOp{Delivery: d.ID, Key: key})
	if len(done) > maxDone {
		done = done[len(done)-maxDone:]
	}
	rec.Done = done
	return rec
}

// FaultAfterRemember is the sink's fault-injection point (see
// bridge.SinkEnv.Fault): a new issue's key is in the state, and the delivery's
// outcome is not recorded yet.
const FaultAfterRemember = "jira.after-remember"

// Fault-injection points of the ticket lifecycle (see bridge.SinkEnv.Fault).
const (
	// FaultAfterTransition: Jira moved the issue (resolve or reopen); its
	// comment is not posted and nothing after the move is recorded.
	FaultAfterTransition = "jira.after-transition"
	// FaultAfterResolve: the issue is resolved, commented on and recorded
	// as resolved; the delivery's outcome is not recorded yet.
	FaultAfterResolve = "jira.after-resolve"
	// FaultAfterReopen: the issue is reopened, commented on and recorded;
	// the delivery's outcome is not recorded yet.
	FaultAfterReopen = "jira.after-reopen"
)

func stateKey(project, label string) string { return "issue:" + project + ":" + label }

// resolveAction decodes d's action and resolves it against the sink's config and
// d's event.
func (s *Sink) resolveAction(d *bridge.Delivery) (*settings, error) {
	var a Action
	if err := d.DecodeAction(&a); err != nil {
		return nil, fmt.Errorf("jira: decode action: %w", err)
	}
	return resolve(a, s.cfg, d.Event)
}

// Send opens a ticket for d, or comments on (or skips, or reopens) the
// ticket of its dedupe key; a resolve action moves the key's open ticket
// through its transition. The result is the issue key in every case but a
// resolve action that found no open ticket, whose result is empty.
func (s *Sink) Send(ctx context.Context, d *bridge.Delivery) (string, error) {
	st, err := s.resolveAction(d)
	if err != nil {
		return "", err
	}
	if st.dedupeKey == "" {
		iss, err := s.create(ctx, st)
		if err != nil {
			return "", err
		}
		return iss.Key, nil
	}
	label := DedupeLabel(st.dedupeKey)
	sk := stateKey(st.Project, label)
	unlock, err := s.locks.Lock(ctx, sk)
	if err != nil {
		return "", fmt.Errorf("jira: wait for the other delivery of this dedupe key: %w", err)
	}
	defer unlock()
	if st.Resolve {
		return s.resolveTicket(ctx, d, st, label, sk)
	}
	return s.deliver(ctx, d, st, label, sk)
}

// Link returns the address at which a person opens the issue of a Send
// result (an issue key), or "" for an empty result. Chained actions show it.
func (s *Sink) Link(result string) string {
	if result == "" {
		return ""
	}
	return s.browse(result)
}

// maxFound bounds how many issues one delivery takes from search and finds
// Done or gone before it stops searching (search may show an issue open
// that is Done already).
const maxFound = 3

// deliver does Send's work for a dedupe key while holding the key's lock.
func (s *Sink) deliver(ctx context.Context, d *bridge.Delivery, st *settings, label, sk string) (string, error) {
	rec, err := s.load(ctx, sk)
	if err != nil {
		return "", err
	}
	if rec.createdBy(d) {
		// An earlier attempt of d opened the issue and the process stopped
		// before the outcome was recorded: d's work is done, and a comment
		// would report d's own event as seen again.
		s.log.Info("jira: an earlier attempt of this delivery opened the issue", "issue", rec.Key, "url", s.browse(rec.Key))
		return rec.Key, nil
	}
	if key, ok := rec.doneBy(d); ok {
		s.log.Info("jira: an earlier attempt of this delivery reopened the issue", "issue", key, "url", s.browse(key))
		return key, nil
	}
	// Issues found Done or gone, which a lagging search may still show open.
	var exclude []string
	for found := 0; ; found++ {
		if rec.Key != "" {
			key, handled, err := s.known(ctx, d, st, rec, sk)
			if handled {
				return key, err
			}
			exclude = append(exclude, rec.Key)
			rec = rec.next(record{})
		}
		if found == maxFound {
			break
		}
		iss, err := s.search(ctx, st.Project, label, exclude)
		if err != nil {
			return "", err
		}
		if iss == nil {
			break
		}
		// The found issue is taken to be the one the pending create opened:
		// its delivery stays the issue's creator, whichever delivery found it.
		adopted := rec.next(record{Key: iss.Key, ID: iss.ID})
		if !rec.Pending.IsZero() {
			adopted.Delivery = rec.Delivery
		}
		if err := s.save(ctx, sk, adopted); err != nil {
			return "", err
		}
		if adopted.createdBy(d) {
			// This delivery's own earlier create went through after all.
			s.log.Info("jira: found the issue of an earlier create with an unknown outcome", "issue", iss.Key, "url", s.browse(iss.Key))
			return iss.Key, nil
		}
		// Search lags: the issue's own status decides, as for a remembered one.
		rec = adopted
	}
	if !rec.Pending.IsZero() {
		if wait := rec.Pending.Add(s.lag).Sub(s.now()); wait > 0 {
			return "", bridge.RetryAfter(fmt.Errorf(
				"jira: create issue: an earlier create for this dedupe key (label %s) has an unknown outcome and search does not show it yet; not creating another before %s",
				label, rec.Pending.Add(s.lag).UTC().Format(time.RFC3339)), min(wait, pendingRecheck))
		}
	}

	if err := s.save(ctx, sk, rec.next(record{Pending: s.now(), Delivery: d.ID})); err != nil {
		return "", err
	}
	iss, err := s.create(ctx, st)
	if err != nil {
		var u *unknownOutcome
		if errors.As(err, &u) {
			return "", bridge.RetryAfter(fmt.Errorf("%w (the outcome is unknown: the next attempt searches for label %s first)", err, label), min(s.lag, pendingRecheck))
		}
		if derr := s.forget(context.WithoutCancel(ctx), sk, rec); derr != nil {
			s.log.Warn("jira: could not clear the marker of a failed create; the next attempt waits for search_lag", "label", label, "error", derr)
		}
		return "", err
	}
	// The issue exists now: remember it even if the attempt's time is up.
	if err := s.save(context.WithoutCancel(ctx), sk, rec.next(record{Key: iss.Key, ID: iss.ID, Delivery: d.ID})); err != nil {
		// The pending marker stays, so a repeat searches (with this issue
		// reconciled) instead of creating; the ticket itself exists.
		s.log.Error("jira: could not remember the new issue", "issue", iss.Key, "error", err)
	} else if s.fault != nil {
		s.fault(FaultAfterRemember)
	}
	return iss.Key, nil
}

// forget drops the key's issue or pending create from rec, keeping the
// deliveries that completed lifecycle work.
func (s *Sink) forget(ctx context.Context, sk string, rec record) error {
	if len(rec.Done) == 0 {
		return s.state.Delete(ctx, sk)
	}
	return s.save(ctx, sk, rec.next(record{}))
}

// known carries out d for the issue the key's record names: a repeat while
// it is open; a reopen when it was resolved within reopen_within. handled is
// false when the issue is Done (and not reopened) or gone: the record is
// then forgotten and the caller looks for another issue or opens one.
func (s *Sink) known(ctx context.Context, d *bridge.Delivery, st *settings, rec record, sk string) (key string, handled bool, err error) {
	iss, err := s.getIssue(ctx, rec.Key)
	if err != nil {
		return "", true, err
	}
	switch {
	case iss == nil:
		s.log.Info("jira: the dedupe key's issue is gone; the next event opens a new one", "issue", rec.Key)
	case !isDone(iss):
		if rec.movingBy(d, opReopen) {
			// An earlier attempt of d reopened it and stopped before the
			// comment was posted and recorded.
			key, err := s.finishReopen(ctx, d, st, rec, sk)
			return key, true, err
		}
		key, err := s.repeat(ctx, d, st, rec.Key, sk)
		return key, true, err
	case st.ReopenWithin > 0:
		at := resolvedAt(iss, rec)
		switch ago := s.now().Sub(at); {
		case at.IsZero():
			s.log.Info("jira: the dedupe key's issue is done, and Jira does not say when it was resolved; the event opens a new one", "issue", rec.Key)
		case ago < st.ReopenWithin.D():
			key, err := s.reopen(ctx, d, st, rec, iss, sk, ago)
			return key, true, err
		default:
			s.log.Info("jira: the dedupe key's issue was resolved longer than reopen_within ago; the event opens a new one",
				"issue", rec.Key, "resolved", at.UTC().Format(time.RFC3339), "reopen_within", st.ReopenWithin.D().String())
		}
	default:
		s.log.Info("jira: the dedupe key's issue is done; the next event opens a new one", "issue", rec.Key)
	}
	if err := s.forget(ctx, sk, rec); err != nil {
		return "", true, fmt.Errorf("jira: forget issue %s: %w", rec.Key, err)
	}
	return "", false, nil
}

// repeat carries out on_duplicate for an open issue.
func (s *Sink) repeat(ctx context.Context, d *bridge.Delivery, st *settings, key, sk string) (string, error) {
	if st.OnDuplicate == OnDuplicateSkip {
		s.log.Debug("jira: repeat skipped", "issue", key)
		return key, nil
	}
	if err := s.comment(ctx, key, repeatText(st, d.Event)); err != nil {
		if !errors.Is(err, errGone) {
			return "", err
		}
		// Deleted since the status check: forget it and let the next
		// attempt open a new ticket.
		rec, lerr := s.load(ctx, sk)
		if lerr != nil {
			return "", lerr
		}
		if derr := s.forget(ctx, sk, rec); derr != nil {
			return "", fmt.Errorf("jira: forget deleted issue %s: %w", key, derr)
		}
		return "", err
	}
	s.log.Info("jira: commented on the open issue", "issue", key, "url", s.browse(key))
	return key, nil
}

// repeatText is the comment of a repeat: the rendered description, or one
// line naming the event when there is none.
func repeatText(st *settings, ev *bridge.Event) string {
	if strings.TrimSpace(st.Description) != "" {
		return st.Description
	}
	if ev == nil {
		return "Seen again: " + st.Summary
	}
	return cutRunes(fmt.Sprintf("Seen again: %s (event %s from %s at %s)",
		st.Summary, ev.ID, ev.Source, ev.Time.UTC().Format(time.RFC3339)), maxDescriptionRunes)
}

func (s *Sink) load(ctx context.Context, sk string) (record, error) {
	v, ok, err := s.state.Get(ctx, sk)
	if err != nil {
		return record{}, fmt.Errorf("jira: read dedupe state: %w", err)
	}
	var rec record
	if ok {
		if err := json.Unmarshal([]byte(v), &rec); err != nil {
			s.log.Warn("jira: ignoring unreadable dedupe state", "error", err)
			return record{}, nil
		}
	}
	return rec, nil
}

func (s *Sink) save(ctx context.Context, sk string, rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("jira: encode dedupe state: %w", err)
	}
	if err := s.state.Put(ctx, sk, string(b)); err != nil {
		return fmt.Errorf("jira: write dedupe state: %w", err)
	}
	return nil
}

// errGone reports that a remembered issue no longer exists (or the account
// can no longer see it); the delivery is retried and opens a new ticket.
var errGone = errors.New("the issue does not exist or the account cannot see it; the next attempt opens a new one")

// unknownOutcome is a create that was sent but got no definite answer: the
// issue may or may not exist.
type unknownOutcome struct{ err error }

func (u *unknownOutcome) Error() string { return u.err.Error() }
func (u *unknownOutcome) Unwrap() error { return u.err }

// create sends one create request and logs the new issue's browse URL.
func (s *Sink) create(ctx context.Context, st *settings) (*jira.Issue, error) {
	fl, _ := s.flavorOf(ctx)
	var wrote atomic.Bool
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	})
	iss, resp, err := s.client.Issue.CreateWithContext(tctx, buildIssue(st, fl))
	if err != nil {
		e := apiError("create issue", resp, err)
		if wrote.Load() && ambiguousStatus(resp) {
			return nil, &unknownOutcome{err: e}
		}
		return nil, e
	}
	if iss.Key == "" {
		return nil, &unknownOutcome{err: errors.New("jira: create issue: Jira's answer has no issue key")}
	}
	if id, err := strconv.Atoi(iss.ID); err == nil {
		s.mu.Lock()
		s.recent = append(s.recent, id)
		if len(s.recent) > maxReconcile {
			s.recent = s.recent[len(s.recent)-maxReconcile:]
		}
		s.mu.Unlock()
	}
	s.log.Info("jira: opened issue", "issue", iss.Key, "url", s.browse(iss.Key))
	return iss, nil
}

// ambiguousStatus reports whether a create that was sent may have created
// the issue although it failed: no answer at all, an answer that could not
// be read, or a server error that may come after the issue was stored.
func ambiguousStatus(resp *jira.Response) bool {
	if resp == nil || resp.Response == nil {
		return true
	}
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return true
	case c == http.StatusInternalServerError, c == http.StatusBadGateway, c == http.StatusGatewayTimeout:
		return true
	}
	return false
}

// buildIssue is the create request for st. The assignee goes through
// Unknowns: go-jira's User struct would add a "Password" key Jira refuses.
func buildIssue(st *settings, fl flavor) *jira.Issue {
	f := &jira.IssueFields{
		Project:     jira.Project{Key: st.Project},
		Type:        jira.IssueType{Name: st.IssueType},
		Summary:     st.Summary,
		Description: st.Description,
		Labels:      st.Labels,
	}
	if st.Priority != "" {
		f.Priority = &jira.Priority{Name: st.Priority}
	}
	for _, c := range st.Components {
		f.Components = append(f.Components, &jira.Component{Name: c})
	}
	unk := tcontainer.NewMarshalMap()
	for k, v := range st.Fields {
		unk[k] = v
	}
	if st.Assignee != "" {
		if fl == flavorDataCenter {
			unk["assignee"] = map[string]any{"name": st.Assignee}
		} else {
			unk["assignee"] = map[string]any{"accountId": st.Assignee}
		}
	}
	if len(unk) > 0 {
		f.Unknowns = unk
	}
	return &jira.Issue{Fields: f}
}

// issueFields are the fields getIssue asks for: the status, and when the
// issue was resolved (Cloud also says when its status category changed).
const issueFields = "status,resolution,resolutiondate,statuscategorychangedate"

// getIssue reads a remembered issue's status and resolution. It returns
// nil, nil when the issue is gone (or the account can no longer see it).
func (s *Sink) getIssue(ctx context.Context, key string) (*jira.Issue, error) {
	iss, resp, err := s.client.Issue.GetWithContext(ctx, key, &jira.GetQueryOptions{Fields: issueFields})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return nil, nil
		}
		return nil, apiError("get issue "+key, resp, err)
	}
	return iss, nil
}

func isDone(iss *jira.Issue) bool {
	return iss.Fields != nil && iss.Fields.Status != nil &&
		strings.EqualFold(iss.Fields.Status.StatusCategory.Key, jira.StatusCategoryComplete)
}

// statusName is the name of the issue's status, for messages.
func statusName(iss *jira.Issue) string {
	if iss == nil || iss.Fields == nil || iss.Fields.Status == nil {
		return ""
	}
	return iss.Fields.Status.Name
}

// jiraTime is the layout of Jira's timestamps (2026-11-23T12:00:00.000+0000).
const jiraTime = "2006-01-02T15:04:05.999-0700"

// resolvedAt says when a Done issue was resolved: the latest of the time
// the sink recorded when it resolved the issue itself, Jira's resolutiondate
// and Cloud's statuscategorychangedate. Zero when none is known (a workflow
// that sets no resolution, on Data Center, and not resolved by the sink).
func resolvedAt(iss *jira.Issue, rec record) time.Time {
	var at time.Time
	if rec.Key == iss.Key {
		at = rec.Resolved
	}
	if iss.Fields == nil {
		return at
	}
	if t := time.Time(iss.Fields.Resolutiondate); t.After(at) {
		at = t
	}
	if v, ok := iss.Fields.Unknowns["statuscategorychangedate"].(string); ok {
		if t, err := time.Parse(jiraTime, v); err == nil && t.After(at) {
			at = t
		}
	}
	return at
}

// search finds an open issue of project with label, other than those in
// exclude. Jira Cloud is asked through /rest/api/2/search/jql with the
// issues this sink created lately passed in reconcileIssues, so its search
// lag cannot hide them; Data Center through /rest/api/2/search.
func (s *Sink) search(ctx context.Context, project, label string, exclude []string) (*jira.Issue, error) {
	jql := fmt.Sprintf("project = %s AND labels = %s AND statusCategory != Done ORDER BY created DESC",
		jqlQuote(project), jqlQuote(label))
	var found *jira.Issue
	err := s.query(ctx, jql, []string{"status", "created"}, 10, 5, true, func(iss *jira.Issue) bool {
		if !isDone(iss) && !slices.Contains(exclude, iss.Key) {
			found = iss
			return true
		}
		return false
	})
	return found, err
}

// query runs jql, handing each issue found to each until it returns true,
// for at most pages pages of pageSize issues. Cloud is asked through
// /search/jql (with the sink's recent issues in reconcileIssues when
// reconcile is set), Data Center through /search; a 404 from the one or a
// 410 from the other settles which the site is.
func (s *Sink) query(ctx context.Context, jql string, fields []string, pageSize, pages int, reconcile bool, each func(*jira.Issue) bool) error {
	fl, known := s.flavorOf(ctx)
	if fl != flavorDataCenter {
		opts := &jira.SearchOptionsV2{MaxResults: pageSize, Fields: fields}
		if reconcile {
			opts.ReconcileIssues = s.recentIDs()
		}
		for page := 0; page < pages; page++ {
			issues, resp, err := s.client.Issue.SearchV2JQLWithContext(ctx, jql, opts)
			if err != nil {
				if !known && resp != nil && resp.StatusCode == http.StatusNotFound {
					s.setFlavor(flavorDataCenter, "search/jql answered 404")
					fl = flavorDataCenter
					break
				}
				return apiError("search issues", resp, err)
			}
			for i := range issues {
				if each(&issues[i]) {
					return nil
				}
			}
			if resp.IsLast || resp.NextPageToken == "" {
				return nil
			}
			opts.NextPageToken = resp.NextPageToken
		}
		if fl != flavorDataCenter {
			return nil
		}
	}
	for start, page := 0, 0; page < pages; page++ {
		issues, resp, err := s.client.Issue.SearchWithContext(ctx, jql, &jira.SearchOptions{StartAt: start, MaxResults: pageSize, Fields: fields})
		if err != nil {
			if !known && resp != nil && resp.StatusCode == http.StatusGone {
				s.setFlavor(flavorCloud, "search answered 410")
				return s.query(ctx, jql, fields, pageSize, pages, reconcile, each)
			}
			return apiError("search issues", resp, err)
		}
		for i := range issues {
			if each(&issues[i]) {
				return nil
			}
		}
		start += len(issues)
		if len(issues) == 0 || start >= resp.Total {
			return nil
		}
	}
	return nil
}

func (s *Sink) recentIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.recent...)
}

// flavorOf tells Cloud from Data Center once, from serverInfo's
// deploymentType, and reports whether it knows or guesses. When serverInfo
// cannot be read it guesses from the auth (basic: Cloud) without
// remembering; a 404 from /search/jql or a 410 from /search settles it.
func (s *Sink) flavorOf(ctx context.Context) (flavor, bool) {
	s.mu.Lock()
	f := s.flavor
	s.mu.Unlock()
	if f != flavorUnknown {
		return f, true
	}
	var info struct {
		DeploymentType string `json:"deploymentType"`
	}
	req, err := s.client.NewRequestWithContext(ctx, http.MethodGet, "rest/api/2/serverInfo", nil)
	if err == nil {
		var resp *jira.Response
		resp, err = s.client.Do(req, &info)
		if err != nil {
			err = apiError("server info", resp, err)
		}
	}
	if err == nil && info.DeploymentType != "" {
		if strings.EqualFold(info.DeploymentType, "Cloud") {
			s.setFlavor(flavorCloud, "serverInfo deploymentType "+info.DeploymentType)
			return flavorCloud, true
		}
		s.setFlavor(flavorDataCenter, "serverInfo deploymentType "+info.DeploymentType)
		return flavorDataCenter, true
	}
	if s.cfg.User != "" {
		return flavorCloud, false
	}
	return flavorDataCenter, false
}

func (s *Sink) setFlavor(f flavor, why string) {
	s.mu.Lock()
	changed := s.flavor != f
	s.flavor = f
	s.mu.Unlock()
	if changed {
		s.log.Info("jira: site kind detected", "kind", f.String(), "from", why)
	}
}

// comment posts a plain {"body": text} comment. go-jira's AddComment sends
// author and visibility fields Jira Cloud refuses.
func (s *Sink) comment(ctx context.Context, key, text string) error {
	req, err := s.client.NewRequestWithContext(ctx, http.MethodPost,
		"rest/api/2/issue/"+url.PathEscape(key)+"/comment", map[string]string{"body": text})
	if err != nil {
		return fmt.Errorf("jira: comment on %s: %w", key, err)
	}
	var out struct {
		ID string `json:"id"`
	}
	resp, err := s.client.Do(req, &out)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			_ = readMessage(resp.Body)
			return fmt.Errorf("jira: comment on %s: %w", key, errGone)
		}
		return apiError("comment on "+key, resp, err)
	}
	return nil
}

// browse is the issue's address for people.
func (s *Sink) browse(key string) string { return s.site + "/browse/" + key }

// DryRun describes the create request Send would make for d (or, for a
// resolve action, the transition), without touching the network.
func (s *Sink) DryRun(_ context.Context, d *bridge.Delivery) (string, error) {
	st, err := s.resolveAction(d)
	if err != nil {
		return "", err
	}
	if st.Resolve {
		out := fmt.Sprintf("POST %s/rest/api/2/issue/<the open issue in %s with label %s>/transitions through %q",
			s.site, st.Project, DedupeLabel(st.dedupeKey), st.Transition)
		if st.Resolution != "" {
			out += fmt.Sprintf(" with resolution %q", st.Resolution)
		}
		if st.Comment != "" {
			out += fmt.Sprintf(", then comment %q", cutRunes(st.Comment, 200))
		}
		return out + " (nothing when no issue of the key is open)", nil
	}
	s.mu.Lock()
	fl := s.flavor
	s.mu.Unlock()
	if fl == flavorUnknown {
		fl = flavorDataCenter
		if s.cfg.User != "" {
			fl = flavorCloud
		}
	}
	b, err := json.Marshal(buildIssue(st, fl))
	if err != nil {
		return "", fmt.Errorf("jira: encode issue: %w", err)
	}
	out := fmt.Sprintf("POST %s/rest/api/2/issue %s", s.site, b)
	if st.dedupeKey != "" {
		out += fmt.Sprintf(" (unless an open issue in %s has label %s: then %s it)",
			st.Project, DedupeLabel(st.dedupeKey), map[string]string{OnDuplicateComment: "comment on", OnDuplicateSkip: "skip"}[st.OnDuplicate])
		if st.ReopenWithin > 0 {
			out += fmt.Sprintf(" (or, when its issue was resolved less than %s ago, reopen it through %q and comment)",
				formatWindow(st.ReopenWithin.D()), st.ReopenTransition)
		}
	}
	return out, nil
}

// apiError turns a failed go-jira call into the sink's error: Jira's own
// messages word for word, classified by status (400, 401, 403, 404 and other
// 4xx permanent; 408, 429 and 5xx retried, honouring Retry-After).
func apiError(op string, resp *jira.Response, err error) error {
	if resp == nil || resp.Response == nil || (resp.StatusCode >= 200 && resp.StatusCode < 300) {
		return fmt.Errorf("jira: %s: %w", op, err)
	}
	var msg string
	var je *jira.Error
	if errors.As(err, &je) {
		msg = formatMessages(je.ErrorMessages, je.Errors)
	} else {
		msg = readMessage(resp.Body)
	}
	return fmt.Errorf("jira: %s: %w", op, bridge.HTTPStatusError(resp.StatusCode, resp.Header, msg))
}

// readMessage reads an error body: Jira's ErrorCollection, the JAX-RS
// {"message": ...} form, or text.
func readMessage(body io.ReadCloser) string {
	_, _, text := readErrors(body)
	return text
}

// formatMessages writes Jira's errorMessages, then its errors map as
// "field: message" sorted by field, separated by "; ".
func formatMessages(msgs []string, fields map[string]string) string {
	parts := make([]string, 0, len(msgs)+len(fields))
	for _, m := range msgs {
		if m = strings.TrimSpace(m); m != "" {
			parts = append(parts, m)
		}
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+": "+fields[k])
	}
	return strings.Join(parts, "; ")
}

// jqlQuote quotes s as a JQL string.
func jqlQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
