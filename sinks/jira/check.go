package jira

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	jira "github.com/andygrunwald/go-jira"

	"bridge/bridge"
	"bridge/sinks/internal/httpclient"
)

// checkTimeout bounds each request of Check.
const checkTimeout = 30 * time.Second

// Check confirms, with the sink's real credentials, what the actions of a
// jira sink need: that the account can sign in, that every project, issue
// type, priority, component and field the actions use exists and is on the
// project's create screen, and that every transition the actions name
// (resolve's transition, reopen_within's reopen_transition, defaults
// included) and every resolution exist. Jira lists only the transitions from
// an issue's current status, so a transition is checked on sample issues of
// the project and issue type in the status it leaves from (open ones for a
// resolve, Done ones for a reopen); where there is none, the check says the
// transition was not checked. It prints one line per finding to w, each
// problem in words a Jira admin can act on, and returns how many problems it
// found. err is set only when the check itself could not run.
func Check(ctx context.Context, cfg *Config, actions []bridge.Action, w io.Writer) (problems int, err error) {
	if err := cfg.Validate(); err != nil {
		return 0, fmt.Errorf("jira: %w", err)
	}
	hc := newHTTPClient(cfg, bridge.SinkEnv{Timeout: checkTimeout})
	defer hc.CloseIdleConnections()
	site := strings.TrimRight(cfg.URL, "/")
	client, err := jira.NewClient(hc, site)
	if err != nil {
		return 0, fmt.Errorf("jira: %w", err)
	}
	c := &checker{
		s:   &Sink{cfg: cfg, log: slog.New(slog.DiscardHandler), hc: hc, client: client, site: site, now: time.Now},
		w:   w,
		cfg: cfg,
	}
	return c.run(ctx, actions)
}

type checker struct {
	s        *Sink
	w        io.Writer
	cfg      *Config
	problems int
}

func (c *checker) problem(format string, args ...any) {
	c.problems++
	fmt.Fprintf(c.w, "  problem: "+format+"\n", args...)
}

func (c *checker) ok(format string, args ...any) { fmt.Fprintf(c.w, "  ok: "+format+"\n", args...) }

func (c *checker) note(format string, args ...any) { fmt.Fprintf(c.w, "  note: "+format+"\n", args...) }

// needs is what the actions of one project and issue type use.
type needs struct {
	priorities, components map[string]bool
	fields                 map[string][]any // field id: literal values used
	labels, description    bool
	assignee               bool
}

// transitionUse is a transition the actions of one project and issue type
// name.
type transitionUse struct {
	name       string // as the rules write it
	key        string // the action key: transition or reopen_transition
	fromDone   bool   // made from a Done issue (a reopen) or an open one (a resolve)
	resolution string // a resolve action's resolution, if any
}

func (u transitionUse) what() string {
	if u.fromDone {
		return "reopens"
	}
	return "resolves"
}

func (c *checker) run(ctx context.Context, actions []bridge.Action) (int, error) {
	who, status, err := c.myself(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return c.problems, ctx.Err()
		}
		if err := c.unreachable(err, status); err != nil {
			return c.problems, err
		}
		how := "a Jira Cloud account email in user and an API token in token"
		if c.cfg.User == "" {
			how = "a Data Center personal access token in token (or, on Jira Cloud, the account email in user and an API token in token)"
		}
		switch {
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			c.problem("the token is refused by %s: %s. Check that the sink has %s, valid and not expired (a 403 may also mean the account must pass a CAPTCHA in the browser first).", c.s.site, sentence(err), how)
		case status >= 500:
			return c.problems, fmt.Errorf("jira: %s cannot answer now: %s; try again later", c.s.site, sentence(err))
		default:
			c.problem("cannot sign in to %s: %s. Check that url is the address of the Jira site (with its context path, if any).", c.s.site, sentence(err))
		}
		return c.problems, nil
	}
	fl, _ := c.s.flavorOf(ctx)
	kind := map[flavor]string{flavorCloud: "Jira Cloud", flavorDataCenter: "Jira Data Center"}[fl]
	c.ok("signed in to %s (%s) as %s", c.s.site, kind, who)

	plan := map[string]map[string]*needs{}           // project: issue type: needs of creates
	moves := map[string]map[string][]transitionUse{} // project: issue type: transitions
	var resolves []*Action                           // resolve actions, placed once the creates are known
	resolutions := map[string]bool{}                 // resolution names used
	addMove := func(project, issueType string, u transitionUse) {
		if moves[project] == nil {
			moves[project] = map[string][]transitionUse{}
		}
		if !slices.Contains(moves[project][issueType], u) {
			moves[project][issueType] = append(moves[project][issueType], u)
		}
	}
	for _, act := range actions {
		a, ok := act.(*Action)
		if !ok {
			continue
		}
		project := strings.TrimSpace(a.Project)
		if project == "" {
			project = c.cfg.Project
		}
		if a.Resolve {
			if isTemplate(project) {
				c.note("project %q of a resolve action is a template: its transition can only be checked once rendered", project)
				continue
			}
			resolves = append(resolves, a)
			if r := strings.TrimSpace(a.Resolution); r != "" && !isTemplate(r) {
				resolutions[r] = true
			}
			continue
		}
		issueType := strings.TrimSpace(a.IssueType)
		if issueType == "" {
			issueType = DefaultIssueType
		}
		if isTemplate(project) || isTemplate(issueType) {
			c.note("project %q / issue type %q is a template: it can only be checked once rendered", project, issueType)
			continue
		}
		if plan[project] == nil {
			plan[project] = map[string]*needs{}
		}
		if a.ReopenWithin > 0 {
			name := strings.TrimSpace(a.ReopenTransition)
			if name == "" {
				name = DefaultReopenTransition
			}
			addMove(project, issueType, transitionUse{name: name, key: "reopen_transition", fromDone: true})
		}
		n := plan[project][issueType]
		if n == nil {
			n = &needs{priorities: map[string]bool{}, components: map[string]bool{}, fields: map[string][]any{}}
			plan[project][issueType] = n
		}
		if p := strings.TrimSpace(a.Priority); p != "" {
			if isTemplate(p) {
				c.note("priority %q is a template: it can only be checked once rendered", p)
			} else {
				n.priorities[p] = true
			}
		}
		for _, comp := range a.Components {
			if comp = strings.TrimSpace(comp); comp != "" && !isTemplate(comp) {
				n.components[comp] = true
			}
		}
		for id, v := range a.Fields {
			n.fields[id] = append(n.fields[id], v)
		}
		n.labels = n.labels || len(a.Labels) > 0 || a.Dedupe == nil || *a.Dedupe != ""
		n.description = n.description || a.Description != ""
		n.assignee = n.assignee || a.Assignee != ""
	}
	// A resolve action moves the tickets the creates of its project open:
	// its transition is checked on their issue types, or on its own
	// issue_type when it names one.
	for _, a := range resolves {
		project := strings.TrimSpace(a.Project)
		if project == "" {
			project = c.cfg.Project
		}
		name := strings.TrimSpace(a.Transition)
		if name == "" {
			name = DefaultTransition
		}
		u := transitionUse{name: name, key: "transition", resolution: strings.TrimSpace(a.Resolution)}
		var types []string
		switch it := strings.TrimSpace(a.IssueType); {
		case isTemplate(it):
			c.note("issue type %q of a resolve action is a template: its transition can only be checked once rendered", it)
			continue
		case it != "":
			types = []string{it}
		case len(plan[project]) > 0:
			types = sortedKeys(plan[project])
		default:
			types = []string{DefaultIssueType}
		}
		if plan[project] == nil {
			plan[project] = map[string]*needs{}
		}
		for _, t := range types {
			addMove(project, t, u)
		}
	}
	if len(plan) == 0 {
		c.note("no rule sends a jira action to this sink: nothing more to check")
	}
	for _, project := range sortedKeys(plan) {
		if err := c.checkProject(ctx, project, plan[project], moves[project]); err != nil {
			return c.problems, err
		}
	}
	if len(resolutions) > 0 {
		if err := c.checkResolutions(ctx, resolutions); err != nil {
			return c.problems, err
		}
	}
	return c.problems, nil
}

// myself asks Jira who the credentials are. status is the HTTP status of
// a refusal; 0 when no answer came.
func (c *checker) myself(ctx context.Context) (who string, status int, err error) {
	var u jira.User
	req, err := c.s.client.NewRequestWithContext(ctx, http.MethodGet, "rest/api/2/myself", nil)
	if err != nil {
		return "", 0, err
	}
	if resp, err := c.s.client.Do(req, &u); err != nil {
		if resp != nil && resp.Response != nil {
			status = resp.StatusCode
		}
		return "", status, apiError("who am I", resp, err)
	}
	id := u.AccountID
	if id == "" {
		id = u.Name
	}
	return fmt.Sprintf("%s (%s)", u.DisplayName, id), 0, nil
}

// unreachable returns the error that ends the check when err (with no HTTP
// answer: status 0) is a failure to reach Jira at all, a wrong address or
// a network problem rather than wrong credentials; nil otherwise.
func (c *checker) unreachable(err error, status int) error {
	if status != 0 {
		return nil
	}
	if cause, ok := httpclient.Unreachable(err); ok {
		return &reachError{fmt.Sprintf("jira: cannot reach %s: %s", httpclient.Host(c.s.site), cause)}
	}
	return nil
}

// reachError ends a check part way: Jira could not be reached at all, so
// nothing more can be checked.
type reachError struct{ msg string }

func (e *reachError) Error() string { return e.msg }

// stop returns the error that ends the check for err, an error of a
// request the check made: the context's, or Jira out of reach; nil when
// the check goes on (and reports err as a finding).
func (c *checker) stop(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var re *reachError
	if errors.As(err, &re) {
		return err
	}
	return c.unreachable(err, 0)
}

// answerStatus is the HTTP status of a go-jira answer, 0 for none.
func answerStatus(resp *jira.Response) int {
	if resp == nil || resp.Response == nil {
		return 0
	}
	return resp.StatusCode
}

// metaItem is an entry of Jira's create metadata: an issue type or a field.
type metaItem struct {
	ID              string           `json:"id"`
	FieldID         string           `json:"fieldId"`
	Key             string           `json:"key"`
	Name            string           `json:"name"`
	Required        bool             `json:"required"`
	HasDefaultValue bool             `json:"hasDefaultValue"`
	AllowedValues   []map[string]any `json:"allowedValues"`
}

// metaPage is one page of create metadata: Cloud names the list
// issueTypes or fields, Data Center values.
type metaPage struct {
	IssueTypes []metaItem `json:"issueTypes"`
	Fields     []metaItem `json:"fields"`
	Values     []metaItem `json:"values"`
	Results    []metaItem `json:"results"`
	StartAt    int        `json:"startAt"`
	MaxResults int        `json:"maxResults"`
	Total      int        `json:"total"`
	IsLast     *bool      `json:"isLast"`
}

// meta reads every page of a create metadata list.
func (c *checker) meta(ctx context.Context, path string) ([]metaItem, error) {
	var all []metaItem
	for start := 0; ; {
		req, err := c.s.client.NewRequestWithContext(ctx, http.MethodGet, path+"?startAt="+strconv.Itoa(start)+"&maxResults=200", nil)
		if err != nil {
			return nil, err
		}
		var p metaPage
		resp, err := c.s.client.Do(req, &p)
		if err != nil {
			if r := c.unreachable(err, answerStatus(resp)); r != nil {
				return nil, r
			}
			return nil, apiError("create metadata", resp, err)
		}
		items := append(append(append(p.IssueTypes, p.Fields...), p.Values...), p.Results...)
		all = append(all, items...)
		start += len(items)
		if len(items) == 0 || (p.IsLast != nil && *p.IsLast) || start >= p.Total || len(all) > 10000 {
			return all, nil
		}
	}
}

func (c *checker) checkProject(ctx context.Context, project string, types map[string]*needs, moves map[string][]transitionUse) error {
	its, err := c.meta(ctx, "rest/api/2/issue/createmeta/"+url.PathEscape(project)+"/issuetypes")
	if err != nil {
		if err := c.stop(ctx, err); err != nil {
			return err
		}
		c.problem("project %s: %s. The project key may be wrong, or the bridge's account may lack the Browse Projects or Create Issues permission in it.", project, sentence(err))
		return nil
	}
	var names []string
	for _, it := range its {
		names = append(names, it.Name)
	}
	typeID := func(name string) string {
		for _, it := range its {
			if strings.EqualFold(it.Name, name) {
				return it.ID
			}
		}
		return ""
	}
	for _, typeName := range sortedKeys(types) {
		id := typeID(typeName)
		if id == "" {
			c.problem("project %s has no issue type %q that the account can create (it has: %s). Add the type to the project's issue type scheme or change issue_type in the rules.",
				project, typeName, strings.Join(names, ", "))
			continue
		}
		fields, err := c.meta(ctx, "rest/api/2/issue/createmeta/"+url.PathEscape(project)+"/issuetypes/"+url.PathEscape(id))
		if err != nil {
			if err := c.stop(ctx, err); err != nil {
				return err
			}
			c.problem("project %s, issue type %s: cannot read the create screen's fields: %s.", project, typeName, sentence(err))
			continue
		}
		before := c.problems
		c.checkFields(project+" "+typeName, fields, types[typeName])
		if c.problems == before {
			c.ok("project %s, issue type %s: every field the rules use is on the create screen", project, typeName)
		}
	}
	for _, typeName := range sortedKeys(moves) {
		if typeID(typeName) == "" {
			if _, reported := types[typeName]; !reported {
				c.problem("project %s has no issue type %q (it has: %s). Change issue_type of the resolve action.", project, typeName, strings.Join(names, ", "))
			}
			continue
		}
		if err := c.checkTransitions(ctx, project, typeName, moves[typeName]); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) checkFields(where string, fields []metaItem, n *needs) {
	byID := map[string]metaItem{}
	for _, f := range fields {
		id := f.FieldID
		if id == "" {
			id = f.Key
		}
		byID[id] = f
	}
	onScreen := func(id, name, why string) (metaItem, bool) {
		f, ok := byID[id]
		if !ok {
			c.problem("%s: the %s field is not on the create screen, but %s. Add it to the screen of this issue type.", where, name, why)
		}
		return f, ok
	}
	if n.labels {
		onScreen("labels", "Labels", "the bridge labels every ticket (bridge-… for dedupe, and the rules' labels)")
	}
	if n.description {
		onScreen("description", "Description", "the rules set a description")
	}
	if n.assignee {
		onScreen("assignee", "Assignee", "the rules set an assignee")
	}
	if len(n.priorities) > 0 {
		if f, ok := onScreen("priority", "Priority", "the rules set a priority"); ok && f.AllowedValues != nil {
			have := allowed(f, "name")
			for _, p := range sortedKeys(n.priorities) {
				if !containsFold(have, p) {
					c.problem("%s: priority %q does not exist or is not in the project's priority scheme (available: %s). Add it in Jira or change priority in the rules.", where, p, strings.Join(have, ", "))
				}
			}
		}
	}
	if len(n.components) > 0 {
		if f, ok := onScreen("components", "Component/s", "the rules set components"); ok {
			have := allowed(f, "name")
			for _, comp := range sortedKeys(n.components) {
				if !containsFold(have, comp) {
					c.problem("%s: component %q does not exist in the project (it has: %s). Create it under Project settings > Components or change the rules.", where, comp, strings.Join(have, ", "))
				}
			}
		}
	}
	for _, id := range sortedKeys(n.fields) {
		f, ok := byID[id]
		if !ok {
			c.problem("%s: field %s does not exist or is not on the create screen. Check the custom field's id (Settings > Issues > Custom fields) and add it to this issue type's create screen.", where, id)
			continue
		}
		if f.AllowedValues == nil {
			continue
		}
		have := allowed(f, "value")
		if len(have) == 0 {
			have = allowed(f, "name")
		}
		for _, v := range n.fields[id] {
			for _, val := range optionValues(v) {
				if !isTemplate(val) && !containsFold(have, val) {
					c.problem("%s: %q is not an option of field %s (%s) (options: %s). Add the option to the field's context or change the rules.", where, val, f.Name, id, strings.Join(have, ", "))
				}
			}
		}
	}
	set := map[string]bool{"summary": true, "issuetype": true, "project": true, "reporter": true,
		"labels": n.labels, "description": n.description, "assignee": n.assignee,
		"priority": len(n.priorities) > 0, "components": len(n.components) > 0}
	for id := range n.fields {
		set[id] = true
	}
	for _, id := range sortedKeys(byID) {
		if f := byID[id]; f.Required && !f.HasDefaultValue && !set[id] {
			c.problem("%s: field %s (%s) is required on the create screen, but no rule sets it and it has no default. Give it a default value in Jira, make it optional, or set it under fields: in the rules.", where, f.Name, id)
		}
	}
}

// optionValues returns the option names in a field value: {value: x} or a
// list of them (or of strings).
func optionValues(v any) []string {
	switch x := v.(type) {
	case map[string]any:
		if s, ok := x["value"].(string); ok {
			return []string{s}
		}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, optionValues(e)...)
		}
		return out
	}
	return nil
}

func allowed(f metaItem, key string) []string {
	var out []string
	for _, v := range f.AllowedValues {
		if s, ok := v[key].(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// sentence is err's text without a closing full stop, to end a sentence with.
func sentence(err error) string { return strings.TrimRight(err.Error(), ".") }

// maxSampleStatuses bounds the statuses whose transitions a check reads.
const maxSampleStatuses = 5

// sampleIssues finds issues of project and issueType to read transitions
// from, one per status, at most maxSampleStatuses: open ones, or Done ones
// when done is set.
func (c *checker) sampleIssues(ctx context.Context, project, issueType string, done bool) ([]jira.Issue, error) {
	op := "!="
	if done {
		op = "="
	}
	jql := fmt.Sprintf("project = %s AND issuetype = %s AND statusCategory %s Done ORDER BY updated DESC", jqlQuote(project), jqlQuote(issueType), op)
	var out []jira.Issue
	seen := map[string]bool{}
	err := c.s.query(ctx, jql, []string{"status"}, 50, 1, false, func(iss *jira.Issue) bool {
		if st := statusName(iss); !seen[st] {
			seen[st] = true
			out = append(out, *iss)
		}
		return len(out) == maxSampleStatuses
	})
	return out, err
}

// offeredFrom is what Jira offers from one sample issue's status.
type offeredFrom struct {
	status, issue string
	ts            []transitionInfo
}

func (f offeredFrom) String() string { return fmt.Sprintf("%s (%s)", f.status, f.issue) }

func joinFroms(fs []offeredFrom) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return strings.Join(parts, ", ")
}

// checkTransitions checks the transitions the rules name for one project
// and issue type on sample issues, and says which it could not check.
func (c *checker) checkTransitions(ctx context.Context, project, issueType string, uses []transitionUse) error {
	where := project + " " + issueType
	for _, fromDone := range []bool{false, true} {
		var group []transitionUse
		for _, u := range uses {
			switch {
			case u.fromDone != fromDone:
			case isTemplate(u.name):
				c.note("%s: transition %q (%s) is a template: it can only be checked once rendered", where, u.name, u.key)
			default:
				group = append(group, u)
			}
		}
		if len(group) == 0 {
			continue
		}
		state := "open"
		if fromDone {
			state = "Done"
		}
		samples, err := c.sampleIssues(ctx, project, issueType, fromDone)
		if err != nil {
			if err := c.stop(ctx, err); err != nil {
				return err
			}
			for _, u := range group {
				c.note("%s: transition %q (%s) not checked: cannot search for a %s %s issue to check it on: %s", where, u.name, u.key, state, issueType, sentence(err))
			}
			continue
		}
		var froms []offeredFrom
		for _, iss := range samples {
			ts, err := c.s.transitions(ctx, iss.Key)
			if err != nil {
				if err := c.stop(ctx, err); err != nil {
					return err
				}
				c.note("%s: cannot read the transitions of %s: %s", where, iss.Key, sentence(err))
				continue
			}
			froms = append(froms, offeredFrom{status: statusName(&iss), issue: iss.Key, ts: ts})
		}
		if len(froms) == 0 {
			for _, u := range group {
				c.note("%s: transition %q (%s, which %s tickets) not checked: there is no %s %s issue in %s to check it on, and Jira lists only the transitions from an issue's current status. Run jira check again once there is one.",
					where, u.name, u.key, u.what(), state, issueType, project)
			}
			continue
		}
		for _, u := range group {
			var have, lack []offeredFrom
			var found transitionInfo
			for _, f := range froms {
				if t, ok := findTransition(f.ts, u.name); ok {
					have, found = append(have, f), t
				} else {
					lack = append(lack, f)
				}
			}
			if len(have) == 0 {
				var offers []string
				for _, f := range lack {
					offers = append(offers, fmt.Sprintf("from %s: %s", f.status, offered(f.ts)))
				}
				c.problem("%s: Jira offers no transition %q (%s, which %s tickets) from status %s; it offers %s. Set %s: in the rules to one of them, or add the transition to the workflow.",
					where, u.name, u.key, u.what(), joinFroms(lack), strings.Join(offers, "; "), u.key)
				continue
			}
			c.ok("%s: transition %q (%s) is offered from status %s", where, found.Name, u.key, joinFroms(have))
			for _, f := range lack {
				c.note("%s: transition %q is not offered from status %s: the bridge cannot %s a ticket while it is in that status (from there Jira offers %s)",
					where, u.name, f, strings.TrimSuffix(u.what(), "s"), offered(f.ts))
			}
			if !u.fromDone {
				c.checkResolutionField(where, u, found)
			}
		}
	}
	return nil
}

// checkResolutionField checks a resolve action's resolution against the
// screen of its transition.
func (c *checker) checkResolutionField(where string, u transitionUse, t transitionInfo) {
	rf, onScreen := t.Fields["resolution"]
	names := allowedNames(rf)
	switch {
	case u.resolution == "" && onScreen && rf.Required:
		c.problem("%s: the screen of transition %q requires a resolution, and the resolve action sets none. Set resolution: in it (one of: %s).", where, t.Name, strings.Join(names, ", "))
	case u.resolution == "" || isTemplate(u.resolution):
	case onScreen && len(names) > 0 && !containsFold(names, u.resolution):
		c.problem("%s: transition %q offers no resolution %q (it offers: %s). Change resolution: in the resolve action.", where, t.Name, u.resolution, strings.Join(names, ", "))
	case !onScreen && t.Fields != nil:
		c.note("%s: transition %q has no Resolution field on its screen: the bridge does not send resolution %q (the workflow sets the resolution, if at all)", where, t.Name, u.resolution)
	}
}

// checkResolutions checks that the resolutions the rules name exist.
func (c *checker) checkResolutions(ctx context.Context, used map[string]bool) error {
	req, err := c.s.client.NewRequestWithContext(ctx, http.MethodGet, "rest/api/2/resolution", nil)
	if err != nil {
		return err
	}
	var list []struct {
		Name string `json:"name"`
	}
	if resp, err := c.s.client.Do(req, &list); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := c.unreachable(err, answerStatus(resp)); err != nil {
			return err
		}
		c.note("resolutions not checked: %s", sentence(apiError("list resolutions", resp, err)))
		return nil
	}
	var have []string
	for _, r := range list {
		have = append(have, r.Name)
	}
	for _, r := range sortedKeys(used) {
		if !containsFold(have, r) {
			c.problem("resolution %q does not exist in Jira (it has: %s). Change resolution: in the rules, or add it under Settings > Issues > Resolutions.", r, strings.Join(have, ", "))
		}
	}
	return nil
}
