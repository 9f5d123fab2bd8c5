package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"bridge/sinks/jira/jirafake"
)

// TestReloadJiraUnderLoad changes the Jira sink's settings every 100 ms
// while repeats of a few dedupe keys stream in: each reload builds a new
// sink while the old one is still sending, and still every key gets one
// ticket and every other event of it a comment.
func TestReloadJiraUnderLoad(t *testing.T) {
	// Search never shows a new issue, and each answer takes 40 ms, so
	// sends overlap the reloads and only the bridge's own memory and
	// per-key locks prevent a second ticket.
	fake := jirafake.New(jirafake.Options{Flavor: jirafake.Cloud, User: jiraUser, Token: jiraToken,
		SearchLag: time.Hour, Latency: 40 * time.Millisecond})
	defer fake.Close()
	addr := freePort(t)
	sinkText := func(i int) string {
		// The timeout is part of the sink's settings: a new value builds a
		// new sink.
		return jiraSink(fake.URL, jiraUser) + fmt.Sprintf("    concurrency: 4\n    timeout: %dms\n", 10000+i)
	}
	cfg := writeSinkConfig(t, addr, "", sinkText(0), jiraRule(""))
	p := startBridge(t, cfg, addr)

	const keys, perKey = 12, 8
	var payloads []payload
	for n := range perKey {
		for k := range keys {
			payloads = append(payloads, example(t, "ag", "analysis_failed.json", fmt.Sprintf("reload-%d-%d", k, n),
				setData("analysis_id", fmt.Sprintf("analysis-%d", k))))
		}
	}

	stop := make(chan struct{})
	var reloads sync.WaitGroup
	stopReloads := sync.OnceFunc(func() { close(stop); reloads.Wait() })
	defer stopReloads() // also when the test fails early
	reloads.Go(func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			// Replaced whole, as editors save, so that `bridge deliveries`
			// never reads it half-written.
			next := cfg + ".new"
			if err := os.WriteFile(next, []byte(sinkConfigText(addr, "", sinkText(i), jiraRule(""))), 0o600); err != nil {
				t.Errorf("rewrite the config: %v", err)
				return
			}
			if err := os.Rename(next, cfg); err != nil {
				t.Errorf("rewrite the config: %v", err)
				return
			}
			p.cmd.Process.Signal(syscall.SIGHUP)
		}
	})
	client := &http.Client{Timeout: 5 * time.Second}
	for _, pl := range payloads {
		if status, ans, err := post(client, addr, pl); err != nil || status != 200 || ans["status"] != "accepted" {
			t.Fatalf("post %s: %d %v %v", pl.id, status, ans, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	// Keep reloading while the backlog drains.
	eventually(t, "every delivery to finish", func() bool {
		done := 0
		for _, d := range listDeliveries(t, cfg) {
			if d.Status != "pending" {
				done++
			}
		}
		return done == len(payloads)
	})
	stopReloads()
	if n := strings.Count(p.logs.String(), "config reloaded"); n < 10 {
		t.Fatalf("only %d reloads happened during the run", n)
	}

	for _, d := range listDeliveries(t, cfg) {
		wantDelivered(t, d)
	}
	issues := fake.Issues()
	comments := 0
	for _, is := range issues {
		comments += len(is.Comments)
	}
	if len(issues) != keys || comments != keys*(perKey-1) {
		t.Errorf("%d issues and %d comments for %d keys of %d events each; want %d issues and %d comments",
			len(issues), comments, keys, perKey, keys, keys*(perKey-1))
	}
}
