package main

import (
	"os"
	"testing"
	"time"

	"bridge/sinks/jira"
	"bridge/sinks/jira/jirafake"
)

// TestJiraCrashAfterRememberE2E kills `bridge serve` with SIGKILL (through
// the BRIDGE_TEST_FAULT seam) after the jira sink remembered the issue it
// opened and before the pipeline recorded the delivery. After the restart
// the delivery is sent again: it reports its issue without commenting on
// it, and a later event of the same dedupe key still comments.
func TestJiraCrashAfterRememberE2E(t *testing.T) {
	// Search never shows the issue: only the remembered key can find it.
	fake := jirafake.New(jirafake.Options{Flavor: jirafake.Cloud, User: jiraUser, Token: jiraToken, SearchLag: time.Hour})
	defer fake.Close()
	addr := freePort(t)
	cfg := writeSinkConfig(t, addr, "", jiraSink(fake.URL, jiraUser), jiraRule(""))

	t.Setenv(faultEnv, jira.FaultAfterRemember) // for this one bridge only
	p := startBridge(t, cfg, addr)
	os.Unsetenv(faultEnv)
	mustPost(t, addr, example(t, "ag", "analysis_failed.json", "crash-1", nil))
	wantFaultKill(t, p, jira.FaultAfterRemember)
	issues := fake.Issues()
	if len(issues) != 1 {
		t.Fatalf("%d issues before the restart, want 1: %+v", len(issues), issues)
	}
	key := issues[0].Key
	// The kill came before the outcome was recorded.
	if ds := listDeliveries(t, cfg); len(ds) != 1 || ds[0].Sink != "ops-jira" || ds[0].Status != "pending" {
		t.Fatalf("deliveries after the kill: %+v, want one pending", ds)
	}

	startBridge(t, cfg, addr)
	d := waitDelivery(t, cfg, "ops-jira", "crash-1")
	wantDelivered(t, d)
	if d.Result != key {
		t.Errorf("redelivery result %q, want the issue key %q", d.Result, key)
	}
	issues = fake.Issues()
	if len(issues) != 1 || len(issues[0].Comments) != 0 {
		t.Fatalf("after the redelivery: issues %+v, want one without comments", issues)
	}
	if n := fake.Count(jirafake.RouteCreate); n != 1 {
		t.Errorf("%d creates sent, want 1", n)
	}

	// Another event of the dedupe key is a repeat as usual.
	mustPost(t, addr, example(t, "ag", "analysis_failed.json", "crash-2", nil))
	d = waitDelivery(t, cfg, "ops-jira", "crash-2")
	wantDelivered(t, d)
	if got, _ := fake.Issue(key); d.Result != key || len(got.Comments) != 1 {
		t.Fatalf("repeat: result %q, %d comments; want %q with 1", d.Result, len(got.Comments), key)
	}
}
