// Package jira is the Jira sink: it opens one ticket per dedupe key on Jira
// Cloud or Jira Data Center and comments on it (or skips) while it is open.
//
// Dedupe. Every ticket the sink opens carries the label
// bridge-<first 12 hex digits of SHA-256 of the dedupe key>. Before opening
// a ticket the sink looks in its own memory (the bridge's durable state) for
// the key's issue and, when it knows none, searches Jira for an open issue
// with that label in the action's project. While such an issue is not in the
// Done status category, a repeat comments on it (on_duplicate: comment) or
// does nothing (on_duplicate: skip); once it is Done, the next event opens a
// new ticket. Only one delivery per key talks to Jira at a time. A create
// whose outcome is unknown (a timeout, a dropped connection, a 500, 502 or
// 504 after the request was sent) is remembered, and no new create is sent
// for that key until a search finds the issue or search_lag has passed since
// the unknown create, so Jira's search lag cannot open a second ticket.
//
// Labels. Jira refuses labels that contain spaces, so every run of white
// space in a label is replaced by a single '-', and labels are cut to 255
// characters; empty labels are dropped. For example `labels: ["high sev"]`
// becomes the label high-sev.
//
// Default dedupe key. Rules render an action before the sink sees it, so the
// sink applies the documented default itself: when an action has no `dedupe` key,
// the key is "<source>:<type>:<subject>" of the delivery's event, exactly
// what '{{ .source }}:{{ .type }}:{{ .subject }}' renders to. `dedupe: ""`
// turns dedupe off: every event opens a ticket, and a create with an unknown
// outcome is simply retried, so it may open a second one.
//
// Lifecycle. An action with `resolve: true` moves the open ticket of its
// dedupe key through `transition` (default Done), with `resolution` and then
// `comment` when given; when the key has no open ticket it sends nothing and
// its result is empty. An action with `reopen_within` reopens the key's
// ticket through `reopen_transition` (default Reopen) and comments, when the
// ticket was resolved less than that long ago; older, a new ticket opens.
// The time of the resolution is the latest of the one the sink recorded when
// it resolved the ticket itself and Jira's resolutiondate (and, on Cloud,
// statuscategorychangedate), so a ticket a person resolved reopens too.
// Transition names match case-insensitively among the transitions Jira
// offers from the ticket's current status; any other name fails permanently
// with the names Jira offers.
//
// Crashes. Before a transition the sink records which delivery is moving
// the ticket; after it, and its comment, which delivery did. A redelivery of
// that delivery (the process stopped before the outcome was recorded) then
// reports the ticket without moving or commenting on it again; one that
// stopped between the transition and its comment posts the comment.
//
// Comments are at least once: a comment whose answer is lost is posted
// again by the retry.
package jira

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"bridge/bridge"
)

// Default values of the Jira sink, in one place.
const (
	// DefaultIssueType is the issue type of actions that name none.
	DefaultIssueType = "Task"
	// DefaultSearchLag is how long after an unknown create the sink trusts
	// that create more than a search that does not show it.
	DefaultSearchLag = time.Minute
	// OnDuplicateComment comments on the open ticket of a repeated key.
	OnDuplicateComment = "comment"
	// OnDuplicateSkip leaves the open ticket of a repeated key alone.
	OnDuplicateSkip = "skip"
	// DefaultTransition is the transition of resolve actions that name none.
	DefaultTransition = "Done"
	// DefaultReopenTransition is the transition that reopens a ticket when
	// the action names none.
	DefaultReopenTransition = "Reopen"

	maxSummaryRunes     = 255
	maxDescriptionRunes = 32767
	maxLabelRunes       = 255
	labelPrefix         = "bridge-"
)

// Type returns the jira sink type for the bridge's map of sink types.
func Type() bridge.SinkType {
	return bridge.NewSinkType(DefaultConfig, func() *Action { return &Action{} }, New)
}

// Config is a jira sink's own config (the keys of its `sinks:` entry besides
// name, type, timeout, concurrency and retry):
//
//	sinks:
//	- name: ops-jira
//	  type: jira
//	  url: ${JIRA_URL}        # https://example.atlassian.net, or a Data Center address
//	  user: ${JIRA_USER}      # Jira Cloud: the account's email, with an API token
//	  token: ${JIRA_TOKEN}    # without user: a Data Center personal access token
//	  project: OPS            # the project of actions that name none
//	  search_lag: 1m          # optional: how long an unknown create holds back another
//
// Cloud or Data Center is told apart from the site's serverInfo, once.
type Config struct {
	// URL is the Jira site, e.g. https://example.atlassian.net or
	// https://jira.example.com/jira (a context path is kept).
	URL string `yaml:"url"`
	// User is the account's email on Jira Cloud (basic auth with an API
	// token). Without it, Token is a Data Center personal access token.
	User string `yaml:"user"`
	// Token is the Cloud API token or the Data Center personal access token.
	Token bridge.Secret `yaml:"token"`
	// Project is the project key of actions that name none.
	Project string `yaml:"project"`
	// SearchLag is how long a create whose outcome is unknown holds back
	// another create for its key while search does not show the issue.
	SearchLag bridge.Duration `yaml:"search_lag"`
}

// DefaultConfig returns a config with the defaults filled in.
func DefaultConfig() *Config {
	return &Config{SearchLag: bridge.Duration(DefaultSearchLag)}
}

// Validate reports every problem of the config, each pointing at its key.
func (c *Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, bridge.FieldError("url", "the Jira site's address is required, e.g. https://example.atlassian.net"))
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, bridge.FieldErrorf("url", "%q is not an http(s) address of a Jira site", c.URL))
	} else if u.User != nil {
		errs = append(errs, bridge.FieldError("url", "put credentials in user and token, not in the address"))
	}
	if c.Token == "" {
		errs = append(errs, bridge.FieldError("token", "an API token (Jira Cloud, with user) or a personal access token (Data Center) is required"))
	}
	if c.User != "" && strings.ContainsAny(c.User, " \t\n") {
		errs = append(errs, bridge.FieldErrorf("user", "%q contains white space; on Jira Cloud use the account's email", c.User))
	}
	if c.Project != "" && isTemplate(c.Project) {
		errs = append(errs, bridge.FieldError("project", "the sink's default project cannot be a template"))
	}
	if c.SearchLag < 0 {
		errs = append(errs, bridge.FieldError("search_lag", "must not be negative"))
	}
	return joinErrors(errs)
}

// Action is one jira action of a rule (SPEC 5): the yaml keys are what rules
// accept, the json keys how the rendered action reaches the sink.
type Action struct {
	// Project is the project key; the sink's project when empty.
	Project string `yaml:"project" json:"project,omitempty"`
	// IssueType is the issue type's name; Task when empty.
	IssueType string `yaml:"issue_type" json:"issue_type,omitempty"`
	// Summary is the ticket's title, made one line and cut to 255 characters.
	Summary string `yaml:"summary" json:"summary,omitempty"`
	// Description is wiki markup (REST v2), cut to 32,767 characters.
	Description string `yaml:"description" json:"description,omitempty"`
	// Priority is a priority name, e.g. High.
	Priority string `yaml:"priority" json:"priority,omitempty"`
	// Labels are made valid for Jira: white space becomes '-'.
	Labels []string `yaml:"labels" json:"labels,omitempty"`
	// Components are component names of the project.
	Components []string `yaml:"components" json:"components,omitempty"`
	// Assignee is an account id on Jira Cloud and a user name on Data Center.
	Assignee string `yaml:"assignee" json:"assignee,omitempty"`
	// Fields sets other fields, usually custom ones, by id
	// (customfield_10010). Values keep their YAML type: text, numbers,
	// {value: ...} for select lists, lists for multi-value fields.
	Fields FieldValues `yaml:"fields" json:"fields,omitempty"`
	// Dedupe is the dedupe key; nil means the default
	// "<source>:<type>:<subject>", "" turns dedupe off.
	Dedupe *string `yaml:"dedupe" json:"dedupe,omitempty"`
	// OnDuplicate is comment (the default) or skip.
	OnDuplicate string `yaml:"on_duplicate" json:"on_duplicate,omitempty"`

	// Resolve makes the action move the open ticket of its dedupe key
	// through Transition instead of opening or commenting on one.
	Resolve bool `yaml:"resolve" json:"resolve,omitempty"`
	// Transition is the name of the transition a resolve action makes;
	// Done when empty. Matched case-insensitively.
	Transition string `yaml:"transition" json:"transition,omitempty"`
	// Comment is posted on the ticket once a resolve action moved it.
	Comment string `yaml:"comment" json:"comment,omitempty"`
	// Resolution is the resolution a resolve action sets, for workflows
	// whose transition screen asks for one (e.g. Done, Fixed).
	Resolution string `yaml:"resolution" json:"resolution,omitempty"`
	// ReopenWithin makes a repeat of a key whose ticket was resolved less
	// than this long ago reopen it (and comment) instead of opening a new
	// one. Zero: never reopen.
	ReopenWithin Window `yaml:"reopen_within" json:"reopen_within,omitempty"`
	// ReopenTransition is the transition that reopens a ticket; Reopen when
	// empty. Matched case-insensitively.
	ReopenTransition string `yaml:"reopen_transition" json:"reopen_transition,omitempty"`
}

// Window is a duration of an action: Go duration text ("72h") or a number of
// seconds, in the rule's YAML and in the rendered action alike. It is not a
// template.
type Window time.Duration

// D returns the window as a time.Duration.
func (w Window) D() time.Duration { return time.Duration(w) }

// UnmarshalYAML reads "72h" or a number of seconds, as bridge.Duration does.
func (w *Window) UnmarshalYAML(n *yaml.Node) error {
	var d bridge.Duration
	if err := d.UnmarshalYAML(n); err != nil {
		return err
	}
	*w = Window(d)
	return nil
}

// UnmarshalJSON reads the rendered value: "72h", or a number of seconds.
func (w *Window) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	var d time.Duration
	switch x := v.(type) {
	case nil:
	case float64:
		d = time.Duration(x * float64(time.Second))
	case string:
		x = strings.TrimSpace(x)
		if x == "" {
			break
		}
		if secs, err := strconv.ParseFloat(x, 64); err == nil {
			d = time.Duration(secs * float64(time.Second))
			break
		}
		var err error
		if d, err = time.ParseDuration(x); err != nil {
			return fmt.Errorf("%q is not a duration (use text like 30m, 24h or 72h)", x)
		}
	default:
		return fmt.Errorf("%s is not a duration (use text like 30m, 24h or 72h)", b)
	}
	if d < 0 {
		return fmt.Errorf("%s: a duration must not be negative", b)
	}
	*w = Window(d)
	return nil
}

// MarshalJSON writes the window as Go duration text.
func (w Window) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(w).String()) }

// FieldValues are custom field values by field id. Decoded from JSON they
// keep numbers exact, so 12345678901234567 reaches Jira unchanged.
type FieldValues map[string]any

// UnmarshalJSON decodes the values keeping numbers as json.Number.
func (f *FieldValues) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return err
	}
	*f = m
	return nil
}

// ownKey returns the action key that sets Jira field f, if there is one.
func ownKey(f string) (string, bool) {
	switch f {
	case "project", "summary", "description", "priority", "labels", "components", "assignee":
		return f, true
	case "issuetype":
		return "issue_type", true
	}
	return "", false
}

// Validate checks what can be checked before rendering: a summary (but for
// resolve actions), a project (here or in the sink), on_duplicate when it is
// not a template, and that the lifecycle keys go together: a resolve action
// needs a dedupe key and takes transition, resolution and comment; the
// other actions take reopen_within and reopen_transition.
func (a *Action) Validate(cfg bridge.SinkConfig) error {
	var errs []error
	sinkProject := ""
	if c, ok := cfg.(*Config); ok {
		sinkProject = c.Project
	}
	if a.Resolve {
		if a.Dedupe == nil || strings.TrimSpace(*a.Dedupe) == "" {
			errs = append(errs, bridge.FieldError("resolve", "a resolve action needs dedupe: the dedupe key of the tickets it resolves, as the action that opens them renders it"))
		}
		for key, set := range map[string]bool{"reopen_within": a.ReopenWithin != 0, "reopen_transition": a.ReopenTransition != ""} {
			if set {
				errs = append(errs, bridge.FieldErrorf(key, "a resolve action reopens nothing: put %s on the action that opens the tickets", key))
			}
		}
	} else {
		if strings.TrimSpace(a.Summary) == "" {
			errs = append(errs, bridge.FieldError("summary", "a jira action needs a summary"))
		}
		for key, set := range map[string]bool{"transition": a.Transition != "", "resolution": a.Resolution != "", "comment": a.Comment != ""} {
			if set {
				errs = append(errs, bridge.FieldErrorf(key, "%s is only used with resolve: true (a repeat comments with the description)", key))
			}
		}
		if a.ReopenTransition != "" && a.ReopenWithin == 0 {
			errs = append(errs, bridge.FieldError("reopen_transition", "reopen_transition is only used with reopen_within"))
		}
		if a.ReopenWithin != 0 && a.Dedupe != nil && *a.Dedupe == "" {
			errs = append(errs, bridge.FieldError("reopen_within", "reopen_within needs dedupe: without a dedupe key there is no ticket to reopen"))
		}
	}
	if strings.TrimSpace(a.Project) == "" && sinkProject == "" {
		errs = append(errs, bridge.FieldError("project", "a jira action needs a project, here or in its sink"))
	}
	if !isTemplate(a.OnDuplicate) {
		switch a.OnDuplicate {
		case "", OnDuplicateComment, OnDuplicateSkip:
		default:
			errs = append(errs, bridge.FieldErrorf("on_duplicate", "%q is not comment or skip", a.OnDuplicate))
		}
	}
	for k := range a.Fields {
		if k == "" {
			errs = append(errs, bridge.FieldError("fields", "a field id is empty"))
		} else if own, ok := ownKey(k); ok {
			errs = append(errs, bridge.FieldErrorf("fields."+k, "set %s with the action's %s key", k, own))
		}
	}
	sortFieldErrors(errs)
	return joinErrors(errs)
}

// sortFieldErrors orders errors by their text, so the problems of one action
// (some found by walking maps) always come in the same order.
func sortFieldErrors(errs []error) {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
}

// settings is an action with defaults applied and text made valid for Jira.
type settings struct {
	Action
	dedupeKey string // "" when dedupe is off
}

// resolve applies the defaults of cfg and ev to a rendered action and makes
// its text valid for Jira. It fails permanently when a rendered required
// field is empty.
func resolve(a Action, cfg *Config, ev *bridge.Event) (*settings, error) {
	s := &settings{Action: a}
	if strings.TrimSpace(s.Project) == "" {
		s.Project = cfg.Project
	}
	s.Project = strings.TrimSpace(s.Project)
	s.IssueType = strings.TrimSpace(s.IssueType)
	if s.IssueType == "" {
		s.IssueType = DefaultIssueType
	}
	switch s.OnDuplicate = strings.TrimSpace(s.OnDuplicate); s.OnDuplicate {
	case "":
		s.OnDuplicate = OnDuplicateComment
	case OnDuplicateComment, OnDuplicateSkip:
	default:
		return nil, bridge.Permanent(fmt.Errorf("jira: on_duplicate %q is not comment or skip", s.OnDuplicate))
	}
	s.Summary = cutRunes(oneLine(s.Summary), maxSummaryRunes)
	s.Description = cutRunes(s.Description, maxDescriptionRunes)
	s.Priority = strings.TrimSpace(s.Priority)
	s.Assignee = strings.TrimSpace(s.Assignee)
	if s.Transition = strings.TrimSpace(s.Transition); s.Transition == "" {
		s.Transition = DefaultTransition
	}
	if s.ReopenTransition = strings.TrimSpace(s.ReopenTransition); s.ReopenTransition == "" {
		s.ReopenTransition = DefaultReopenTransition
	}
	s.Resolution = strings.TrimSpace(s.Resolution)
	s.Comment = cutRunes(s.Comment, maxDescriptionRunes)
	if s.Summary == "" && !s.Resolve {
		return nil, bridge.Permanent(fmt.Errorf("jira: the rendered summary is empty"))
	}
	if s.Project == "" {
		return nil, bridge.Permanent(fmt.Errorf("jira: no project: set one in the action or the sink"))
	}
	switch {
	case a.Dedupe == nil:
		if ev != nil {
			s.dedupeKey = ev.Source + ":" + ev.Type + ":" + ev.Subject
		}
	default:
		s.dedupeKey = *a.Dedupe
	}
	if s.Resolve && s.dedupeKey == "" {
		return nil, bridge.Permanent(fmt.Errorf("jira: a resolve action needs a dedupe key, and the rendered dedupe is empty"))
	}
	var labels []string
	seen := map[string]bool{}
	for _, l := range a.Labels {
		l = ValidLabel(l)
		if l != "" && !seen[l] {
			seen[l] = true
			labels = append(labels, l)
		}
	}
	if s.dedupeKey != "" {
		if l := DedupeLabel(s.dedupeKey); !seen[l] {
			labels = append(labels, l)
		}
	}
	s.Labels = labels
	var comps []string
	for _, c := range a.Components {
		if c = strings.TrimSpace(c); c != "" {
			comps = append(comps, c)
		}
	}
	s.Components = comps
	return s, nil
}

// DedupeLabel returns the label that marks the tickets of a dedupe key:
// bridge- and the first 12 hex digits of the key's SHA-256.
func DedupeLabel(key string) string {
	return labelPrefix + hashHex(key)[:12]
}

// ValidLabel makes s a label Jira accepts: surrounding space trimmed, every
// run of white space replaced by '-', cut to 255 characters.
func ValidLabel(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.TrimSpace(s) {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space {
			b.WriteByte('-')
			space = false
		}
		b.WriteRune(r)
	}
	return cutRunes(b.String(), maxLabelRunes)
}

// oneLine joins the lines of s with spaces: Jira refuses a summary with line
// breaks.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// cutRunes cuts s to at most n runes, ending a cut text with an ellipsis.
func cutRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func isTemplate(s string) bool { return strings.Contains(s, "{{") }

func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}
