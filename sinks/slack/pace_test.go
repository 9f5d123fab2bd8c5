package slack

import (
	"context"
	"math"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/sinks/slack/slackfake"
)

// TestHoldIsBounded checks that a 429's hold cannot overflow the pacer's
// arithmetic into a wait that sleeps for ever, and is cut to maxHold.
func TestHoldIsBounded(t *testing.T) {
	c := &sleepClock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	p := newPacer(bridge.RateLimit{RPS: 1, Burst: 3}, c.Now, c.Sleep)
	for _, tc := range []struct {
		name string
		hold time.Duration
		want time.Duration // the RetryAfter a wait with a 2s deadline returns; 0: none
	}{
		{"the longest Duration", math.MaxInt64, maxHold},
		{"MaxRetryAfter", bridge.MaxRetryAfter, maxHold},
		{"shorter than maxHold", time.Minute, time.Minute},
		{"negative", -time.Hour, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "C-" + tc.name
			p.hold(key, tc.hold)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n := len(c.slept)
			err := p.wait(ctx, key)
			d, ok := bridge.RetryDelay(err)
			if tc.want == 0 {
				if err != nil {
					t.Fatalf("err %v, want none", err)
				}
				return
			}
			if !ok || d != tc.want || len(c.slept) != n {
				t.Fatalf("err %v, delay %s, c.slept %v; want a RetryAfter of %s at once", err, d, c.slept[n:], tc.want)
			}
		})
	}
}

// TestHugeRetryAfter checks that Slack's Retry-After, however large,
// reaches the pipeline as a bounded wait and holds the channel back for at
// most maxHold, for bot and webhook sinks.
func TestHugeRetryAfter(t *testing.T) {
	f := newFake(t, slackfake.Options{})
	for _, v := range []string{"Inf", "1e20", "99999999999"} {
		t.Run("bot "+v, func(t *testing.T) {
			s := botSink(t, f, sinkOpts{})
			f.Script("chat.postMessage", slackfake.Answer{Status: 429, Error: "ratelimited", RetryAfter: v})
			_, err := s.Send(context.Background(), delivery(t, map[string]string{"channel": "C0SECOPS", "text": "x"}))
			if d, ok := bridge.RetryDelay(err); !ok || d != bridge.MaxRetryAfter || bridge.IsPermanent(err) {
				t.Fatalf("err %v, delay %s; want a RetryAfter of %s", err, d, bridge.MaxRetryAfter)
			}
			checkHeld(t, s, map[string]string{"channel": "C0SECOPS", "text": "x"})
		})
		t.Run("webhook "+v, func(t *testing.T) {
			s := webhookSink(t, f.WebhookURL("/services/T0/B0/good"), sinkOpts{})
			f.Script("webhook", slackfake.Answer{Status: 429, Error: "rate_limited", RetryAfter: v})
			_, err := s.Send(context.Background(), delivery(t, map[string]string{"text": "x"}))
			if d, ok := bridge.RetryDelay(err); !ok || d != bridge.MaxRetryAfter || bridge.IsPermanent(err) {
				t.Fatalf("err %v, delay %s; want a RetryAfter of %s", err, d, bridge.MaxRetryAfter)
			}
			checkHeld(t, s, map[string]string{"text": "x"})
		})
	}
}

// checkHeld checks that the next send is held back, for at most maxHold,
// without reaching Slack.
func checkHeld(t *testing.T, s *Sink, fields map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.Send(ctx, delivery(t, fields))
	if d, ok := bridge.RetryDelay(err); !ok || d <= maxHold-time.Minute || d > maxHold || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("held: err %v, delay %s after %s; want a RetryAfter of about %s at once", err, d, time.Since(start), maxHold)
	}
}
