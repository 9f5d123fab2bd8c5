package jira

import (
	"context"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/sinks/jira/jirafake"
)

// TestOddRetryAfter checks that Jira's Retry-After reaches the pipeline
// as a wait that is never negative and never past bridge.MaxRetryAfter,
// whatever the header says; an invalid one is no wait (the backoff applies).
func TestOddRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"Inf", bridge.MaxRetryAfter, true},
		{"1e20", bridge.MaxRetryAfter, true},
		{"99999999999", bridge.MaxRetryAfter, true},
		{"0", 0, true},
		{"Mon, 01 Jan 2001 00:00:00 GMT", 0, true},
		{"-5", 0, false},
		{"NaN", 0, false},
	} {
		t.Run(tc.value, func(t *testing.T) {
			h := newHarness(t, jirafake.Options{Flavor: jirafake.Cloud})
			s := h.sink()
			h.srv.FailNext(jirafake.RouteCreate, 1, jirafake.Failure{Status: 429, RetryAfter: tc.value,
				Body: `{"errorMessages":["Rate limit exceeded."],"errors":{}}`})
			d := delivery(t, 1, event("r"), map[string]any{"summary": "s"})
			_, err := s.Send(context.Background(), d)
			wait, ok := bridge.RetryDelay(err)
			if err == nil || bridge.IsPermanent(err) || wait != tc.want || ok != tc.ok {
				t.Fatalf("err %v: wait %s, %v; want %s, %v", err, wait, ok, tc.want, tc.ok)
			}
			send(t, s, d)
		})
	}
}
