// Package jirafake is a stand-in Jira for tests: an HTTP server that behaves
// like Jira Cloud or Jira Data Center for the calls the bridge makes. It
// checks credentials, validates issue fields the way Jira does, answers
// errors in Jira's formats, lags its search like Jira Cloud, runs workflows
// (transitions per status, screens that require a resolution), and can be
// scripted to fail. Its state is inspected through methods, not HTTP.
package jirafake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Flavor is the Jira product the server plays.
type Flavor int

const (
	// Cloud is Jira Cloud: basic auth with email and API token, search via
	// /rest/api/2/search/jql (the old /search answers 410), assignees by
	// accountId.
	Cloud Flavor = iota
	// DataCenter is Jira Data Center: bearer personal access tokens, search
	// via /rest/api/2/search (/search/jql answers 404), assignees by name.
	DataCenter
)

// Routes, as patterns of the server's mux; FailNext and Count take them.
const (
	RouteServerInfo = "GET /rest/api/2/serverInfo"
	RouteMyself     = "GET /rest/api/2/myself"
	RouteCreate     = "POST /rest/api/2/issue"
	RouteGetIssue   = "GET /rest/api/2/issue/{key}"
	RouteComment    = "POST /rest/api/2/issue/{key}/comment"
	RouteSearch     = "GET /rest/api/2/search"
	RouteSearchJQL  = "GET /rest/api/2/search/jql"
	RoutePriorities = "GET /rest/api/2/priority"
	RouteIssueTypes = "GET /rest/api/2/issue/createmeta/{project}/issuetypes"
	RouteFieldsMeta = "GET /rest/api/2/issue/createmeta/{project}/issuetypes/{id}"
	// RouteTransitions lists the transitions from an issue's status.
	RouteTransitions = "GET /rest/api/2/issue/{key}/transitions"
	// RouteDoTransition carries one out.
	RouteDoTransition = "POST /rest/api/2/issue/{key}/transitions"
	RouteResolutions  = "GET /rest/api/2/resolution"
	contentTypeJSON   = "application/json;charset=UTF-8"
	removedSearchMsg  = "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)

// Field types of custom fields (Options.CustomFields).
const (
	FieldText    = "string" // "text"
	FieldNumber  = "number" // 42
	FieldOption  = "option" // {"value": "High"}
	FieldOptions = "array"  // [{"value": "a"}, ...] or ["a", ...] for label-like fields
)

// CustomField is a custom field the server knows.
type CustomField struct {
	Name    string   // e.g. "Severity"
	Type    string   // FieldText, FieldNumber, FieldOption or FieldOptions
	Options []string // allowed values of option fields; empty: any
	// Required makes the create screens require the field.
	Required bool
}

// Options configure the server. The zero value is a Cloud site with project
// OPS, user bot@example.com and token secret-token.
type Options struct {
	Flavor Flavor
	// User and Token are the accepted credentials: Cloud takes basic auth
	// (email, API token); Data Center a bearer personal access token, or
	// basic auth with User and Token as the password.
	User, Token string
	// Projects maps project keys to their issue types; default OPS and SEC
	// with Task, Bug and Story.
	Projects map[string][]string
	// Priorities are the priority names; default Highest, High, Medium, Low, Lowest.
	Priorities []string
	// Components are the component names of every project.
	Components []string
	// CustomFields by id (customfield_10010).
	CustomFields map[string]CustomField
	// Workflows by "PROJECT/IssueType" or "PROJECT"; DefaultWorkflow for
	// the rest.
	Workflows map[string]Workflow
	// Resolutions are the site's resolutions; default Done, Won't Do,
	// Duplicate, Cannot Reproduce.
	Resolutions []string
	// SearchLag hides an issue from search for this long after its creation,
	// and shows its status as it was this long ago, as Jira Cloud's
	// eventually consistent search does, unless its id is passed in
	// reconcileIssues (which only Cloud's /search/jql takes).
	SearchLag time.Duration
	// PageSize caps the issues of one search page; default 50.
	PageSize int
	// Latency delays every answer, as a real site's round trip and
	// processing do (a Cloud create takes a few hundred milliseconds).
	Latency time.Duration
	// Now is the server's clock; default time.Now.
	Now func() time.Time
}

// Issue is an issue as the server stores it.
type Issue struct {
	ID, Key, Project, IssueType, Summary, Description, Priority string
	Labels, Components                                          []string
	Assignee                                                    map[string]any
	Custom                                                      map[string]any // custom and other fields by id
	Status, StatusCategory                                      string
	Created                                                     time.Time
	Comments                                                    []string
	// Resolution and Resolved (resolutiondate) are set when the issue moves
	// to a done status with a resolution, and cleared when it leaves it.
	Resolution string
	Resolved   time.Time
	// StatusChanged is when the status category last changed (Cloud's
	// statuscategorychangedate).
	StatusChanged time.Time

	history []snapshot // what search sees from when on
}

// Failure is a scripted answer for a route.
type Failure struct {
	Status     int    // the status to answer with
	RetryAfter string // the Retry-After header, if any
	Body       string // the body; default an ErrorCollection naming the status
	// Hang carries the request out, then answers nothing until the client
	// gives up or the server closes: a create that timed out after Jira
	// stored it.
	Hang bool
}

// Server is a running stand-in Jira.
type Server struct {
	// URL is the site's address, e.g. http://127.0.0.1:41234.
	URL string

	srv       *httptest.Server
	opts      Options
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	issues   []*Issue
	nextID   int
	keys     map[string]int // last issue number per project: keys are never reused
	prios    []string
	failures map[string][]Failure
	counts   map[string]int
	total    int

	statusIDs    map[string]string
	transitioned []Transitioned
}

// New starts a stand-in Jira with opts; Close stops it.
func New(opts Options) *Server {
	if opts.User == "" {
		opts.User = "bot@example.com"
	}
	if opts.Token == "" {
		opts.Token = "secret-token"
	}
	if opts.Projects == nil {
		opts.Projects = map[string][]string{"OPS": {"Task", "Bug", "Story"}, "SEC": {"Task", "Bug", "Story"}}
	}
	if opts.Priorities == nil {
		opts.Priorities = []string{"Highest", "High", "Medium", "Low", "Lowest"}
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 50
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Resolutions == nil {
		opts.Resolutions = []string{"Done", "Won't Do", "Duplicate", "Cannot Reproduce"}
	}
	s := &Server{opts: opts, nextID: 10000, prios: slices.Clone(opts.Priorities),
		failures: map[string][]Failure{}, counts: map[string]int{}, keys: map[string]int{}, closed: make(chan struct{}),
		statusIDs: map[string]string{}}
	mux := http.NewServeMux()
	handle := func(route string, h func(w http.ResponseWriter, r *http.Request)) {
		mux.HandleFunc(route, s.wrap(route, h))
	}
	handle(RouteServerInfo, s.serverInfo)
	handle(RouteMyself, s.myself)
	handle(RouteCreate, s.create)
	handle(RouteGetIssue, s.getIssue)
	handle(RouteComment, s.comment)
	handle(RouteSearch, s.searchOld)
	handle(RouteSearchJQL, s.searchJQL)
	handle(RoutePriorities, s.priorities)
	handle(RouteIssueTypes, s.issueTypes)
	handle(RouteFieldsMeta, s.fieldsMeta)
	handle(RouteTransitions, s.getTransitions)
	handle(RouteDoTransition, s.doTransition)
	handle(RouteResolutions, s.resolutions)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.count("other")
		notFound(w)
	})
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s
}

// Close stops the server, ending requests that hang.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
	s.srv.Close()
}

// FailNext makes the next n requests to route answer f instead.
func (s *Server) FailNext(route string, n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures[route] = append(s.failures[route], f)
	}
}

// AddPriority adds a priority, as an admin would.
func (s *Server) AddPriority(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prios = append(s.prios, name)
}

// SetStatus moves an issue to a status, as a person would, whatever the
// workflow; category is new, indeterminate or done. Into a done status the
// issue gets the resolution Done and a resolutiondate of now; out of one it
// loses both. It reports whether the issue exists.
func (s *Server) SetStatus(key, status, category string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if iss := s.find(key); iss != nil {
		s.move(iss, status, category, "Done")
		return true
	}
	return false
}

// DeleteIssue removes an issue, as an admin would. It reports whether the
// issue existed.
func (s *Server) DeleteIssue(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, iss := range s.issues {
		if iss.Key == key {
			s.issues = slices.Delete(s.issues, i, i+1)
			return true
		}
	}
	return false
}

// Issues returns copies of every issue, in creation order.
func (s *Server) Issues() []Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Issue, len(s.issues))
	for i, iss := range s.issues {
		out[i] = iss.copy()
	}
	return out
}

// Issue returns a copy of the issue with key.
func (s *Server) Issue(key string) (Issue, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if iss := s.find(key); iss != nil {
		return iss.copy(), true
	}
	return Issue{}, false
}

func (iss *Issue) copy() Issue {
	c := *iss
	c.Comments = slices.Clone(iss.Comments)
	c.history = slices.Clone(iss.history)
	return c
}

// Count returns how many requests reached route (scripted failures included).
func (s *Server) Count(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[route]
}

// Counts returns the request count of every route that was called.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// Total returns how many requests the server received.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// ResetCounts sets every request count to zero.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = map[string]int{}
	s.total = 0
}

func (s *Server) count(route string) {
	s.mu.Lock()
	s.counts[route]++
	s.total++
	s.mu.Unlock()
}

func (s *Server) find(key string) *Issue {
	for _, iss := range s.issues {
		if iss.Key == key || iss.ID == key {
			return iss
		}
	}
	return nil
}

// wrap counts, checks credentials and plays scripted failures.
func (s *Server) wrap(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.count(route)
		if s.opts.Latency > 0 {
			select {
			case <-time.After(s.opts.Latency):
			case <-r.Context().Done():
				return
			case <-s.closed:
				return
			}
		}
		if route != RouteServerInfo && !s.authorized(r) {
			if s.opts.Flavor == Cloud {
				writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Client must be authenticated to access this resource.", "status-code": 401})
			} else {
				writeJSON(w, http.StatusUnauthorized, errorCollection([]string{"You are not authenticated. Authentication required to perform this operation."}, nil))
			}
			return
		}
		s.mu.Lock()
		var f *Failure
		if q := s.failures[route]; len(q) > 0 {
			f = &q[0]
			s.failures[route] = q[1:]
		}
		s.mu.Unlock()
		switch {
		case f == nil:
			h(w, r)
		case f.Hang:
			h(&discardWriter{header: http.Header{}}, r)
			select {
			case <-r.Context().Done():
			case <-s.closed:
			}
		default:
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			body := f.Body
			if body == "" {
				b, _ := json.Marshal(errorCollection([]string{fmt.Sprintf("scripted failure: %d %s", f.Status, http.StatusText(f.Status))}, nil))
				body = string(b)
			}
			if strings.HasPrefix(strings.TrimSpace(body), "{") {
				w.Header().Set("Content-Type", contentTypeJSON)
			} else {
				w.Header().Set("Content-Type", "text/html;charset=UTF-8")
			}
			w.WriteHeader(f.Status)
			_, _ = w.Write([]byte(body))
		}
	}
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(s.opts.User+":"+s.opts.Token))
	if s.opts.Flavor == DataCenter {
		return h == "Bearer "+s.opts.Token || h == basic
	}
	return h == basic
}

type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

func errorCollection(msgs []string, errs map[string]string) map[string]any {
	if msgs == nil {
		msgs = []string{}
	}
	if errs == nil {
		errs = map[string]string{}
	}
	return map[string]any{"errorMessages": msgs, "errors": errs}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]any{"message": "HTTP 404 Not Found", "status-code": 404, "sub-code": -1})
}

func badRequest(w http.ResponseWriter, msgs []string, errs map[string]string) {
	writeJSON(w, http.StatusBadRequest, errorCollection(msgs, errs))
}

// msgInvalidPayload is Jira's message for a body it cannot read as the
// resource; invalidPayload answers it as a 400.
const msgInvalidPayload = "Invalid request payload. Refer to the REST API documentation and try again."

func invalidPayload(w http.ResponseWriter) { badRequest(w, []string{msgInvalidPayload}, nil) }

// issueNotFound is Jira's 404 for an issue key, whether it does not exist or
// the user may not see it.
func issueNotFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, errorCollection([]string{"Issue does not exist or you do not have permission to see it."}, nil))
}

func (s *Server) serverInfo(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Flavor == Cloud {
		writeJSON(w, 200, map[string]any{"baseUrl": s.URL, "version": "1001.0.0-SNAPSHOT", "versionNumbers": []int{1001, 0, 0},
			"deploymentType": "Cloud", "buildNumber": 100300, "serverTitle": "Jira"})
		return
	}
	writeJSON(w, 200, map[string]any{"baseUrl": s.URL, "version": "10.3.4", "versionNumbers": []int{10, 3, 4},
		"deploymentType": "DataCenter", "buildNumber": 10030004, "serverTitle": "Jira"})
}

func (s *Server) myself(w http.ResponseWriter, _ *http.Request) {
	u := map[string]any{"self": s.URL + "/rest/api/2/myself", "displayName": "Bridge Bot", "emailAddress": s.opts.User, "active": true, "timeZone": "UTC"}
	if s.opts.Flavor == Cloud {
		u["accountId"] = "5b10a2844c20165700ede21g"
		u["accountType"] = "atlassian"
	} else {
		u["name"], u["key"] = s.opts.User, "JIRAUSER10000"
	}
	writeJSON(w, 200, u)
}

func (s *Server) priorities(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]string{}
	for i, p := range s.prios {
		out = append(out, map[string]string{"id": strconv.Itoa(i + 1), "name": p})
	}
	writeJSON(w, 200, out)
}

// create validates the fields as Jira does and stores the issue.
func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var body map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body["fields"] == nil {
		invalidPayload(w)
		return
	}
	var fields map[string]any
	if err := json.Unmarshal(body["fields"], &fields); err != nil {
		invalidPayload(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	iss, msgs, errs := s.validate(fields)
	if len(msgs) > 0 || len(errs) > 0 {
		badRequest(w, msgs, errs)
		return
	}
	s.nextID++
	iss.ID = strconv.Itoa(s.nextID)
	s.keys[iss.Project]++
	iss.Key = fmt.Sprintf("%s-%d", iss.Project, s.keys[iss.Project])
	initial := s.workflow(iss.Project, iss.IssueType).Statuses[0]
	iss.Status, iss.StatusCategory = initial.Name, initial.Category
	iss.Created = s.opts.Now()
	iss.StatusChanged = iss.Created
	iss.history = []snapshot{{at: iss.Created, status: iss.Status, category: iss.StatusCategory}}
	s.issues = append(s.issues, iss)
	writeJSON(w, http.StatusCreated, map[string]string{"id": iss.ID, "key": iss.Key, "self": s.URL + "/rest/api/2/issue/" + iss.ID})
}

func nameOf(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	if len(m) != 1 {
		return "", false
	}
	for _, k := range []string{"name", "key", "id"} {
		if s, ok := m[k].(string); ok {
			return s, true
		}
	}
	return "", false
}

func (s *Server) validate(f map[string]any) (*Issue, []string, map[string]string) {
	errs := map[string]string{}
	var msgs []string
	iss := &Issue{Custom: map[string]any{}}
	project, ok := nameOf(f["project"])
	types, known := s.opts.Projects[project]
	if !ok || !known {
		errs["project"] = "valid project is required"
	}
	iss.Project = project
	it, ok := nameOf(f["issuetype"])
	if !ok {
		errs["issuetype"] = "Specify an issue type"
	} else if known && !slices.Contains(types, it) {
		errs["issuetype"] = "Specify a valid issue type"
	}
	iss.IssueType = it
	summary, _ := f["summary"].(string)
	switch {
	case strings.TrimSpace(summary) == "":
		errs["summary"] = "You must specify a summary of the issue."
	case len([]rune(summary)) > 255:
		errs["summary"] = "Summary must be less than 255 characters."
	case strings.ContainsAny(summary, "\r\n"):
		errs["summary"] = "The summary is invalid because it contains newline characters."
	}
	iss.Summary = summary
	if d, ok := f["description"]; ok {
		ds, isStr := d.(string)
		switch {
		case !isStr:
			errs["description"] = "Operation value must be a string"
		case len([]rune(ds)) > 32767:
			errs["description"] = "You can only enter 32,767 characters in the Description field."
		}
		iss.Description = ds
	}
	if p, ok := f["priority"]; ok {
		name, _ := nameOf(p)
		if !slices.Contains(s.prios, name) {
			errs["priority"] = fmt.Sprintf("Priority name '%s' is not valid", name)
		}
		iss.Priority = name
	}
	if l, ok := f["labels"]; ok {
		list, _ := l.([]any)
		for _, v := range list {
			str, _ := v.(string)
			if strings.ContainsAny(str, " \t\n") {
				errs["labels"] = fmt.Sprintf("The label '%s' contains spaces which is invalid.", str)
			}
			iss.Labels = append(iss.Labels, str)
		}
	}
	if c, ok := f["components"]; ok {
		list, _ := c.([]any)
		for _, v := range list {
			name, _ := nameOf(v)
			if !slices.Contains(s.opts.Components, name) {
				errs["components"] = fmt.Sprintf("Component name '%s' is not valid", name)
			}
			iss.Components = append(iss.Components, name)
		}
	}
	if a, ok := f["assignee"]; ok && a != nil {
		m, _ := a.(map[string]any)
		want := "accountId"
		if s.opts.Flavor == DataCenter {
			want = "name"
		}
		if _, ok := m[want].(string); !ok || len(m) != 1 {
			msgs = append(msgs, msgInvalidPayload)
		}
		iss.Assignee = m
	}
	for k, v := range f {
		switch k {
		case "project", "issuetype", "summary", "description", "priority", "labels", "components", "assignee":
			continue
		}
		cf, ok := s.opts.CustomFields[k]
		if !ok {
			errs[k] = fmt.Sprintf("Field '%s' cannot be set. It is not on the appropriate screen, or unknown.", k)
			continue
		}
		if msg := checkCustom(cf, v); msg != "" {
			errs[k] = msg
		}
		iss.Custom[k] = v
	}
	for id, cf := range s.opts.CustomFields {
		if _, ok := f[id]; cf.Required && !ok {
			errs[id] = cf.Name + " is required."
		}
	}
	if len(errs) == 0 {
		errs = nil
	}
	return iss, msgs, errs
}

func checkCustom(cf CustomField, v any) string {
	switch cf.Type {
	case FieldText:
		if _, ok := v.(string); !ok {
			return "Operation value must be a string"
		}
	case FieldNumber:
		if _, ok := v.(float64); !ok {
			return "Operation value must be a number"
		}
	case FieldOption:
		m, ok := v.(map[string]any)
		val, isStr := m["value"].(string)
		if !ok || !isStr {
			return "Specify a valid 'id' or 'name' for " + cf.Name
		}
		if len(cf.Options) > 0 && !slices.Contains(cf.Options, val) {
			return fmt.Sprintf("Option value '%s' is not valid", val)
		}
	case FieldOptions:
		list, ok := v.([]any)
		if !ok {
			return "data was not an array"
		}
		for _, e := range list {
			val := ""
			switch x := e.(type) {
			case string:
				val = x
			case map[string]any:
				val, _ = x["value"].(string)
			}
			if val == "" || (len(cf.Options) > 0 && !slices.Contains(cf.Options, val)) {
				return fmt.Sprintf("Option value '%v' is not valid", e)
			}
		}
	}
	return ""
}

// jiraTime is how Jira writes timestamps: 2026-11-23T12:00:00.000+0000.
const jiraTime = "2006-01-02T15:04:05.000-0700"

func (s *Server) issueJSON(iss *Issue) map[string]any {
	fields := map[string]any{
		"summary": iss.Summary, "labels": iss.Labels, "project": map[string]string{"key": iss.Project},
		"issuetype":      map[string]string{"name": iss.IssueType},
		"status":         s.statusJSON(iss.Status, iss.StatusCategory),
		"created":        iss.Created.UTC().Format(jiraTime),
		"resolution":     nil,
		"resolutiondate": nil,
	}
	if iss.Resolution != "" {
		fields["resolution"] = s.resolutionJSON(iss.Resolution)
	}
	if !iss.Resolved.IsZero() {
		fields["resolutiondate"] = iss.Resolved.UTC().Format(jiraTime)
	}
	if s.opts.Flavor == Cloud && !iss.StatusChanged.IsZero() {
		fields["statuscategorychangedate"] = iss.StatusChanged.UTC().Format(jiraTime)
	}
	if iss.Description != "" {
		fields["description"] = iss.Description
	}
	return map[string]any{"id": iss.ID, "key": iss.Key, "self": s.URL + "/rest/api/2/issue/" + iss.ID, "fields": fields}
}

func (s *Server) getIssue(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	iss := s.find(r.PathValue("key"))
	if iss == nil {
		issueNotFound(w)
		return
	}
	writeJSON(w, 200, s.issueJSON(iss))
}

func (s *Server) comment(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		invalidPayload(w)
		return
	}
	text, ok := body["body"].(string)
	for k := range body {
		if k != "body" && k != "visibility" && k != "properties" {
			ok = false
		}
	}
	if v, has := body["visibility"]; has {
		if m, _ := v.(map[string]any); len(m) == 0 {
			ok = false
		}
	}
	if !ok {
		invalidPayload(w)
		return
	}
	if strings.TrimSpace(text) == "" {
		badRequest(w, nil, map[string]string{"comment": "Comment body can not be empty!"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	iss := s.find(r.PathValue("key"))
	if iss == nil {
		issueNotFound(w)
		return
	}
	iss.Comments = append(iss.Comments, text)
	s.nextID++
	now := s.opts.Now().UTC().Format("2006-01-02T15:04:05.000-0700")
	writeJSON(w, http.StatusCreated, map[string]any{"id": strconv.Itoa(s.nextID), "self": s.URL + "/rest/api/2/issue/" + iss.ID + "/comment/" + strconv.Itoa(s.nextID),
		"body": text, "created": now, "updated": now, "author": map[string]any{"displayName": "Bridge Bot"}})
}

var (
	clauseRe  = regexp.MustCompile(`^\s*(\w+)\s*(=|!=)\s*("(?:[^"\\]|\\.)*"|[\w.-]+)\s*$`)
	orderByRe = regexp.MustCompile(`(?i)\s+ORDER\s+BY\s+(\w+)(\s+(ASC|DESC))?\s*$`)
	andRe     = regexp.MustCompile(`(?i)\s+AND\s+`)
)

type clause struct{ field, op, value string }

// parseJQL understands the JQL the bridge sends: clauses `field = value` and
// `field != value` joined by AND, and an ORDER BY.
func parseJQL(jql string) ([]clause, bool, error) {
	desc := false
	if m := orderByRe.FindStringSubmatch(jql); m != nil {
		desc = strings.EqualFold(m[3], "DESC")
		jql = jql[:len(jql)-len(m[0])]
	}
	var out []clause
	if strings.TrimSpace(jql) == "" {
		return nil, desc, nil
	}
	for _, part := range andRe.Split(jql, -1) {
		m := clauseRe.FindStringSubmatch(part)
		if m == nil {
			return nil, false, fmt.Errorf("Error in the JQL Query: cannot read %q.", strings.TrimSpace(part))
		}
		v := m[3]
		if strings.HasPrefix(v, `"`) {
			v = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(v[1 : len(v)-1])
		}
		out = append(out, clause{strings.ToLower(m[1]), m[2], v})
	}
	return out, desc, nil
}

func (iss *Issue) matches(c clause) (bool, error) {
	var eq bool
	switch c.field {
	case "project":
		eq = strings.EqualFold(iss.Project, c.value)
	case "labels":
		eq = slices.Contains(iss.Labels, c.value)
	case "statuscategory":
		eq = strings.EqualFold(iss.StatusCategory, map[string]string{"to do": "new", "in progress": "indeterminate", "done": "done"}[strings.ToLower(c.value)])
	case "status":
		eq = strings.EqualFold(iss.Status, c.value)
	case "issuetype", "type":
		eq = strings.EqualFold(iss.IssueType, c.value)
	case "key":
		eq = iss.Key == c.value
	default:
		return false, fmt.Errorf("Field '%s' does not exist or you do not have permission to view it.", c.field)
	}
	if c.op == "!=" {
		return !eq, nil
	}
	return eq, nil
}

// run evaluates jql; reconcile names issue ids that search must see at once.
// Other issues are seen as they were SearchLag ago: not at all when created
// since, in their status of then when moved since.
func (s *Server) run(jql string, reconcile []string) ([]*Issue, error) {
	clauses, desc, err := parseJQL(jql)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	var out []*Issue
	for _, cur := range s.issues {
		iss := cur
		if s.opts.SearchLag > 0 && !slices.Contains(reconcile, cur.ID) {
			if now.Sub(cur.Created) < s.opts.SearchLag {
				continue
			}
			indexed := cur.history[0]
			for _, h := range cur.history {
				if now.Sub(h.at) >= s.opts.SearchLag {
					indexed = h
				}
			}
			view := cur.copy()
			view.Status, view.StatusCategory = indexed.status, indexed.category
			view.Resolution, view.Resolved = indexed.resolution, indexed.resolved
			iss = &view
		}
		ok := true
		for _, c := range clauses {
			m, err := iss.matches(c)
			if err != nil {
				return nil, err
			}
			ok = ok && m
		}
		if ok {
			out = append(out, iss)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, _ := strconv.Atoi(out[i].ID)
		b, _ := strconv.Atoi(out[j].ID)
		if desc {
			return a > b
		}
		return a < b
	})
	return out, nil
}

func (s *Server) searchJQL(w http.ResponseWriter, r *http.Request) {
	if s.opts.Flavor == DataCenter {
		notFound(w)
		return
	}
	q := r.URL.Query()
	jql := q.Get("jql")
	clauses, _, err := parseJQL(jql)
	if err == nil && len(clauses) == 0 {
		badRequest(w, []string{"Unbounded JQL queries are not allowed here. Please add a search restriction to your query."}, nil)
		return
	}
	var reconcile []string
	if v := q.Get("reconcileIssues"); v != "" {
		reconcile = strings.Split(v, ",")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	found, err := s.run(jql, reconcile)
	if err != nil {
		badRequest(w, []string{err.Error()}, nil)
		return
	}
	size := s.opts.PageSize
	if m, err := strconv.Atoi(q.Get("maxResults")); err == nil && m > 0 && m < size {
		size = m
	}
	start := 0
	if tok := q.Get("nextPageToken"); tok != "" {
		b, derr := base64.RawURLEncoding.DecodeString(tok)
		if start, err = strconv.Atoi(strings.TrimPrefix(string(b), "page:")); derr != nil || err != nil || start > len(found) {
			badRequest(w, []string{"The provided next page token is invalid or expired."}, nil)
			return
		}
	}
	end := min(start+size, len(found))
	issues := []map[string]any{}
	for _, iss := range found[start:end] {
		issues = append(issues, s.issueJSON(iss))
	}
	resp := map[string]any{"issues": issues, "isLast": end >= len(found)}
	if end < len(found) {
		resp["nextPageToken"] = base64.RawURLEncoding.EncodeToString([]byte("page:" + strconv.Itoa(end)))
	}
	writeJSON(w, 200, resp)
}

func (s *Server) searchOld(w http.ResponseWriter, r *http.Request) {
	if s.opts.Flavor == Cloud {
		writeJSON(w, http.StatusGone, errorCollection([]string{removedSearchMsg}, nil))
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	found, err := s.run(q.Get("jql"), nil)
	if err != nil {
		badRequest(w, []string{err.Error()}, nil)
		return
	}
	start, _ := strconv.Atoi(q.Get("startAt"))
	size := 50
	if m, err := strconv.Atoi(q.Get("maxResults")); err == nil && m > 0 {
		size = m
	}
	start = min(max(start, 0), len(found))
	end := min(start+size, len(found))
	issues := []map[string]any{}
	for _, iss := range found[start:end] {
		issues = append(issues, s.issueJSON(iss))
	}
	writeJSON(w, 200, map[string]any{"expand": "schema,names", "startAt": start, "maxResults": size, "total": len(found), "issues": issues})
}

// issueTypes answers create metadata for a project's issue types: Cloud
// pages them under "issueTypes", Data Center under "values".
func (s *Server) issueTypes(w http.ResponseWriter, r *http.Request) {
	types, ok := s.opts.Projects[r.PathValue("project")]
	if !ok {
		writeJSON(w, http.StatusNotFound, errorCollection([]string{"No project could be found with key '" + r.PathValue("project") + "'."}, nil))
		return
	}
	var list []map[string]any
	for i, t := range types {
		list = append(list, map[string]any{"id": strconv.Itoa(10001 + i), "name": t, "subtask": false})
	}
	s.page(w, "issueTypes", list)
}

func (s *Server) page(w http.ResponseWriter, cloudKey string, list []map[string]any) {
	if s.opts.Flavor == Cloud {
		writeJSON(w, 200, map[string]any{"startAt": 0, "maxResults": 50, "total": len(list), cloudKey: list})
		return
	}
	writeJSON(w, 200, map[string]any{"startAt": 0, "maxResults": 50, "total": len(list), "isLast": true, "values": list})
}

// fieldsMeta answers the create screen's fields of one issue type.
func (s *Server) fieldsMeta(w http.ResponseWriter, r *http.Request) {
	types, ok := s.opts.Projects[r.PathValue("project")]
	i, err := strconv.Atoi(r.PathValue("id"))
	if !ok || err != nil || i-10001 < 0 || i-10001 >= len(types) {
		writeJSON(w, http.StatusNotFound, errorCollection([]string{"Issue type with id '" + r.PathValue("id") + "' does not exist or is not available in this project."}, nil))
		return
	}
	s.mu.Lock()
	prios := slices.Clone(s.prios)
	s.mu.Unlock()
	named := func(names []string, key string) []map[string]string {
		out := []map[string]string{}
		for j, n := range names {
			out = append(out, map[string]string{"id": strconv.Itoa(j + 1), key: n})
		}
		return out
	}
	f := func(id, name string, required bool, schema map[string]any, allowed any) map[string]any {
		m := map[string]any{"fieldId": id, "key": id, "name": name, "required": required, "schema": schema, "hasDefaultValue": false}
		if allowed != nil {
			m["allowedValues"] = allowed
		}
		return m
	}
	list := []map[string]any{
		f("summary", "Summary", true, map[string]any{"type": "string", "system": "summary"}, nil),
		f("issuetype", "Issue Type", true, map[string]any{"type": "issuetype", "system": "issuetype"}, nil),
		f("project", "Project", true, map[string]any{"type": "project", "system": "project"}, nil),
		f("description", "Description", false, map[string]any{"type": "string", "system": "description"}, nil),
		f("priority", "Priority", false, map[string]any{"type": "priority", "system": "priority"}, named(prios, "name")),
		f("labels", "Labels", false, map[string]any{"type": "array", "items": "string", "system": "labels"}, nil),
		f("components", "Component/s", false, map[string]any{"type": "array", "items": "component", "system": "components"}, named(s.opts.Components, "name")),
		f("assignee", "Assignee", false, map[string]any{"type": "user", "system": "assignee"}, nil),
	}
	ids := make([]string, 0, len(s.opts.CustomFields))
	for id := range s.opts.CustomFields {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		cf := s.opts.CustomFields[id]
		var allowed any
		if len(cf.Options) > 0 {
			allowed = named(cf.Options, "value")
		}
		list = append(list, f(id, cf.Name, cf.Required, map[string]any{"type": cf.Type, "custom": "com.atlassian.jira.plugin.system.customfieldtypes:" + cf.Type}, allowed))
	}
	s.page(w, "fields", list)
}
