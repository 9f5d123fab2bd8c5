package console

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"bridge/bridge"
)

// xss are values an attacker puts in every field of a webhook.
var xss = []string{
	`<script>window.__xss=1</script>`,
	`"><img src=x onerror="window.__xss=2">`,
	`javascript:window.__xss=3`,
	`'><svg onload=window.__xss=4>`,
	`</textarea></pre><script>window.__xss=5</script>`,
}

// hostilePayload is a Secureagentics body with an attack in every value.
func hostilePayload(i int) []byte {
	v := xss[i%len(xss)]
	return secureagentics(fmt.Sprintf("evt_%d_%s", i, v), "policy.violated"+v, v, "agt"+v, "https://x.example/?"+v)
}

// seedHostile stores hostile events and gives their deliveries errors and
// results that repeat the attack (a sink may echo what it was sent).
func seedHostile(e *env) []*bridge.Event {
	var evs []*bridge.Event
	for i := range xss {
		evs = append(evs, e.ingest("secureagentics", hostilePayload(i), time.Now().Add(-time.Duration(i)*time.Minute)))
	}
	e.settle("ops-jira", func(d *bridge.DeliveryRecord) bridge.Outcome {
		return bridge.Outcome{Status: bridge.StatusDelivered, Result: "OPS-1" + xss[int(d.ID)%len(xss)]}
	})
	e.settle("archive", func(d *bridge.DeliveryRecord) bridge.Outcome {
		return bridge.Outcome{Status: bridge.StatusFailed, Error: "archive: refused " + xss[int(d.ID)%len(xss)]}
	})
	return evs
}

// unsafeMarkup finds what escaping must never let through: a script
// element other than the console's own, an event handler attribute, a
// javascript: URL in a link, a form or an image.
var unsafeMarkup = []*regexp.Regexp{
	regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>`),
	regexp.MustCompile(`(?i)<(?:img|svg)[^>]*\son\w+=`),
	regexp.MustCompile(`(?i)\s(?:href|src|action|formaction)\s*=\s*["']?\s*javascript:`),
	regexp.MustCompile(`(?i)<(?:textarea|pre)[^>]*>[^<]*</textarea></pre>`),
}

const ownScript = `<script src="/static/console.js?v=`

func checkEscaped(t *testing.T, what, body string) {
	t.Helper()
	rest := strings.Replace(body, ownScript, "", 1)
	for _, re := range unsafeMarkup {
		if m := re.FindString(rest); m != "" {
			t.Errorf("%s: unescaped vendor markup %q", what, m)
		}
	}
	if strings.Contains(body, "window.__xss") && !strings.Contains(body, "&lt;") && !strings.Contains(body, "&#34;") {
		t.Errorf("%s: the attack text is shown but nothing is escaped", what)
	}
}

func TestEscaping(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		evs := seedHostile(e)
		pages := []string{"/", "/events", "/deliveries", "/deliveries?status=failed", "/rules", "/try",
			"/events?text=" + url.QueryEscape(xss[0]), "/deliveries?event=" + url.QueryEscape(evs[1].ID)}
		for _, ev := range evs {
			pages = append(pages, eventURL(ev.Source, ev.ID))
		}
		for _, p := range pages {
			res, body := e.get(p)
			if res.StatusCode != 200 {
				t.Errorf("%s: %d", p, res.StatusCode)
				continue
			}
			checkEscaped(t, p, body)
		}
		// The event pages show the attack as text.
		_, body := e.get(eventURL(evs[0].Source, evs[0].ID))
		mustContain(t, "event page", body, "&lt;script&gt;window.__xss=1&lt;/script&gt;")
		// A result that is not a Jira key is shown, never linked.
		mustNotContain(t, "event page", body, "/browse/OPS-1")
		// Try with the same payloads.
		for i := range xss {
			res, body := e.postForm("/try", url.Values{"source": {"secureagentics"}, "payload": {string(hostilePayload(i))}})
			if res.StatusCode != 200 {
				t.Fatalf("try %d: %d", i, res.StatusCode)
			}
			checkEscaped(t, fmt.Sprintf("try %d", i), body)
			// The payload goes back into the textarea, escaped.
			mustNotContain(t, "try", body, "</textarea></pre><script>")
		}
		// Filters echo the query into the form, escaped.
		res, body := e.get("/events?type=" + url.QueryEscape(xss[1]) + "&text=" + url.QueryEscape(xss[4]))
		if res.StatusCode != 200 {
			t.Fatalf("filters: %d", res.StatusCode)
		}
		checkEscaped(t, "filters", body)
	})
}
