package slack

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"bridge/bridge"
)

// deadlineMargin is the time an attempt keeps for the post itself after
// waiting for the limiter: a post started just before the deadline may reach
// Slack and still count as failed, which would post the message twice.
const deadlineMargin = 500 * time.Millisecond

// maxHold is the longest a 429 holds a channel back. A longer Retry-After
// (a bogus one reads as bridge.MaxRetryAfter) is cut to it: the next message
// after it asks Slack again, and is held again if Slack still says so.
const maxHold = 5 * time.Minute

// pacer keeps a token bucket per channel and, after a 429, holds the whole
// channel back for as long as Slack asked (at most maxHold).
type pacer struct {
	limit rate.Limit
	burst int
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu    sync.Mutex
	gates map[string]*gate
}

type gate struct {
	lim   *rate.Limiter
	until time.Time // no message before this (Slack's Retry-After)
}

func newPacer(rl bridge.RateLimit, now func() time.Time, sleep func(context.Context, time.Duration) error) *pacer {
	return &pacer{limit: rate.Limit(rl.RPS), burst: rl.Burst, now: now, sleep: sleep, gates: map[string]*gate{}}
}

func (p *pacer) gate(key string) *gate {
	g, ok := p.gates[key]
	if !ok {
		g = &gate{lim: rate.NewLimiter(p.limit, p.burst)}
		p.gates[key] = g
	}
	return g
}

// wait blocks until key's channel may take one more message. When that
// would be later than ctx's deadline allows, it returns at once with a
// RetryAfter error instead, so the pipeline tries again when the channel is
// free rather than timing the attempt out.
func (p *pacer) wait(ctx context.Context, key string) error {
	p.mu.Lock()
	g := p.gate(key)
	now := p.now()
	r := g.lim.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	if held := g.until.Sub(now); held > delay {
		delay = held
	}
	p.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	// Compared this way round, a delay as long as a Duration goes cannot
	// overflow into a short one.
	if dl, ok := ctx.Deadline(); ok && delay > time.Until(dl)-deadlineMargin {
		r.CancelAt(now)
		return bridge.RetryAfter(fmt.Errorf("slack: %s: rate limit: the next message may go in %s, after this attempt's deadline", key, delay.Round(time.Millisecond)), delay)
	}
	if err := p.sleep(ctx, delay); err != nil {
		r.CancelAt(p.now())
		return fmt.Errorf("slack: %s: waiting for the rate limit: %w", key, err)
	}
	return nil
}

// hold keeps key's channel free of messages for d, after Slack answered
// 429: for at most maxHold, and not at all for d <= 0.
func (p *pacer) hold(key string, d time.Duration) {
	if d <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.gate(key)
	if until := p.now().Add(min(d, maxHold)); until.After(g.until) {
		g.until = until
	}
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
