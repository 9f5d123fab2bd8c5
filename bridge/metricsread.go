package bridge

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// reloadState is the last config (re)load: when, and why it was refused.
type reloadState struct {
	mu   sync.Mutex
	info ReloadInfo
}

// ReloadInfo is the last config load or reload of this process.
type ReloadInfo struct {
	At          time.Time // when it was attempted; zero before the first
	Err         string    // why it was refused; "" when it succeeded
	LastSuccess time.Time // when a load last succeeded
}

// Reloaded records a config load or reload at at: it sets
// bridge_config_last_reload_successful (and, when err is nil, the success
// timestamp) and keeps the details for the console. err is the reason a
// reload was refused.
func (m *Metrics) Reloaded(at time.Time, err error) {
	m.reload.mu.Lock()
	defer m.reload.mu.Unlock()
	m.reload.info.At = at
	if err != nil {
		m.ReloadSuccess.Set(0)
		m.reload.info.Err = err.Error()
		return
	}
	m.ReloadSuccess.Set(1)
	m.ReloadTime.Set(float64(at.UnixNano()) / 1e9)
	m.reload.info.Err = ""
	m.reload.info.LastSuccess = at
}

// LastReload returns the last load or reload recorded with Reloaded.
func (m *Metrics) LastReload() ReloadInfo {
	m.reload.mu.Lock()
	defer m.reload.mu.Unlock()
	return m.reload.info
}

// RuleCount is what bridge_rule_matches_total and bridge_rule_errors_total
// say of one rule in this process.
type RuleCount struct {
	Matches, Errors int64
}

// RuleCounts returns each rule's match and error counts since this process
// started, by rule name (rules that never matched nor failed are absent).
func (m *Metrics) RuleCounts() map[string]RuleCount {
	out := map[string]RuleCount{}
	for rule, n := range counterValues(m.RuleMatches, "rule") {
		c := out[rule]
		c.Matches = n
		out[rule] = c
	}
	for rule, n := range counterValues(m.RuleErrors, "rule") {
		c := out[rule]
		c.Errors = n
		out[rule] = c
	}
	return out
}

// counterValues reads a counter vector with one label: value by label.
func counterValues(v *prometheus.CounterVec, label string) map[string]int64 {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		v.Collect(ch)
		close(ch)
	}()
	out := map[string]int64{}
	for pm := range ch {
		var d dto.Metric
		if pm.Write(&d) != nil || d.Counter == nil {
			continue
		}
		for _, lp := range d.Label {
			if lp.GetName() == label {
				out[lp.GetValue()] += int64(d.Counter.GetValue())
			}
		}
	}
	return out
}
