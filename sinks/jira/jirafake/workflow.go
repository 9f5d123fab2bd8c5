package jirafake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Workflow is the workflow of a project's issue types: its statuses and the
// transitions between them. Jira's API lists only the transitions from an
// issue's current status, and refuses any other.
type Workflow struct {
	// Statuses; new issues start in the first.
	Statuses []Status
	// Transitions between the statuses.
	Transitions []Transition
}

// Status is a workflow status and its category: new, indeterminate or done.
type Status struct{ Name, Category string }

// Transition is a workflow transition.
type Transition struct {
	ID   string // e.g. "31"
	Name string // e.g. "Done"
	// From lists the statuses the transition leaves from; empty: every
	// status but its target (a global transition).
	From []string
	To   string // the status it leads to
	// Screen lists the fields of the transition's screen: "resolution" or
	// custom field ids. Resolution on a screen is required, as in Jira; a
	// custom field is when its CustomField says so. A transition without a
	// screen refuses every field.
	Screen []string
	// Resolution is what the transition's post function sets when it leads
	// to a done status and no resolution was given; empty: none, and the
	// issue gets no resolutiondate either.
	Resolution string
}

// Default workflow statuses.
const (
	StatusToDo       = "To Do"
	StatusInProgress = "In Progress"
	StatusDone       = "Done"
)

// DefaultWorkflow is the workflow of every project and issue type that
// Options.Workflows does not name: To Do, In Progress and Done, with
// Start Progress (To Do → In Progress), Stop Progress (back), Done (from
// To Do and In Progress, setting the resolution Done) and Reopen (Done →
// To Do). Neither Done from Done nor Reopen from To Do exists.
func DefaultWorkflow() Workflow {
	return Workflow{
		Statuses: []Status{{StatusToDo, "new"}, {StatusInProgress, "indeterminate"}, {StatusDone, "done"}},
		Transitions: []Transition{
			{ID: "11", Name: "Start Progress", From: []string{StatusToDo}, To: StatusInProgress},
			{ID: "21", Name: "Stop Progress", From: []string{StatusInProgress}, To: StatusToDo},
			{ID: "31", Name: "Done", From: []string{StatusToDo, StatusInProgress}, To: StatusDone, Resolution: "Done"},
			{ID: "41", Name: "Reopen", From: []string{StatusDone}, To: StatusToDo},
		},
	}
}

// ResolutionScreenWorkflow is DefaultWorkflow with a screen on Done that
// requires a resolution, and no post function that sets one.
func ResolutionScreenWorkflow() Workflow {
	wf := DefaultWorkflow()
	for i := range wf.Transitions {
		if wf.Transitions[i].Name == "Done" {
			wf.Transitions[i].Screen = []string{"resolution"}
			wf.Transitions[i].Resolution = ""
		}
	}
	return wf
}

func (t Transition) from(status string) bool {
	if len(t.From) == 0 {
		return t.To != status
	}
	return slices.Contains(t.From, status)
}

// workflow returns the workflow of project's issueType.
func (s *Server) workflow(project, issueType string) Workflow {
	if wf, ok := s.opts.Workflows[project+"/"+issueType]; ok {
		return wf
	}
	if wf, ok := s.opts.Workflows[project]; ok {
		return wf
	}
	return DefaultWorkflow()
}

func (wf Workflow) category(status string) string {
	for _, st := range wf.Statuses {
		if st.Name == status {
			return st.Category
		}
	}
	return "indeterminate"
}

// statusID gives each status name a stable id, as Jira's status ids are.
func (s *Server) statusID(name string) string {
	if id, ok := s.statusIDs[name]; ok {
		return id
	}
	id := strconv.Itoa(10000 + len(s.statusIDs))
	s.statusIDs[name] = id
	return id
}

var categoryJSON = map[string]struct {
	id          int
	name, color string
}{
	"new":           {2, "To Do", "blue-gray"},
	"indeterminate": {4, "In Progress", "yellow"},
	"done":          {3, "Done", "green"},
}

func (s *Server) statusJSON(name, category string) map[string]any {
	c := categoryJSON[category]
	id := s.statusID(name)
	return map[string]any{
		"self": s.URL + "/rest/api/2/status/" + id, "description": "", "iconUrl": s.URL + "/images/icons/statuses/generic.png",
		"name": name, "id": id,
		"statusCategory": map[string]any{"self": s.URL + "/rest/api/2/statuscategory/" + strconv.Itoa(c.id),
			"id": c.id, "key": category, "colorName": c.color, "name": c.name},
	}
}

func (s *Server) resolutionJSON(name string) map[string]any {
	i := slices.Index(s.opts.Resolutions, name)
	id := strconv.Itoa(10000 + max(i, 0))
	return map[string]any{"self": s.URL + "/rest/api/2/resolution/" + id, "id": id, "name": name, "description": "The issue is " + strings.ToLower(name) + "."}
}

// screenField is the meta of one field of a transition screen, in the
// product's shape: Cloud names it with key, Data Center with fieldId.
func (s *Server) screenField(id string) map[string]any {
	m := map[string]any{"operations": []string{"set"}, "hasDefaultValue": false}
	if s.opts.Flavor == Cloud {
		m["key"] = id
	} else {
		m["fieldId"] = id
	}
	if id == "resolution" {
		var allowed []map[string]any
		for _, r := range s.opts.Resolutions {
			allowed = append(allowed, s.resolutionJSON(r))
		}
		m["required"], m["name"], m["allowedValues"] = true, "Resolution", allowed
		m["schema"] = map[string]any{"type": "resolution", "system": "resolution"}
		return m
	}
	cf := s.opts.CustomFields[id]
	m["required"], m["name"] = cf.Required, cf.Name
	m["schema"] = map[string]any{"type": cf.Type, "custom": "com.atlassian.jira.plugin.system.customfieldtypes:" + cf.Type}
	if len(cf.Options) > 0 {
		var allowed []map[string]string
		for j, o := range cf.Options {
			allowed = append(allowed, map[string]string{"id": strconv.Itoa(j + 1), "value": o})
		}
		m["allowedValues"] = allowed
	}
	return m
}

// getTransitions answers the transitions from the issue's status. Both
// products wrap them in {"expand":"transitions","transitions":[...]}; Cloud
// adds hasScreen, isGlobal, isInitial, isAvailable, isConditional and
// isLooped to each, Data Center opsbarSequence. The screen's fields come
// only with expand=transitions.fields; transitionId picks one.
func (s *Server) getTransitions(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	iss := s.find(r.PathValue("key"))
	if iss == nil {
		issueNotFound(w)
		return
	}
	q := r.URL.Query()
	expandFields := slices.Contains(strings.Split(q.Get("expand"), ","), "transitions.fields")
	only := q.Get("transitionId")
	wf := s.workflow(iss.Project, iss.IssueType)
	list := []map[string]any{}
	for i, t := range wf.Transitions {
		if !t.from(iss.Status) || (only != "" && t.ID != only) {
			continue
		}
		m := map[string]any{"id": t.ID, "name": t.Name, "to": s.statusJSON(t.To, wf.category(t.To))}
		if s.opts.Flavor == Cloud {
			m["hasScreen"], m["isGlobal"], m["isInitial"] = len(t.Screen) > 0, len(t.From) == 0, false
			m["isAvailable"], m["isConditional"], m["isLooped"] = true, false, false
		} else {
			m["opsbarSequence"] = 10 * (i + 1)
		}
		if expandFields {
			fields := map[string]any{}
			for _, id := range t.Screen {
				fields[id] = s.screenField(id)
			}
			m["fields"] = fields
		}
		list = append(list, m)
	}
	writeJSON(w, 200, map[string]any{"expand": "transitions", "transitions": list})
}

// doTransition carries out a transition as Jira does: 204 without a body;
// 400 with Jira's messages for a transition the issue's status does not
// offer, a field the screen does not have, or a required one missing.
func (s *Server) doTransition(w http.ResponseWriter, r *http.Request) {
	var body map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		invalidPayload(w)
		return
	}
	for k := range body {
		switch k {
		case "transition", "fields", "update", "historyMetadata", "properties":
		default:
			invalidPayload(w)
			return
		}
	}
	var tr struct {
		ID any `json:"id"`
	}
	var fields map[string]any
	var update struct {
		Comment []struct {
			Add struct {
				Body string `json:"body"`
			} `json:"add"`
		} `json:"comment"`
	}
	if body["transition"] == nil || json.Unmarshal(body["transition"], &tr) != nil ||
		(body["fields"] != nil && json.Unmarshal(body["fields"], &fields) != nil) ||
		(body["update"] != nil && json.Unmarshal(body["update"], &update) != nil) {
		invalidPayload(w)
		return
	}
	var id string
	switch v := tr.ID.(type) {
	case string:
		id = v
	case float64:
		id = strconv.Itoa(int(v))
	}
	if id == "" {
		badRequest(w, []string{"Missing 'transition' identifier"}, nil)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	iss := s.find(r.PathValue("key"))
	if iss == nil {
		issueNotFound(w)
		return
	}
	wf := s.workflow(iss.Project, iss.IssueType)
	var t *Transition
	name := id
	for i := range wf.Transitions {
		if wf.Transitions[i].ID == id {
			name = wf.Transitions[i].Name
			if wf.Transitions[i].from(iss.Status) {
				t = &wf.Transitions[i]
			}
		}
	}
	if t == nil {
		if s.opts.Flavor == Cloud {
			badRequest(w, []string{fmt.Sprintf("Transition id '%s' is not valid for this issue.", id)}, nil)
		} else {
			badRequest(w, []string{fmt.Sprintf("It seems that you have tried to perform a workflow operation (%s) that is not valid for the current state of this issue (%s). "+
				"The likely cause is that somebody has changed the issue recently, please look at the issue history for details.", name, iss.Key)}, nil)
		}
		return
	}
	errs := map[string]string{}
	resolution := ""
	for k, v := range fields {
		if !slices.Contains(t.Screen, k) {
			errs[k] = fmt.Sprintf("Field '%s' cannot be set. It is not on the appropriate screen, or unknown.", k)
			continue
		}
		if k == "resolution" {
			n, _ := nameOf(v)
			if !slices.Contains(s.opts.Resolutions, n) {
				errs[k] = fmt.Sprintf("Resolution '%s' is not a valid resolution.", n)
			}
			resolution = n
			continue
		}
		if msg := checkCustom(s.opts.CustomFields[k], v); msg != "" {
			errs[k] = msg
		}
	}
	for _, f := range t.Screen {
		if _, ok := fields[f]; ok {
			continue
		}
		if f == "resolution" {
			errs[f] = "Resolution is required."
		} else if cf := s.opts.CustomFields[f]; cf.Required {
			errs[f] = cf.Name + " is required."
		}
	}
	if len(errs) > 0 {
		badRequest(w, nil, errs)
		return
	}
	for k, v := range fields {
		if k != "resolution" {
			iss.Custom[k] = v
		}
	}
	if resolution == "" {
		resolution = t.Resolution
	}
	from := iss.Status
	s.move(iss, t.To, wf.category(t.To), resolution)
	for _, c := range update.Comment {
		if strings.TrimSpace(c.Add.Body) != "" {
			iss.Comments = append(iss.Comments, c.Add.Body)
		}
	}
	s.transitioned = append(s.transitioned, Transitioned{Key: iss.Key, Name: t.Name, From: from, To: t.To, Resolution: resolution})
	w.WriteHeader(http.StatusNoContent)
}

// move sets the issue's status as a transition (or an admin) does: into a
// done status with resolution, if any, stamping resolutiondate; out of one
// clearing both, as a reopen's post function does.
func (s *Server) move(iss *Issue, status, category, resolution string) {
	now := s.opts.Now()
	if category != iss.StatusCategory {
		iss.StatusChanged = now
	}
	iss.Status, iss.StatusCategory = status, category
	if category == "done" {
		if resolution != "" {
			iss.Resolution, iss.Resolved = resolution, now
		}
	} else {
		iss.Resolution, iss.Resolved = "", time.Time{}
	}
	iss.history = append(iss.history, snapshot{at: now, status: status, category: category, resolution: iss.Resolution, resolved: iss.Resolved})
}

// snapshot is an issue's status as search indexes it from a moment on.
type snapshot struct {
	at               time.Time
	status, category string
	resolution       string
	resolved         time.Time
}

// Transitioned is a transition the server carried out.
type Transitioned struct {
	Key, Name, From, To, Resolution string
}

// Transitions returns every transition carried out through the API, in
// order.
func (s *Server) Transitions() []Transitioned {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.transitioned)
}

// resolutions answers GET /rest/api/2/resolution: every resolution of the site.
func (s *Server) resolutions(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, r := range s.opts.Resolutions {
		out = append(out, s.resolutionJSON(r))
	}
	writeJSON(w, 200, out)
}
