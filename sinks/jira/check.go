package jira

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	jira "github.com/andygrunwald/go-jira"

	"bridge/bridge"
)

// checkTimeout bounds each request of Check.
const checkTimeout = 30 * time.Second

// Check confirms, with the sink's real credentials, what the actions of a
// jira sink need: that the account can sign in, and that every project,
// issue type, priority, component and field the actions use exists and is
// on the project's create screen. It prints one line per finding to w, each
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
	fmt.Fprintf(c.w, "problem: "+format+"\n", args...)
}

func (c *checker) ok(format string, args ...any) { fmt.Fprintf(c.w, "ok: "+format+"\n", args...) }

func (c *checker) note(format string, args ...any) { fmt.Fprintf(c.w, "note: "+format+"\n", args...) }

// needs is what the actions of one project and issue type use.
type needs struct {
	priorities, components map[string]bool
	fields                 map[string][]any // field id: literal values used
	labels, description    bool
	assignee               bool
}

func (c *checker) run(ctx context.Context, actions []bridge.Action) (int, error) {
	who, err := c.myself(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return c.problems, ctx.Err()
		}
		how := "a Jira Cloud account email in user and an API token in token"
		if c.cfg.User == "" {
			how = "a Data Center personal access token in token (or, on Jira Cloud, the account email in user and an API token in token)"
		}
		c.problem("cannot sign in to %s: %s. Check that the address is the Jira site and that the sink has %s, valid and not expired.", c.s.site, sentence(err), how)
		return c.problems, nil
	}
	fl, _ := c.s.flavorOf(ctx)
	kind := map[flavor]string{flavorCloud: "Jira Cloud", flavorDataCenter: "Jira Data Center"}[fl]
	c.ok("signed in to %s (%s) as %s", c.s.site, kind, who)

	plan := map[string]map[string]*needs{} // project: issue type: needs
	for _, act := range actions {
		a, ok := act.(*Action)
		if !ok {
			continue
		}
		project := strings.TrimSpace(a.Project)
		if project == "" {
			project = c.cfg.Project
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
	if len(plan) == 0 {
		c.note("no rule sends a jira action to this sink: nothing more to check")
	}
	for _, project := range sortedKeys(plan) {
		if err := c.checkProject(ctx, project, plan[project]); err != nil {
			return c.problems, err
		}
	}
	return c.problems, nil
}

func (c *checker) myself(ctx context.Context) (string, error) {
	var u jira.User
	req, err := c.s.client.NewRequestWithContext(ctx, http.MethodGet, "rest/api/2/myself", nil)
	if err != nil {
		return "", err
	}
	if resp, err := c.s.client.Do(req, &u); err != nil {
		return "", apiError("who am I", resp, err)
	}
	id := u.AccountID
	if id == "" {
		id = u.Name
	}
	return fmt.Sprintf("%s (%s)", u.DisplayName, id), nil
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

func (c *checker) checkProject(ctx context.Context, project string, types map[string]*needs) error {
	its, err := c.meta(ctx, "rest/api/2/issue/createmeta/"+url.PathEscape(project)+"/issuetypes")
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.problem("project %s: %s. The project key may be wrong, or the bridge's account may lack the Browse Projects or Create Issues permission in it.", project, sentence(err))
		return nil
	}
	var names []string
	for _, it := range its {
		names = append(names, it.Name)
	}
	for _, typeName := range sortedKeys(types) {
		var id string
		for _, it := range its {
			if strings.EqualFold(it.Name, typeName) {
				id = it.ID
			}
		}
		if id == "" {
			c.problem("project %s has no issue type %q that the account can create (it has: %s). Add the type to the project's issue type scheme or change issue_type in the rules.",
				project, typeName, strings.Join(names, ", "))
			continue
		}
		fields, err := c.meta(ctx, "rest/api/2/issue/createmeta/"+url.PathEscape(project)+"/issuetypes/"+url.PathEscape(id))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
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
