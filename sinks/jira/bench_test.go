package jira

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/sinks/jira/jirafake"
)

// TestRequestsPerEvent counts the Jira requests one event costs once the
// sink has told Cloud from Data Center (one serverInfo per sink instance).
func TestRequestsPerEvent(t *testing.T) {
	for _, fl := range []jirafake.Flavor{jirafake.Cloud, jirafake.DataCenter} {
		name := map[jirafake.Flavor]string{jirafake.Cloud: "cloud", jirafake.DataCenter: "datacenter"}[fl]
		search := map[jirafake.Flavor]string{jirafake.Cloud: jirafake.RouteSearchJQL, jirafake.DataCenter: jirafake.RouteSearch}[fl]
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, jirafake.Options{Flavor: fl})
			s := h.sink()
			send(t, s, delivery(t, 1, event("warm-up"), map[string]any{"summary": "s"}))
			for i, tc := range []struct {
				name   string
				action map[string]any
				subj   string
				want   map[string]int
			}{
				{"new key", map[string]any{"summary": "s"}, "new", map[string]int{search: 1, jirafake.RouteCreate: 1}},
				{"repeat, comment", map[string]any{"summary": "s"}, "new", map[string]int{jirafake.RouteGetIssue: 1, jirafake.RouteComment: 1}},
				{"repeat, skip", map[string]any{"summary": "s", "on_duplicate": "skip"}, "new", map[string]int{jirafake.RouteGetIssue: 1}},
				{"resolve", map[string]any{"resolve": true, "dedupe": "agility:analysis_done:new"}, "new",
					map[string]int{jirafake.RouteGetIssue: 1, jirafake.RouteTransitions: 1, jirafake.RouteDoTransition: 1}},
				{"resolve, nothing open", map[string]any{"resolve": true, "dedupe": "agility:analysis_done:new"}, "new", map[string]int{jirafake.RouteGetIssue: 1}},
				{"repeat, reopen", map[string]any{"summary": "s", "reopen_within": "1h"}, "new",
					map[string]int{jirafake.RouteGetIssue: 1, jirafake.RouteTransitions: 1, jirafake.RouteDoTransition: 1, jirafake.RouteComment: 1}},
				{"dedupe off", map[string]any{"summary": "s", "dedupe": ""}, "off", map[string]int{jirafake.RouteCreate: 1}},
			} {
				h.srv.ResetCounts()
				send(t, s, delivery(t, int64(2+i), event(tc.subj), tc.action))
				got := h.srv.Counts()
				t.Logf("%s: %d requests %v", tc.name, h.srv.Total(), got)
				jsonEqual(t, got, tc.want)
			}
		})
	}
}

// BenchmarkSend measures tickets per second against the stand-in at
// concurrency 8: every event a new key (search and create), or a repeat of
// one of 64 open keys (status check and comment).
func BenchmarkSend(b *testing.B) {
	for _, mode := range []string{"new-keys", "repeats"} {
		b.Run(mode, func(b *testing.B) {
			srv := jirafake.New(jirafake.Options{Flavor: jirafake.Cloud, User: testUser, Token: testToken, SearchLag: 2 * time.Second})
			defer srv.Close()
			cfg := DefaultConfig()
			cfg.URL, cfg.User, cfg.Token, cfg.Project = srv.URL, testUser, bridge.Secret(testToken), "OPS"
			s, err := New(cfg, bridge.SinkEnv{State: newMemState(), Timeout: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			d := func(i int64) *bridge.Delivery {
				subject := fmt.Sprintf("new-%d", i)
				if mode == "repeats" {
					subject = fmt.Sprintf("rep-%d", i%64)
				}
				ev := &bridge.Event{ID: fmt.Sprint(i), Source: "bench", Type: "t", Subject: subject}
				return &bridge.Delivery{ID: i, Event: ev, Action: []byte(`{"summary":"benchmark ticket","labels":["bench"]}`)}
			}
			if mode == "repeats" {
				for i := range int64(64) {
					if _, err := s.Send(context.Background(), d(i)); err != nil {
						b.Fatal(err)
					}
				}
			}
			srv.ResetCounts()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range 8 {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if _, err := s.Send(context.Background(), d(i+1000)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(srv.Total())/float64(b.N), "requests/event")
		})
	}
}
