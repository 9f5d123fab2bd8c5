package console

import (
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/console/browsertest"
)

// update rewrites docs/console.png from TestScreenshot.
var update = flag.Bool("update", false, "write docs/console.png")

// demoConfig is a config like the example's, for pages worth looking at.
const demoConfig = `
server:
  listen: "127.0.0.1:0"
sources:
  - name: secureagentics
    vendor: secureagentics
    secret: s
  - name: agility
    vendor: agility
    token: t
  - name: antly
    vendor: antly
    token: t
    token_header: X-Antly-Token
sinks:
  - name: ops-jira
    type: jira
    url: ` + jiraSite + `
    user: bot@example.net
    token: t
    project: OPS
  - name: secops-slack
    type: slack
    token: t
  - name: splunk
    type: splunk_hec
    url: https://splunk.example.net:8088
    token: t
  - name: archive
    type: file
    path: archive.jsonl
rules:
  - name: archive-everything
    when: 'true'
    actions:
      - sink: archive
  - name: agility-failures-to-jira
    when: vendor == "agility" && data.count_prediction_failure > 0
    actions:
      - sink: ops-jira
        summary: 'AGILITY: {{ .data.count_prediction_failure }} failed predictions in {{ .data.file_path }}'
  - name: violations-to-slack
    when: type == "policy.violated"
    actions:
      - sink: secops-slack
        channel: '#secops'
        text: ':rotating_light: {{ .title }}'
  - name: secureagentics-to-splunk
    when: vendor == "secureagentics" && severity in ["high", "critical"]
    actions:
      - sink: splunk
  - name: antly-deletes-to-slack
    when: vendor == "antly" && type endsWith ":delete"
    stop: true
    actions:
      - sink: secops-slack
        channel: '#crm-audit'
        text: 'Antly: {{ .type }} {{ .subject }}'
`

// seedDemo stores a day of traffic: every source, Jira issues, Slack
// messages, and a Slack channel that does not exist.
func seedDemo(e *env) {
	now := time.Now().UTC()
	agents := []string{"agt_abc123", "agt_7f3e21", "agt_d00d42", "agt_55c0de"}
	files := []string{"core-volte.pcap", "ims-register.pcap", "s1ap-handover.pcap", "diameter-gx.pcap"}
	for i := range 36 {
		at := now.Add(-time.Duration(36-i) * 38 * time.Minute)
		switch i % 4 {
		case 0, 2:
			typ := []string{"policy.violated", "alert.triggered", "agent.registered"}[i%3]
			e.ingest("secureagentics", secureagentics(fmt.Sprintf("evt_%04x", 0x3a00+i*7), typ,
				[]string{"Agent attempted to upload a file to an external host", "Prompt injection detected in tool output", "New agent enrolled"}[i%3],
				agents[i%len(agents)], fmt.Sprintf("alrt_%05x", 0x4fd81+i*13)), at)
		case 1:
			fails := i % 3
			e.ingest("agility", []byte(fmt.Sprintf(`{"id":"5d0c2a8e-3f71-4c1b-9a36-%012x","event_name":"analysis_done","created":%q,"data":{"analysis_id":"9e4b7c21-%04x","file_path":%q,"count_prediction_failure":%d,"count_prediction_warning":1,"final_status":"%v"}}`,
				0x8e2f4b7d1c90+i, at.Format("2006-01-02T15:04:05"), i, files[i%len(files)], fails, fails == 0)), at)
		case 3:
			typ := []string{"profile.Customer:update", "profile.Customer:create", "profile.Customer:delete"}[i%3]
			e.ingest("antly", []byte(fmt.Sprintf(`{"event":%q,"timestamp":%d,"data":{"id":"cus_%05d","email":"user%d@example.com"}}`, typ, at.Unix(), 1000+i, i)), at)
		}
	}
	for i := range 24 {
		at := now.Add(-time.Duration(i) * time.Hour)
		for range (i * 7) % 5 {
			e.stats.Add("secureagentics", bridge.OutcomeAccepted, at)
		}
		if i%6 == 2 {
			e.stats.Add("secureagentics", bridge.OutcomeUnauthorized, at)
		}
		if i%3 == 0 {
			e.stats.Add("agility", bridge.OutcomeAccepted, at)
			e.stats.Add("agility", bridge.OutcomeDuplicate, at)
		}
		if i%8 == 5 {
			e.stats.Add("antly", bridge.OutcomeInvalid, at)
		}
		if i%4 == 1 {
			e.stats.Add("antly", bridge.OutcomeAccepted, at)
		}
	}
	// Each delivery settles a little after its event arrived.
	at := func(d *bridge.DeliveryRecord) time.Time { return d.Created.Add(time.Duration(d.ID%7+1) * time.Second) }
	issue := 1200
	e.settle("ops-jira", func(d *bridge.DeliveryRecord) bridge.Outcome {
		issue++
		return bridge.Outcome{Status: bridge.StatusDelivered, Result: fmt.Sprintf("OPS-%d", issue), At: at(d)}
	})
	n := 0
	e.settle("secops-slack", func(d *bridge.DeliveryRecord) bridge.Outcome {
		n++
		if n%3 == 0 {
			return bridge.Outcome{Status: bridge.StatusFailed, Error: "slack: chat.postMessage: channel_not_found (the bot is not in #crm-audit; invite it)", At: at(d).Add(5 * time.Minute)}
		}
		return bridge.Outcome{Status: bridge.StatusDelivered, Result: fmt.Sprintf("17%08d.%06d", 33000000+n*917, n*331), At: at(d)}
	})
	e.settle("splunk", func(d *bridge.DeliveryRecord) bridge.Outcome {
		return bridge.Outcome{Status: bridge.StatusDelivered, At: at(d)}
	})
	// The archive keeps its newest few pending, as a busy sink would.
	ds := e.deliveries(bridge.DeliveryFilter{Sink: "archive", Status: bridge.StatusPending})
	keep := map[int64]bool{}
	for _, d := range ds[:min(3, len(ds))] {
		keep[d.ID] = true
	}
	e.settleSome("archive", keep, func(d *bridge.DeliveryRecord) bridge.Outcome {
		return bridge.Outcome{Status: bridge.StatusDelivered, At: at(d)}
	})
}

// TestBrowser uses every page in chromium as a person would: signs in,
// goes from the overview's failures to an event, replays its failed
// delivery, filters, tries a payload; every page is screenshotted and
// must show no console error, no failed load and no dialog. Hostile
// payloads in every field must run nothing.
func TestBrowser(t *testing.T) {
	b := browsertest.New(t)
	e := newEnvWith(t, stores[0].open(t), demoConfig)
	seedDemo(e)
	hostile := seedHostile(e)
	srv := httptest.NewServer(e.h)
	defer srv.Close()

	// A wrong password gets the 401 page, and no data.
	b.Login(testUser, "wrong")
	if got := b.Open(srv.URL + "/"); got != 401 {
		t.Fatalf("with a wrong password: %d", got)
	}
	if txt := b.Text("body"); !strings.Contains(txt, "401 Unauthorized") {
		t.Errorf("the 401 page says %q", txt)
	}
	b.Problems() // the browser logs the 401 itself

	b.Login(testUser, testPassword)
	if got := b.Open(srv.URL + "/"); got != 200 {
		t.Fatalf("overview: %d", got)
	}
	b.Screenshot("overview")
	b.NoProblems("overview")
	if n := browsertest.Eval[int](b, `document.styleSheets.length`); n != 1 {
		t.Errorf("the stylesheet did not load (%d sheets)", n)
	}
	if ok := browsertest.Eval[bool](b, `getComputedStyle(document.querySelector('header.top')).position === 'sticky'`); !ok {
		t.Error("the stylesheet is not applied")
	}
	// The script puts times in the reader's zone on hover.
	if got := browsertest.Eval[string](b, `document.querySelector('time[datetime]').getAttribute('data-utc') || ''`); !strings.HasSuffix(got, "UTC") {
		t.Errorf("console.js did not run: data-utc %q", got)
	}

	// From a failure on the overview to its event.
	if got := b.Click(`section table a.ev`); got != 200 {
		t.Fatalf("event from the overview: %d", got)
	}
	if !strings.Contains(b.Location(), "/events/") {
		t.Fatalf("the overview's failure links to %s", b.Location())
	}
	b.Screenshot("event")
	b.NoProblems("event")
	before := b.Text(`tr.row-failed td.errcell`)
	if !strings.Contains(before, "channel_not_found") && !strings.Contains(before, "refused") {
		t.Errorf("the failed delivery's error is not shown: %q", before)
	}
	// Replay it: back on the event, with a notice, the delivery pending.
	if got := b.Click(`tr.row-failed button.btn-replay`); got != 200 {
		t.Fatalf("replay: %d", got)
	}
	if txt := b.Text(".flash"); !strings.Contains(txt, "Replayed 1 delivery") {
		t.Errorf("after replay: %q", txt)
	}
	if !strings.Contains(b.Location(), "/events/") {
		t.Errorf("after the replay the browser is at %s", b.Location())
	}
	b.NoProblems("replay")

	// Events, filtered with the form.
	b.Open(srv.URL + "/events")
	b.SetValue(`select[name=source]`, "agility")
	if got := b.Click(`form.filters button`); got != 200 {
		t.Fatalf("filter: %d", got)
	}
	if loc := b.Location(); !strings.Contains(loc, "source=agility") {
		t.Errorf("filtered to %s", loc)
	}
	if n := browsertest.Eval[int](b, `document.querySelectorAll('table.events tbody tr').length`); n != 9 {
		t.Errorf("agility has %d events, want 9", n)
	}
	b.Screenshot("events")
	b.NoProblems("events")

	b.Open(srv.URL + "/deliveries?status=failed")
	b.Screenshot("deliveries")
	b.NoProblems("deliveries")
	b.Open(srv.URL + "/rules")
	b.Screenshot("rules")
	b.NoProblems("rules")

	// Try a payload.
	b.Open(srv.URL + "/try")
	b.SetValue(`select[name=source]`, "secureagentics")
	b.SetValue(`textarea[name=payload]`, string(secureagentics("evt_try", "policy.violated", "upload to paste site", "agt_1", "alrt_1")))
	if got := b.Click(`form.try button`); got != 200 {
		t.Fatalf("try: %d", got)
	}
	if txt := b.Text(`table.verdicts`); !strings.Contains(txt, "violations-to-slack") || !strings.Contains(txt, "MATCH") {
		t.Errorf("try shows %q", txt)
	}
	b.Screenshot("try")
	b.NoProblems("try")

	// Hostile events: nothing runs, nothing links to javascript:, the
	// attack shows as text.
	for i, ev := range hostile {
		for _, p := range []string{eventURL(ev.Source, ev.ID), "/events?source=secureagentics", "/deliveries?event=" + ev.ID} {
			if got := b.Open(srv.URL + p); got != 200 {
				t.Fatalf("%s: %d", p, got)
			}
			if js := browsertest.Eval[string](b, `String(window.__xss)`); js != "undefined" {
				t.Errorf("%s: an attack ran (window.__xss = %s)", p, js)
			}
			if n := browsertest.Eval[int](b, `document.querySelectorAll('script:not([src^="/static/console.js"]), [onerror], [onload], a[href^="javascript:" i], form[action^="javascript:" i]').length`); n != 0 {
				t.Errorf("%s: %d hostile elements in the DOM", p, n)
			}
			b.NoProblems(p)
		}
		if i == 0 {
			b.Open(srv.URL + eventURL(ev.Source, ev.ID))
			if txt := b.Text("h1"); !strings.Contains(txt, "<script>window.__xss=1</script>") {
				t.Errorf("the title is not shown as text: %q", txt)
			}
			b.Screenshot("hostile-event")
		}
	}
	b.Open(srv.URL + "/try")
	b.SetValue(`select[name=source]`, "secureagentics")
	b.SetValue(`textarea[name=payload]`, string(hostilePayload(4)))
	b.Click(`form.try button`)
	if js := browsertest.Eval[string](b, `String(window.__xss)`); js != "undefined" {
		t.Errorf("try: an attack ran (window.__xss = %s)", js)
	}
	b.NoProblems("hostile try")
}

// TestScreenshot takes the README's screenshot of the overview; with
// -update it writes docs/console.png:
//
//	go test ./console -run TestScreenshot -update
func TestScreenshot(t *testing.T) {
	b := browsertest.New(t)
	e := newEnvWith(t, stores[0].open(t), demoConfig)
	seedDemo(e)
	c := e.h.(*console)
	c.opt.Version, c.host = "0.1.0", "bridge-1"
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	b.Login(testUser, testPassword)
	if got := b.Open(srv.URL + "/"); got != 200 {
		t.Fatalf("overview: %d", got)
	}
	path := b.Screenshot("console")
	if *update {
		png, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "docs", "console.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("wrote docs/console.png")
	}
	b.NoProblems("overview")
}
