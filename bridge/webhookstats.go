package bridge

import (
	"sort"
	"sync"
	"time"
)

// WebhookHours is how many hourly buckets WebhookStats reports: the current
// hour and the 23 before it.
const WebhookHours = 24

// WebhookStats counts this process's webhooks per source and outcome in
// hourly buckets, for the console's "last 24 hours". It is the same count
// as bridge_webhooks_total, bucketed; with several replicas each one counts
// only the webhooks it answered. Memory is bounded: sources are the
// configured ones (unknown sources are not counted) and each (source,
// outcome) keeps WebhookHours+1 buckets.
type WebhookStats struct {
	mu    sync.Mutex
	rings map[webhookKey]*hourRing
}

type webhookKey struct{ source, outcome string }

// hourRing is one (source, outcome)'s counts, a bucket per hour, indexed by
// the hour number modulo its length.
type hourRing [WebhookHours + 1]struct {
	hour int64 // hours since the Unix epoch
	n    int64
}

// NewWebhookStats returns empty counts.
func NewWebhookStats() *WebhookStats {
	return &WebhookStats{rings: map[webhookKey]*hourRing{}}
}

// Add counts one webhook of source with outcome, answered at t.
func (w *WebhookStats) Add(source, outcome string, t time.Time) {
	h := hourOf(t)
	k := webhookKey{source, outcome}
	w.mu.Lock()
	r := w.rings[k]
	if r == nil {
		r = new(hourRing)
		w.rings[k] = r
	}
	b := &r[h%int64(len(r))]
	switch {
	case b.hour == h:
		b.n++
	case b.hour < h:
		b.hour, b.n = h, 1
	default:
		// An hour older than the bucket's (the clock went back a day):
		// too old to show, and its bucket is a newer hour's.
	}
	w.mu.Unlock()
}

// SourceWebhooks is one source's webhooks over the last WebhookHours hours.
type SourceWebhooks struct {
	Source string
	// Hourly holds, per outcome, the count of each hour, oldest first; the
	// last is the current hour so far.
	Hourly map[string][WebhookHours]int64
}

// Total returns the source's count of outcome over the whole period, or of
// every outcome when outcome is "".
func (s SourceWebhooks) Total(outcome string) int64 {
	var n int64
	for o, hours := range s.Hourly {
		if outcome != "" && o != outcome {
			continue
		}
		for _, c := range hours {
			n += c
		}
	}
	return n
}

// Last24h returns each source's counts for the WebhookHours hours up to
// now, sources sorted by name; sources with no webhook in that time are
// left out.
func (w *WebhookStats) Last24h(now time.Time) []SourceWebhooks {
	cur := hourOf(now)
	by := map[string]map[string][WebhookHours]int64{}
	w.mu.Lock()
	for k, r := range w.rings {
		var hours [WebhookHours]int64
		seen := false
		for _, b := range r {
			age := cur - b.hour
			if b.n == 0 || age < 0 || age >= WebhookHours {
				continue
			}
			hours[WebhookHours-1-age] += b.n
			seen = true
		}
		if !seen {
			continue
		}
		if by[k.source] == nil {
			by[k.source] = map[string][WebhookHours]int64{}
		}
		by[k.source][k.outcome] = hours
	}
	w.mu.Unlock()
	out := make([]SourceWebhooks, 0, len(by))
	for src, m := range by {
		out = append(out, SourceWebhooks{Source: src, Hourly: m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out
}

func hourOf(t time.Time) int64 {
	u := t.Unix()
	if u < 0 {
		return 0
	}
	return u / 3600
}
