package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"bridge/bridge"
	"bridge/rules"
)

// outcomes are bridge_webhooks_total's outcomes, in the order the
// overview shows them.
var outcomes = []string{
	bridge.OutcomeAccepted, bridge.OutcomeDuplicate, bridge.OutcomeInvalid, bridge.OutcomeUnauthorized,
	bridge.OutcomeTooLarge, bridge.OutcomeRateLimited, bridge.OutcomeError,
}

type outcomeCell struct {
	Outcome string
	N       int64
}

// bar is one hour of a source's webhooks in the overview's chart: the good
// (accepted, duplicate) part below, the rest above. Coordinates are SVG
// user units.
type bar struct {
	X, GoodY, GoodH, BadY, BadH int
	Title                       string
}

type sourceRow struct {
	Name, Vendor string
	Configured   bool
	Outcomes     []outcomeCell
	Total        int64
	Bars         []bar
}

type sinkRow struct {
	Name, Type                 string
	Configured                 bool
	Pending, Failed, Delivered int
	LastError                  string
	LastErrorAt                time.Time
}

type overviewData struct {
	Reload      bridge.ReloadInfo
	Outcomes    []string
	Sources     []sourceRow
	Sinks       []sinkRow
	Failures    []*bridge.DeliveryRecord
	FailedTotal int
	StatsAt     time.Time // when the sinks' counts were read, when not just now
	Issue       func(sink, result string) string
	Rules       int
}

// chart sizes, in SVG units.
const (
	barWidth  = 6
	barGap    = 1
	chartH    = 28
	chartW    = bridge.WebhookHours * (barWidth + barGap)
	hourStart = time.Hour
)

func (c *console) overview(w http.ResponseWriter, r *http.Request) {
	rt := c.opt.Runtime()
	now := c.now()
	d := overviewData{Reload: c.opt.Metrics.LastReload(), Outcomes: outcomes, Issue: c.issueLinks()}

	var recent []bridge.SourceWebhooks
	if c.opt.Webhooks != nil {
		recent = c.opt.Webhooks.Last24h(now)
	}
	byName := map[string]bridge.SourceWebhooks{}
	for _, s := range recent {
		byName[s.Source] = s
	}
	seen := map[string]bool{}
	if rt != nil && rt.Config != nil {
		d.Rules = len(rt.Config.Rules)
		for _, sc := range rt.Config.Sources {
			seen[sc.Name] = true
			d.Sources = append(d.Sources, sourceRowOf(sc.Name, sc.Vendor, true, byName[sc.Name], now))
		}
	}
	for _, s := range recent {
		if !seen[s.Source] {
			d.Sources = append(d.Sources, sourceRowOf(s.Source, "", false, s, now))
		}
	}

	stats, statsAt, err := c.stats.get(r.Context(), c.opt.Store, c.now)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	seen = map[string]bool{}
	if rt != nil && rt.Config != nil {
		for _, e := range rt.Config.Sinks {
			seen[e.Name] = true
			d.Sinks = append(d.Sinks, sinkRowOf(e.Name, e.Type, true, stats[e.Name]))
		}
	}
	var gone []string
	for name := range stats {
		if !seen[name] {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	for _, name := range gone {
		d.Sinks = append(d.Sinks, sinkRowOf(name, "", false, stats[name]))
	}
	for _, s := range d.Sinks {
		d.FailedTotal += s.Failed
	}
	if now.Sub(statsAt) >= time.Second {
		d.StatsAt = statsAt
	}
	if d.FailedTotal > 0 {
		if d.Failures, err = c.opt.Store.Deliveries(r.Context(), bridge.DeliveryFilter{Status: bridge.StatusFailed, Limit: 5}); err != nil {
			c.storeFailed(w, r, err)
			return
		}
	}
	c.render(w, r, http.StatusOK, "overview", "Overview", d)
}

func sourceRowOf(name, vendor string, configured bool, s bridge.SourceWebhooks, now time.Time) sourceRow {
	row := sourceRow{Name: name, Vendor: vendor, Configured: configured}
	for _, o := range outcomes {
		n := s.Total(o)
		row.Outcomes = append(row.Outcomes, outcomeCell{o, n})
		row.Total += n
	}
	var good, bad [bridge.WebhookHours]int64
	var peak int64
	for o, hours := range s.Hourly {
		for i, n := range hours {
			if o == bridge.OutcomeAccepted || o == bridge.OutcomeDuplicate {
				good[i] += n
			} else {
				bad[i] += n
			}
		}
	}
	for i := range good {
		peak = max(peak, good[i]+bad[i])
	}
	first := now.UTC().Truncate(hourStart).Add(-(bridge.WebhookHours - 1) * hourStart)
	for i := range good {
		b := bar{X: i * (barWidth + barGap)}
		from := first.Add(time.Duration(i) * hourStart)
		b.Title = fmt.Sprintf("%s–%s UTC: %d ok, %d refused", from.Format("Jan 2 15:04"), from.Add(hourStart).Format("15:04"), good[i], bad[i])
		if peak > 0 {
			total := good[i] + bad[i]
			h := int((total*int64(chartH) + peak - 1) / peak) // at least 1 unit for any webhook
			gh := int(good[i] * int64(h) / max(total, 1))
			if good[i] > 0 && gh == 0 {
				gh = 1
			}
			b.GoodH, b.GoodY = gh, chartH-gh
			b.BadH, b.BadY = h-gh, chartH-h
		}
		row.Bars = append(row.Bars, b)
	}
	return row
}

func sinkRowOf(name, typ string, configured bool, st bridge.SinkStats) sinkRow {
	return sinkRow{Name: name, Type: typ, Configured: configured, Pending: st.Pending, Failed: st.Failed,
		Delivered: st.Delivered, LastError: st.LastError, LastErrorAt: st.LastErrorAt}
}

type eventsData struct {
	Q          eventQuery
	Err        string
	Sources    []string
	Severities []string
	Events     []bridge.StoredEvent
	Next       string // the next page's URL, "" on the last
	Newest     string // the first page's URL, "" on the first
}

func (c *console) events(w http.ResponseWriter, r *http.Request) {
	d := eventsData{Severities: bridge.Severities, Sources: c.sourceNames()}
	eq, err := parseEventQuery(r.URL.Query())
	d.Q = eq
	if err != nil {
		d.Err = err.Error()
		c.render(w, r, http.StatusBadRequest, "events", "Events", d)
		return
	}
	evs, next, err := c.listEvents(r.Context(), eq)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	d.Events = evs
	if next != "" {
		v := eq.values()
		v.Set("cursor", next)
		d.Next = withQuery("/events", v)
	}
	if eq.Cursor != "" {
		d.Newest = withQuery("/events", eq.values())
	}
	c.render(w, r, http.StatusOK, "events", "Events", d)
}

// sourceNames are the configured sources, for the filters.
func (c *console) sourceNames() []string {
	var out []string
	if rt := c.opt.Runtime(); rt != nil && rt.Config != nil {
		for _, s := range rt.Config.Sources {
			out = append(out, s.Name)
		}
	}
	return out
}

type eventData struct {
	Event      *bridge.Event
	Raw        []byte
	Deliveries []*bridge.DeliveryRecord
	Failed     []int64
	Issue      func(sink, result string) string
}

// maxEventDeliveries bounds the deliveries shown with one event.
const maxEventDeliveries = 200

// eventWithDeliveries reads one event, its raw body and (at most
// maxEventDeliveries of) its deliveries, for its page and its API object;
// bridge.ErrNotFound when the store has no such event.
func (c *console) eventWithDeliveries(r *http.Request, source, id string) (*bridge.StoredEvent, []byte, []*bridge.DeliveryRecord, error) {
	se, raw, err := c.opt.Store.Event(r.Context(), source, id)
	if err != nil {
		return nil, nil, nil, err
	}
	ds, err := c.opt.Store.Deliveries(r.Context(), bridge.DeliveryFilter{EventID: id, Source: source, Limit: maxEventDeliveries})
	if err != nil {
		return nil, nil, nil, err
	}
	return se, raw, ds, nil
}

func (c *console) event(w http.ResponseWriter, r *http.Request) {
	source, id := r.PathValue("source"), r.PathValue("id")
	se, raw, ds, err := c.eventWithDeliveries(r, source, id)
	if errors.Is(err, bridge.ErrNotFound) {
		c.errorPage(w, r, http.StatusNotFound, fmt.Sprintf("No event %q from source %q is stored (it may have been pruned).", id, source))
		return
	}
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	d := eventData{Event: se.Event, Raw: raw, Deliveries: ds, Issue: c.issueLinks()}
	for _, x := range ds {
		if x.Status == bridge.StatusFailed {
			d.Failed = append(d.Failed, x.ID)
		}
	}
	c.render(w, r, http.StatusOK, "event", se.Event.Type+" "+se.Event.ID, d)
}

type deliveriesData struct {
	Q          deliveryQuery
	Err        string
	Statuses   []string
	Sinks      []string
	Rules      []string
	Deliveries []*bridge.DeliveryRecord
	Failed     []int64 // the failed ones shown, for "replay all shown"
	Next       string
	Newest     string
	Issue      func(sink, result string) string
}

func (c *console) deliveries(w http.ResponseWriter, r *http.Request) {
	d := deliveriesData{Statuses: []string{bridge.StatusPending, bridge.StatusDelivered, bridge.StatusFailed}, Issue: c.issueLinks()}
	if rt := c.opt.Runtime(); rt != nil && rt.Config != nil {
		for _, s := range rt.Config.Sinks {
			d.Sinks = append(d.Sinks, s.Name)
		}
		for _, ru := range rt.Config.Rules {
			d.Rules = append(d.Rules, ru.Name)
		}
	}
	dq, err := parseDeliveryQuery(r.URL.Query())
	d.Q = dq
	if dq.Sink != "" && !slices.Contains(d.Sinks, dq.Sink) {
		d.Sinks = append(d.Sinks, dq.Sink)
	}
	if dq.Rule != "" && !slices.Contains(d.Rules, dq.Rule) {
		d.Rules = append(d.Rules, dq.Rule)
	}
	if err != nil {
		d.Err = err.Error()
		c.render(w, r, http.StatusBadRequest, "deliveries", "Deliveries", d)
		return
	}
	ds, next, err := c.listDeliveries(r.Context(), dq)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	d.Deliveries = ds
	for _, x := range ds {
		if x.Status == bridge.StatusFailed {
			d.Failed = append(d.Failed, x.ID)
		}
	}
	if next != "" {
		v := dq.values()
		v.Set("cursor", next)
		d.Next = withQuery("/deliveries", v)
	}
	if dq.Cursor != "" {
		d.Newest = withQuery("/deliveries", dq.values())
	}
	c.render(w, r, http.StatusOK, "deliveries", "Deliveries", d)
}

// replayOne replays the delivery of the path and sends the browser back.
func (c *console) replayOne(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		c.errorPage(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not a delivery id.", r.PathValue("id")))
		return
	}
	c.replayAndReturn(w, r, []int64{id})
}

// replayShown replays the failed deliveries a page listed (its id fields).
func (c *console) replayShown(w http.ResponseWriter, r *http.Request) {
	var ids []int64
	for _, s := range r.PostForm["id"] {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			c.errorPage(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not a delivery id.", s))
			return
		}
		ids = append(ids, id)
	}
	if len(ids) > maxLimit {
		c.errorPage(w, r, http.StatusBadRequest, fmt.Sprintf("At most %d deliveries are replayed at once.", maxLimit))
		return
	}
	c.replayAndReturn(w, r, ids)
}

func (c *console) replayAndReturn(w http.ResponseWriter, r *http.Request, ids []int64) {
	done, err := c.replay(r.Context(), ids)
	if err != nil {
		c.storeFailed(w, r, err)
		return
	}
	c.log.Info("console: replayed deliveries", "user", userOf(r), "asked", len(ids), "replayed", len(done))
	back := safeBack(r.PostForm.Get("back"))
	u, _ := url.Parse(back)
	q := u.Query()
	q.Set("replayed", strconv.Itoa(len(done)))
	q.Set("skipped", strconv.Itoa(len(ids)-len(done)))
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
}

// safeBack keeps a form's return address on this console: a path, never
// another host.
func safeBack(back string) string {
	u, err := url.Parse(back)
	if err != nil || back == "" || u.Scheme != "" || u.Host != "" || u.User != nil ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || strings.Contains(back, "\\") {
		return "/deliveries"
	}
	return (&url.URL{Path: u.Path, RawQuery: u.RawQuery}).RequestURI()
}

type tryData struct {
	Sources []string
	Source  string
	Payload string
	Err     string
	Result  *tryResult
}

func (c *console) try(w http.ResponseWriter, r *http.Request) {
	d := tryData{Sources: c.sourceNames()}
	if r.Method != http.MethodPost {
		d.Source = r.URL.Query().Get("source")
		c.render(w, r, http.StatusOK, "try", "Try a payload", d)
		return
	}
	d.Source, d.Payload = r.PostForm.Get("source"), r.PostForm.Get("payload")
	res, status, err := c.runTry(d.Source, []byte(d.Payload))
	if err != nil {
		d.Err = err.Error()
		c.render(w, r, status, "try", "Try a payload", d)
		return
	}
	d.Result = res
	c.render(w, r, http.StatusOK, "try", "Try a payload", d)
}

// tryResult is what `bridge test --source` prints, as data: the Event,
// each rule's verdict and each rendered action.
type tryResult struct {
	Event *bridge.Event `json:"event"`
	Rules []tryRule     `json:"rules"`
}

type tryRule struct {
	Rule    string      `json:"rule"`
	Verdict string      `json:"verdict"` // match, no match, skipped, error
	Error   string      `json:"error,omitempty"`
	Actions []tryAction `json:"actions,omitempty"`
}

type tryAction struct {
	Sink   string         `json:"sink"`
	Fields map[string]any `json:"fields,omitempty"`
	Error  string         `json:"error,omitempty"` // the template's error
}

// runTry normalizes payload as source would and explains the rules'
// verdicts (rules.Try): nothing is stored, nothing sent.
func (c *console) runTry(source string, payload []byte) (*tryResult, int, error) {
	rt := c.opt.Runtime()
	if rt == nil {
		return nil, http.StatusServiceUnavailable, errors.New("no config is loaded")
	}
	if source == "" {
		return nil, http.StatusBadRequest, errors.New("choose a source")
	}
	src, ok := rt.Sources[source]
	if !ok {
		return nil, http.StatusBadRequest, fmt.Errorf("no source %q in the config", source)
	}
	if limit := rt.Config.Server.MaxBodyBytes; limit > 0 && int64(len(payload)) > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("the payload is larger than server.max_body_bytes (%d bytes)", limit)
	}
	set, ok := rt.Rules.(*rules.Set)
	if !ok {
		return nil, http.StatusInternalServerError, errors.New("the loaded rules cannot be explained")
	}
	ev, verdicts, err := rules.Try(set, src, payload, c.now().UTC())
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("%s refuses this payload: %v", source, err)
	}
	res := &tryResult{Event: ev, Rules: make([]tryRule, 0, len(verdicts))}
	for _, v := range verdicts {
		tr := tryRule{Rule: v.Rule, Verdict: v.Outcome()}
		if v.Err != nil {
			tr.Error = v.Err.Error()
		}
		for _, a := range v.Actions {
			ta := tryAction{Sink: a.Sink, Fields: a.Fields}
			if a.Err != nil {
				ta.Error = a.Err.Error()
			}
			tr.Actions = append(tr.Actions, ta)
		}
		res.Rules = append(res.Rules, tr)
	}
	return res, http.StatusOK, nil
}

type ruleRow struct {
	Name, When string
	Stop       bool
	Line       int
	Sinks      []string
	Matches    int64
	Errors     int64
}

type rulesData struct {
	File  string
	Rules []ruleRow
}

func (c *console) rules(w http.ResponseWriter, r *http.Request) {
	var d rulesData
	counts := c.opt.Metrics.RuleCounts()
	if rt := c.opt.Runtime(); rt != nil && rt.Config != nil {
		d.File = rt.Config.File
		for _, ru := range rt.Config.Rules {
			row := ruleRow{Name: ru.Name, When: ru.When, Stop: ru.Stop, Line: ru.Line,
				Matches: counts[ru.Name].Matches, Errors: counts[ru.Name].Errors}
			for _, a := range ru.Actions {
				row.Sinks = append(row.Sinks, a.Sink)
			}
			d.Rules = append(d.Rules, row)
		}
	}
	c.render(w, r, http.StatusOK, "rules", "Rules", d)
}
