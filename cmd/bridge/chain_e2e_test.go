package main

import (
	"strings"
	"testing"

	"bridge/sinks/jira/jirafake"
)

// TestChainE2E runs the example config's agent-errors-to-jira rule (a Jira
// ticket, then a Slack message that runs after it and links it) through
// `bridge serve` while Jira misbehaves. While the ticket retries, the Slack
// delivery waits (`bridge deliveries` says so) and nothing is posted; when
// Jira refuses the ticket, the Slack delivery fails without being sent,
// naming the ticket action and Jira's error; `bridge replay` of the ticket
// creates it and releases the Slack message, which carries the ticket's
// link.
func TestChainE2E(t *testing.T) {
	jiraSrv, slackSrv, addr, _, cfg := exampleStandIns(t)
	startBridge(t, cfg, addr)
	slackOf := func(event string) delivery {
		t.Helper()
		for _, d := range listDeliveries(t, cfg) {
			if d.EventID == event && d.Sink == "secops-slack" {
				return d
			}
		}
		t.Fatalf("no Slack delivery of %s", event)
		return delivery{}
	}

	// Jira is busy for a while: the ticket retries, the message waits.
	jiraSrv.FailNext(jirafake.RouteCreate, 2, jirafake.Failure{Status: 503, RetryAfter: "1"})
	postLifecycle(t, addr, "secureagentics", "agent.error.json", "chain-busy", nil)
	eventually(t, "the ticket's first attempt", func() bool { return jiraSrv.Count(jirafake.RouteCreate) >= 1 })
	if d := slackOf("chain-busy"); d.Status != "pending" || d.Attempts != 0 {
		t.Fatalf("the Slack delivery while the ticket retries: %+v", d)
	}
	out, _, code := runCLI(t, "deliveries", "-c", cfg, "--sink", "secops-slack")
	if code != 0 || !strings.Contains(out, "pending (waits for ticket)") {
		t.Errorf("bridge deliveries while the ticket retries (exit %d):\n%s", code, out)
	}
	ticket := waitDelivery(t, cfg, "ops-jira", "chain-busy")
	wantDelivered(t, ticket)
	msg := waitDelivery(t, cfg, "secops-slack", "chain-busy")
	wantDelivered(t, msg)
	if ms := slackSrv.Messages(); len(ms) != 1 || !strings.Contains(ms[0].Text, "<"+jiraSrv.URL+"/browse/"+ticket.Result+"|"+ticket.Result+">") {
		t.Fatalf("Slack messages once the ticket is delivered: %+v", ms)
	}

	// Jira refuses the next ticket: its message fails, unsent, saying why.
	const refusal = `{"errorMessages":[],"errors":{"project":"project is archived"}}`
	jiraSrv.FailNext(jirafake.RouteCreate, 1, jirafake.Failure{Status: 400, Body: refusal})
	postLifecycle(t, addr, "secureagentics", "agent.error.json", "chain-refused", func(m map[string]any) {
		setData("agent_id", "agt_other")(m)
	})
	ticket = waitDelivery(t, cfg, "ops-jira", "chain-refused")
	if ticket.Status != "failed" {
		t.Fatalf("the refused ticket: %+v", ticket)
	}
	msg = waitDelivery(t, cfg, "secops-slack", "chain-refused")
	if msg.Status != "failed" || msg.Attempts != 0 || !strings.Contains(msg.LastError, `runs after action "ticket" (delivery `+ticket.ID.String()+`)`) ||
		!strings.Contains(msg.LastError, "project is archived") {
		t.Fatalf("the message of the refused ticket: %+v", msg)
	}
	if n := len(slackSrv.Messages()); n != 1 {
		t.Fatalf("%d Slack messages after the refusal, want still 1", n)
	}

	// Replaying the message alone changes nothing while the ticket is failed.
	if _, stderr, code := runCLI(t, "replay", "-c", cfg, msg.ID.String()); code != 1 || !strings.Contains(stderr, "runs after an action still failed") {
		t.Errorf("replay of the message alone: exit %d, %s", code, stderr)
	}
	// Replaying the ticket sends it, then the message.
	out, stderr, code := runCLI(t, "replay", "-c", cfg, ticket.ID.String())
	if code != 0 || !strings.Contains(out, "replayed 2 deliveries") {
		t.Fatalf("replay of the ticket: exit %d, %s%s", code, out, stderr)
	}
	eventually(t, "the replayed ticket and its message", func() bool {
		return slackOf("chain-refused").Status == "delivered"
	})
	ticket = waitDelivery(t, cfg, "ops-jira", "chain-refused")
	wantDelivered(t, ticket)
	ms := slackSrv.Messages()
	if len(ms) != 2 || !strings.Contains(ms[1].Text, "<"+jiraSrv.URL+"/browse/"+ticket.Result+"|"+ticket.Result+">") ||
		!strings.Contains(ms[1].Text, "agt_other") {
		t.Fatalf("Slack messages after the replay: %+v", ms)
	}
}
