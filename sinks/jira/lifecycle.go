package jira

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	jira "github.com/andygrunwald/go-jira"

	"bridge/bridge"
)

// resolveTicket carries out a resolve action while holding the key's lock:
// the key's open ticket moves through st.Transition, with st.Resolution,
// and then gets st.Comment. With no open ticket nothing is sent and the
// result is empty.
func (s *Sink) resolveTicket(ctx context.Context, d *bridge.Delivery, st *settings, label, sk string) (string, error) {
	rec, err := s.load(ctx, sk)
	if err != nil {
		return "", err
	}
	if key, ok := rec.doneBy(d); ok {
		s.log.Info("jira: an earlier attempt of this delivery resolved the issue", "issue", key, "url", s.browse(key))
		return key, nil
	}
	var exclude []string
	fromSearch := false
	for found := 0; found <= maxFound; found++ {
		if rec.Key == "" {
			iss, err := s.search(ctx, st.Project, label, exclude)
			if err != nil {
				return "", err
			}
			if iss == nil {
				if !rec.Pending.IsZero() {
					if wait := rec.Pending.Add(s.lag).Sub(s.now()); wait > 0 {
						return "", bridge.RetryAfter(fmt.Errorf(
							"jira: resolve: a create for this dedupe key (label %s) has an unknown outcome and search does not show its issue yet; looking again until %s",
							label, rec.Pending.Add(s.lag).UTC().Format(time.RFC3339)), min(wait, pendingRecheck))
					}
				}
				s.log.Info("jira: no open issue of the dedupe key to resolve", "label", label, "project", st.Project)
				return "", nil
			}
			adopted := rec.next(record{Key: iss.Key, ID: iss.ID})
			if !rec.Pending.IsZero() {
				adopted.Delivery = rec.Delivery
			}
			if err := s.save(ctx, sk, adopted); err != nil {
				return "", err
			}
			rec, fromSearch = adopted, true
		}
		iss, err := s.getIssue(ctx, rec.Key)
		if err != nil {
			return "", err
		}
		switch {
		case iss == nil:
			s.log.Info("jira: the dedupe key's issue is gone; nothing to resolve there", "issue", rec.Key)
		case isDone(iss) && rec.movingBy(d, opResolve):
			// An earlier attempt of d resolved it and stopped before its
			// comment was posted and recorded.
			return s.finishResolve(ctx, d, st, rec, sk, resolvedAt(iss, rec))
		case isDone(iss) && !fromSearch:
			// The key's ticket is Done (by a person, or another resolve):
			// nothing is open. It stays remembered for reopen_within.
			s.log.Info("jira: the dedupe key's issue is done already; nothing to resolve", "issue", rec.Key, "status", statusName(iss))
			return "", nil
		case !isDone(iss):
			return s.moveToResolved(ctx, d, st, rec, iss, sk)
		}
		// Gone, or found by a lagging search and Done in fact: look again.
		exclude = append(exclude, rec.Key)
		if err := s.forget(ctx, sk, rec); err != nil {
			return "", fmt.Errorf("jira: forget issue %s: %w", rec.Key, err)
		}
		rec = rec.next(record{})
	}
	s.log.Info("jira: no open issue of the dedupe key to resolve", "label", label, "project", st.Project)
	return "", nil
}

// moveToResolved sends the resolve transition for the open issue iss.
func (s *Sink) moveToResolved(ctx context.Context, d *bridge.Delivery, st *settings, rec record, iss *jira.Issue, sk string) (string, error) {
	marked := rec
	marked.Moving = &moving{Delivery: d.ID, Op: opResolve, Since: s.now()}
	if err := s.save(ctx, sk, marked); err != nil {
		return "", err
	}
	if err := s.transition(ctx, iss, st.Transition, "transition", st.Resolution); err != nil {
		s.unmark(ctx, sk, rec, err)
		return "", err
	}
	s.log.Info("jira: resolved the issue", "issue", rec.Key, "transition", st.Transition, "url", s.browse(rec.Key))
	if s.fault != nil {
		s.fault(FaultAfterTransition)
	}
	return s.finishResolve(ctx, d, st, marked, sk, s.now())
}

// finishResolve posts a resolve's comment and records the resolution.
func (s *Sink) finishResolve(ctx context.Context, d *bridge.Delivery, st *settings, rec record, sk string, at time.Time) (string, error) {
	if strings.TrimSpace(st.Comment) != "" {
		if err := s.comment(ctx, rec.Key, st.Comment); err != nil {
			return "", err
		}
	}
	if at.IsZero() {
		at = s.now()
	}
	done := rec.withDone(d, rec.Key)
	done.Resolved = at
	if err := s.save(context.WithoutCancel(ctx), sk, done); err != nil {
		// Jira has the resolution; without the record, a reopen relies on
		// Jira's resolutiondate.
		s.log.Error("jira: could not record the resolution", "issue", rec.Key, "error", err)
	} else if s.fault != nil {
		s.fault(FaultAfterResolve)
	}
	return rec.Key, nil
}

// reopen moves the Done issue iss, resolved ago, back through
// st.ReopenTransition and comments on it.
func (s *Sink) reopen(ctx context.Context, d *bridge.Delivery, st *settings, rec record, iss *jira.Issue, sk string, ago time.Duration) (string, error) {
	marked := rec
	marked.Moving = &moving{Delivery: d.ID, Op: opReopen, Since: s.now()}
	if err := s.save(ctx, sk, marked); err != nil {
		return "", err
	}
	if err := s.transition(ctx, iss, st.ReopenTransition, "reopen_transition", ""); err != nil {
		s.unmark(ctx, sk, rec, err)
		return "", err
	}
	s.log.Info("jira: reopened the issue", "issue", rec.Key, "resolved_ago", ago.Round(time.Second).String(), "url", s.browse(rec.Key))
	if s.fault != nil {
		s.fault(FaultAfterTransition)
	}
	return s.finishReopen(ctx, d, st, marked, sk)
}

// finishReopen posts a reopen's comment and records the reopen.
func (s *Sink) finishReopen(ctx context.Context, d *bridge.Delivery, st *settings, rec record, sk string) (string, error) {
	if err := s.comment(ctx, rec.Key, reopenText(st, d.Event)); err != nil {
		return "", err
	}
	done := rec.withDone(d, rec.Key)
	done.Resolved = time.Time{}
	if err := s.save(context.WithoutCancel(ctx), sk, done); err != nil {
		s.log.Error("jira: could not record the reopen", "issue", rec.Key, "error", err)
	} else if s.fault != nil {
		s.fault(FaultAfterReopen)
	}
	return rec.Key, nil
}

// unmark clears a transition's in-flight marker after a transition that
// surely did not happen (Jira refused it). After any other failure the
// marker stays: the next attempt finds the issue moved or not and goes on
// from there.
func (s *Sink) unmark(ctx context.Context, sk string, rec record, err error) {
	if !bridge.IsPermanent(err) {
		return
	}
	if serr := s.save(context.WithoutCancel(ctx), sk, rec); serr != nil {
		s.log.Warn("jira: could not clear the marker of a refused transition", "issue", rec.Key, "error", serr)
	}
}

// reopenText is the comment of a reopen: a line saying why, then what a
// repeat comments.
func reopenText(st *settings, ev *bridge.Event) string {
	return cutRunes(fmt.Sprintf("Reopened: seen again within %s of the resolution.\n\n%s",
		formatWindow(st.ReopenWithin.D()), repeatText(st, ev)), maxDescriptionRunes)
}

// formatWindow writes a duration as Go does, without zero units: 72h, 90m, 2s.
func formatWindow(d time.Duration) string {
	out := d.String()
	for _, zero := range []string{"0s", "0m"} {
		if strings.HasSuffix(out, "m"+zero) || strings.HasSuffix(out, "h"+zero) {
			out = strings.TrimSuffix(out, zero)
		}
	}
	return out
}

// transitionInfo is one transition Jira offers from an issue's status
// (GET /rest/api/2/issue/{key}/transitions?expand=transitions.fields). Cloud
// adds hasScreen and isGlobal, Data Center opsbarSequence; both list the
// fields of the transition's screen only when asked to expand them.
type transitionInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	To   struct {
		Name           string `json:"name"`
		StatusCategory struct {
			Key string `json:"key"`
		} `json:"statusCategory"`
	} `json:"to"`
	HasScreen *bool                      `json:"hasScreen"`
	Fields    map[string]transitionField `json:"fields"`
}

// transitionField is a field of a transition's screen.
type transitionField struct {
	Required      bool             `json:"required"`
	Name          string           `json:"name"`
	AllowedValues []map[string]any `json:"allowedValues"`
}

// transitions lists the transitions Jira offers from the issue's current
// status, with their screens' fields.
func (s *Sink) transitions(ctx context.Context, key string) ([]transitionInfo, error) {
	req, err := s.client.NewRequestWithContext(ctx, http.MethodGet,
		"rest/api/2/issue/"+url.PathEscape(key)+"/transitions?expand=transitions.fields", nil)
	if err != nil {
		return nil, fmt.Errorf("jira: list transitions of %s: %w", key, err)
	}
	var out struct {
		Transitions []transitionInfo `json:"transitions"`
	}
	resp, err := s.client.Do(req, &out)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			_ = readMessage(resp.Body)
			return nil, fmt.Errorf("jira: list transitions of %s: %w", key, errGone)
		}
		return nil, apiError("list transitions of "+key, resp, err)
	}
	return out.Transitions, nil
}

// findTransition returns the transition called name, compared
// case-insensitively and ignoring surrounding space.
func findTransition(ts []transitionInfo, name string) (transitionInfo, bool) {
	name = strings.TrimSpace(name)
	for _, t := range ts {
		if strings.EqualFold(strings.TrimSpace(t.Name), name) {
			return t, true
		}
	}
	return transitionInfo{}, false
}

// offered lists transitions as `"Name" (→ Status)`, for messages.
func offered(ts []transitionInfo) string {
	if len(ts) == 0 {
		return "none"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%q (→ %s)", t.Name, t.To.Name)
	}
	return strings.Join(parts, ", ")
}

// allowedNames are the names of a field's allowed values.
func allowedNames(f transitionField) []string {
	var out []string
	for _, v := range f.AllowedValues {
		if n, ok := v["name"].(string); ok {
			out = append(out, n)
		}
	}
	return out
}

// transitionRequest is the body of POST /rest/api/2/issue/{key}/transitions.
type transitionRequest struct {
	Transition struct {
		ID string `json:"id"`
	} `json:"transition"`
	Fields map[string]any `json:"fields,omitempty"`
}

// transition moves iss through the transition called name (the action key
// actionKey names it), setting resolution when given and the transition's
// screen has the field. It fails permanently when Jira offers no such
// transition from the issue's status, listing what it offers, and when
// the screen requires a field the action does not set, naming it.
func (s *Sink) transition(ctx context.Context, iss *jira.Issue, name, actionKey, resolution string) error {
	key := iss.Key
	ts, err := s.transitions(ctx, key)
	if err != nil {
		return err
	}
	t, ok := findTransition(ts, name)
	if !ok {
		return bridge.Permanent(fmt.Errorf("jira: %s: Jira offers no transition %q from its status %q (it offers: %s); set %s: to one of them, or add the transition to the workflow",
			key, name, statusName(iss), offered(ts), actionKey))
	}
	var body transitionRequest
	body.Transition.ID = t.ID
	rf, onScreen := t.Fields["resolution"]
	switch {
	case resolution == "" && onScreen && rf.Required:
		names := allowedNames(rf)
		return bridge.Permanent(fmt.Errorf("jira: %s: the screen of transition %q requires a resolution; set resolution: in the action (one of: %s)",
			key, t.Name, strings.Join(names, ", ")))
	case resolution == "":
	case onScreen:
		if names := allowedNames(rf); len(names) > 0 {
			exact := ""
			for _, n := range names {
				if strings.EqualFold(n, resolution) {
					exact = n
				}
			}
			if exact == "" {
				return bridge.Permanent(fmt.Errorf("jira: %s: transition %q offers no resolution %q (it offers: %s); change resolution: in the action",
					key, t.Name, resolution, strings.Join(names, ", ")))
			}
			resolution = exact
		}
		body.Fields = map[string]any{"resolution": map[string]string{"name": resolution}}
	case t.Fields == nil && (t.HasScreen == nil || *t.HasScreen):
		// Jira did not list the screen's fields: send the resolution and
		// let Jira say whether the screen takes it.
		body.Fields = map[string]any{"resolution": map[string]string{"name": resolution}}
	default:
		// The transition has no Resolution field on a screen: Jira would
		// refuse it, and the workflow sets the resolution itself, if at all.
		s.log.Info("jira: the transition's screen has no resolution field; resolution not sent", "issue", key, "transition", t.Name, "resolution", resolution)
	}
	req, err := s.client.NewRequestWithContext(ctx, http.MethodPost, "rest/api/2/issue/"+url.PathEscape(key)+"/transitions", body)
	if err != nil {
		return fmt.Errorf("jira: transition %s: %w", key, err)
	}
	resp, err := s.client.Do(req, nil)
	if resp != nil && resp.Body != nil && err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	if err == nil {
		return nil
	}
	op := fmt.Sprintf("transition %s through %q", key, t.Name)
	if resp == nil || resp.Response == nil {
		return fmt.Errorf("jira: %s: %w", op, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		_ = readMessage(resp.Body)
		return fmt.Errorf("jira: %s: %w", op, errGone)
	}
	_, fields, text := readErrors(resp.Body)
	herr := bridge.HTTPStatusError(resp.StatusCode, resp.Header, text)
	if hint := fieldHints(fields, actionKey); hint != "" && resp.StatusCode == http.StatusBadRequest {
		return bridge.Permanent(fmt.Errorf("jira: %s: %w. %s", op, herr, hint))
	}
	return fmt.Errorf("jira: %s: %w", op, herr)
}

// fieldHints says what to do about the fields a transition was refused for.
func fieldHints(fields map[string]string, actionKey string) string {
	if len(fields) == 0 {
		return ""
	}
	ids := make([]string, 0, len(fields))
	for id := range fields {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var hints []string
	for _, id := range ids {
		msg := strings.ToLower(fields[id])
		switch {
		case id == "resolution" && strings.Contains(msg, "cannot be set"):
			hints = append(hints, "The transition's screen has no resolution field: remove resolution: from the action")
		case id == "resolution":
			hints = append(hints, "The transition's screen requires a resolution: set resolution: in the action")
		default:
			hints = append(hints, fmt.Sprintf("The transition's screen requires %s, which the bridge does not set: make the field optional or give it a default on that screen, or name another transition in %s:", id, actionKey))
		}
	}
	return strings.Join(hints, ". ")
}

// readErrors reads an error body: Jira's ErrorCollection (its messages and
// per-field errors), the JAX-RS {"message": ...} form, or text; text is all
// of it in one line, as readMessage gives it.
func readErrors(body io.ReadCloser) (msgs []string, fields map[string]string, text string) {
	if body == nil {
		return nil, nil, ""
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, 64<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<20))
	if err != nil && len(b) == 0 {
		return nil, nil, ""
	}
	var v struct {
		ErrorMessages []string          `json:"errorMessages"`
		Errors        map[string]string `json:"errors"`
		Message       string            `json:"message"`
	}
	if json.Unmarshal(b, &v) == nil {
		if m := formatMessages(v.ErrorMessages, v.Errors); m != "" {
			return v.ErrorMessages, v.Errors, m
		}
		if v.Message != "" {
			return nil, nil, v.Message
		}
	}
	return nil, nil, cutRunes(strings.TrimSpace(string(b)), 1000)
}
