package rules

import (
	"time"

	"bridge/bridge"
)

// Try is what `bridge test --source` and the console's try page show for
// one payload: it normalizes payload as src would, without checking a
// signature or token, and explains what every rule makes of the event. It
// stores nothing and sends nothing. The error is the source's refusal of
// the payload.
func Try(set *Set, src *bridge.Source, payload []byte, received time.Time) (*bridge.Event, []Verdict, error) {
	ev, err := src.Normalize(payload, received)
	if err != nil {
		return nil, nil, err
	}
	return ev, set.Explain(ev), nil
}

// Verdict outcomes, as Outcome names them.
const (
	VerdictMatch   = "match"
	VerdictNoMatch = "no match"
	VerdictSkipped = "skipped"
	VerdictError   = "error"
)

// Outcome names the verdict: VerdictMatch, VerdictNoMatch, VerdictSkipped
// (an earlier matching rule has stop: true) or VerdictError (the rule
// failed to evaluate and counts as not matching).
func (v Verdict) Outcome() string {
	switch {
	case v.Err != nil:
		return VerdictError
	case v.Skipped:
		return VerdictSkipped
	case v.Matched:
		return VerdictMatch
	default:
		return VerdictNoMatch
	}
}
