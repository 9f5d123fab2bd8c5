package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"bridge/bridge"
)

// chainConfig has a rule whose archive line runs after its Jira ticket.
var chainConfig = strings.Replace(testConfig, `  - name: never
`, `  - name: ticket-then-archive
    when: type == "agent.error"
    actions:
      - sink: ops-jira
        id: ticket
        summary: '{{ .title }}'
      - sink: archive
        after: ticket
  - name: never
`, 1)

// TestChainedDeliveries: the console shows a dependent waiting for the
// action it runs after; the API says why a dependent of a failed action is
// not replayed alone, and replaying the action puts both back.
func TestChainedDeliveries(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			e := newEnvWith(t, s.open(t), chainConfig)
			ev := e.ingest("secureagentics", secureagentics("evt_chain", "agent.error", "disk full", "agt_c", ""), time.Now())
			byRule := func() (ticket, line *bridge.DeliveryRecord) {
				for _, d := range e.deliveries(bridge.DeliveryFilter{EventID: ev.ID, Rule: "ticket-then-archive"}) {
					if d.Sink == "ops-jira" {
						ticket = d
					} else {
						line = d
					}
				}
				return ticket, line
			}
			ticket, line := byRule()
			if ticket == nil || line == nil || !line.Waiting() {
				t.Fatalf("deliveries: ticket %+v, line %+v", ticket, line)
			}
			_, page := e.get("/deliveries?rule=ticket-then-archive")
			mustContain(t, "deliveries page", page, "waiting for ticket")
			mustNotContain(t, "deliveries page", page, "2262")

			e.settleSome("ops-jira", nil, failed("400: project is archived"))
			ticket, line = byRule()
			if ticket.Status != bridge.StatusFailed || line.Status != bridge.StatusFailed || !strings.Contains(line.LastError, `action "ticket"`) {
				t.Fatalf("after the ticket failed: ticket %+v, line %+v", ticket, line)
			}
			res, body := e.postJSON(fmt.Sprintf("/api/v1/deliveries/%d/replay", line.ID), "{}")
			mustStatus(t, "api replay of the dependent alone", res, body, http.StatusConflict)
			mustContain(t, "409", body, `runs after action \"ticket\"`, "replay that delivery")

			res, body = e.postJSON(fmt.Sprintf("/api/v1/deliveries/%d/replay", ticket.ID), "{}")
			mustStatus(t, "api replay of the ticket", res, body, http.StatusOK)
			var out struct{ Replayed []int64 }
			json.Unmarshal([]byte(body), &out)
			if !slices.Equal(out.Replayed, []int64{ticket.ID, line.ID}) {
				t.Errorf("replayed %s, want the ticket and its line", body)
			}
			if _, line = byRule(); !line.Waiting() {
				t.Errorf("the line after the replay: %+v", line)
			}
		})
	}
}
