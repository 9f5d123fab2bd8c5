package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"bridge/bridge"
)

// routes is every page and API route, with a request that reaches it.
func routes(e *env, ev *bridge.Event, failedID int64) []req {
	one := eventURL(ev.Source, ev.ID)
	return []req{
		{path: "/"},
		{path: "/events"},
		{path: one},
		{path: "/deliveries"},
		{path: "/try"},
		{path: "/rules"},
		{path: "/static/style.css"},
		{method: "POST", path: fmt.Sprintf("/deliveries/%d/replay", failedID), body: "csrf=" + e.csrf(testUser)},
		{method: "POST", path: "/deliveries/replay", body: "csrf=" + e.csrf(testUser)},
		{method: "POST", path: "/try", body: "csrf=" + e.csrf(testUser) + "&source=secureagentics&payload=%7B%7D"},
		{path: "/api/v1/events"},
		{path: "/api/v1" + one},
		{path: "/api/v1/deliveries"},
		{method: "POST", path: fmt.Sprintf("/api/v1/deliveries/%d/replay", failedID), body: "{}"},
		{method: "POST", path: "/api/v1/try", body: `{"source":"secureagentics","payload":{}}`},
	}
}

func withHeaders(r req) req {
	if r.method == "POST" {
		ct := "application/x-www-form-urlencoded"
		if strings.HasPrefix(r.path, "/api/") {
			ct = "application/json"
		}
		r.header = http.Header{"Content-Type": {ct}}
	}
	return r
}

func TestAuthRequired(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ev, _ := e.seed()
		failedID := e.deliveries(bridge.DeliveryFilter{Status: bridge.StatusFailed})[0].ID
		for _, r := range routes(e, ev, failedID) {
			r = withHeaders(r)
			for _, c := range []struct{ name, user, pass string }{
				{"no credentials", "", ""},
				{"wrong password", testUser, "wrong"},
				{"other user's password", testUser, otherPass},
				{"unknown user", "mallory", testPassword},
				{"empty password", testUser, ""},
			} {
				t.Run(r.method+" "+r.path+"/"+c.name, func(t *testing.T) {
					r := r
					r.user, r.pass = c.user, c.pass
					if c.user == "" && c.name != "no credentials" {
						r.user = " "
					}
					res, body := e.do(r)
					mustStatus(t, "unauthenticated", res, body, http.StatusUnauthorized)
					if got := res.Header.Get("WWW-Authenticate"); got != `Basic realm="bridge console", charset="UTF-8"` {
						t.Errorf("WWW-Authenticate = %q", got)
					}
					if strings.Contains(body, "evt_seed1") || strings.Contains(body, "archive") {
						t.Errorf("a 401 shows data: %q", body)
					}
				})
			}
		}
		// Failed deliveries were not replayed by any refused request.
		if n := len(e.deliveries(bridge.DeliveryFilter{Status: bridge.StatusFailed})); n != 2 {
			t.Errorf("failed deliveries after refused requests: %d, want 2", n)
		}
		t.Run("the right password", func(t *testing.T) {
			for _, r := range routes(e, ev, failedID) {
				r = withHeaders(r)
				r.user, r.pass = testUser, testPassword
				if res, body := e.do(r); res.StatusCode == http.StatusUnauthorized || res.StatusCode >= 500 {
					t.Errorf("%s %s: status %d: %s", r.method, r.path, res.StatusCode, cutBody(body))
				}
			}
		})
	})
}

func TestAuthCache(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	a := e.h.(*console).auth
	r := basicRequest(testUser, testPassword)
	if _, ok := a.check(r); !ok {
		t.Fatal("the right password is refused")
	}
	if len(a.cache) != 1 {
		t.Fatalf("cache has %d entries after a success, want 1", len(a.cache))
	}
	for k := range a.cache {
		if strings.Contains(string(k[:]), testPassword) {
			t.Fatal("the cache key holds the password")
		}
	}
	if _, ok := a.check(basicRequest(testUser, "wrong")); ok {
		t.Fatal("a wrong password is taken")
	}
	if len(a.cache) != 1 {
		t.Fatalf("a failure was cached")
	}
	// An expired entry is checked again (and is still right).
	a.now = func() time.Time { return time.Now().Add(2 * authCacheTTL) }
	if _, ok := a.check(r); !ok {
		t.Fatal("the right password is refused after the cache expired")
	}
}

func basicRequest(user, pass string) *http.Request {
	r, _ := http.NewRequest("GET", "http://127.0.0.1/", nil)
	r.SetBasicAuth(user, pass)
	return r
}

func TestNoUsersLoopbackOnly(t *testing.T) {
	st := stores[0].open(t)
	e := newEnv(t, st)
	h, err := New(Options{Store: st, Runtime: func() *bridge.Runtime { return e.rt }})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]int{"127.0.0.1:8081": 200, "localhost:8081": 200, "[::1]:8081": 200, "evil.example:8081": http.StatusMisdirectedRequest} {
		r, _ := http.NewRequest("GET", "http://"+host+"/events", nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != want {
			t.Errorf("Host %s: status %d, want %d", host, rec.Code, want)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	ev, _ := e.seed()
	const csp = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	check := func(what string, res *http.Response, static bool) {
		t.Helper()
		h := res.Header
		if got := h.Get("Content-Security-Policy"); got != csp {
			t.Errorf("%s: CSP %q", what, got)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", what, h)
		}
		if cc := h.Get("Cache-Control"); !static && cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
		}
	}
	for _, r := range routes(e, ev, 1) {
		r = withHeaders(r)
		r.user, r.pass = testUser, testPassword
		res, _ := e.do(r)
		check(r.method+" "+r.path, res, strings.HasPrefix(r.path, "/static/"))
		r.user = ""
		res, _ = e.do(r)
		check("401 "+r.path, res, false)
	}
	res, _ := e.get("/no/such/page")
	mustStatus(t, "404", res, "", http.StatusNotFound)
	check("404", res, false)
	res, body := e.get("/static/console.js")
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("console.js Content-Type %q", ct)
	}
	mustContain(t, "console.js", body, "use strict")
}

func TestCSRF(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.seed()
		failedIDs := func() []int64 {
			var ids []int64
			for _, d := range e.deliveries(bridge.DeliveryFilter{Status: bridge.StatusFailed}) {
				ids = append(ids, d.ID)
			}
			return ids
		}
		ids := failedIDs()
		if len(ids) != 2 {
			t.Fatalf("seeded %d failed deliveries, want 2", len(ids))
		}
		form := "application/x-www-form-urlencoded"
		posts := []struct{ path, body string }{
			{fmt.Sprintf("/deliveries/%d/replay", ids[0]), ""},
			{"/deliveries/replay", fmt.Sprintf("id=%d&id=%d", ids[0], ids[1])},
			{"/try", "source=secureagentics&payload=%7B%7D"},
		}
		for _, p := range posts {
			for _, c := range []struct {
				name   string
				token  string
				header http.Header
			}{
				{"no token", "", nil},
				{"a wrong token", "csrf=AAAA", nil},
				{"another user's token", "csrf=" + e.csrf(otherUser), nil},
				{"a cross-site request with the token", "csrf=" + e.csrf(testUser), http.Header{"Sec-Fetch-Site": {"cross-site"}}},
				{"another origin with the token", "csrf=" + e.csrf(testUser), http.Header{"Origin": {"https://evil.example"}}},
			} {
				t.Run(p.path+"/"+c.name, func(t *testing.T) {
					body := strings.Trim(c.token+"&"+p.body, "&")
					h := http.Header{"Content-Type": {form}}
					for k, v := range c.header {
						h[k] = v
					}
					res, page := e.do(req{method: "POST", path: p.path, body: body, header: h, user: testUser, pass: testPassword})
					mustStatus(t, c.name, res, page, http.StatusForbidden)
				})
			}
		}
		for _, p := range []struct{ path, body string }{
			{fmt.Sprintf("/api/v1/deliveries/%d/replay", ids[0]), "{}"},
			{"/api/v1/try", `{"source":"secureagentics","payload":{}}`},
		} {
			for _, c := range []struct {
				name   string
				header http.Header
				want   int
			}{
				{"no content type", http.Header{}, http.StatusUnsupportedMediaType},
				{"a form", http.Header{"Content-Type": {form}}, http.StatusUnsupportedMediaType},
				{"text/plain", http.Header{"Content-Type": {"text/plain"}}, http.StatusUnsupportedMediaType},
				{"cross-site JSON", http.Header{"Content-Type": {"application/json"}, "Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
			} {
				t.Run(p.path+"/"+c.name, func(t *testing.T) {
					res, body := e.do(req{method: "POST", path: p.path, body: p.body, header: c.header, user: testUser, pass: testPassword})
					mustStatus(t, c.name, res, body, c.want)
				})
			}
		}
		if got := failedIDs(); len(got) != 2 {
			t.Fatalf("a refused POST replayed: failed now %v", got)
		}
		// The same requests with the token (or JSON), from the same origin, go through.
		res, body := e.do(req{method: "POST", path: posts[0].path, body: "csrf=" + url.QueryEscape(e.csrf(testUser)) + "&back=%2Fdeliveries",
			header: http.Header{"Content-Type": {form}, "Sec-Fetch-Site": {"same-origin"}, "Origin": {"http://127.0.0.1:8081"}}, user: testUser, pass: testPassword})
		mustStatus(t, "with the token", res, body, http.StatusSeeOther)
		if got := failedIDs(); len(got) != 1 {
			t.Fatalf("failed after a replay with the token: %v", got)
		}
	})
}

func TestEventsList(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		now := time.Now().UTC()
		e.ingest("secureagentics", secureagentics("evt_a", "policy.violated", "first upload", "agt_1", "alrt_a"), now.Add(-3*time.Minute))
		e.ingest("secureagentics", secureagentics("evt_b", "agent.registered", "new agent", "agt_2", "alrt_b"), now.Add(-2*time.Minute))
		e.ingest("agility", []byte(`{"id":"ana-9","event_name":"analysis_done","data":{"file_path":"capture_UPLOAD.pcap","count_prediction_failure":0}}`), now.Add(-time.Minute))

		ids := func(path string) []string {
			t.Helper()
			var out struct {
				Events []struct{ ID string } `json:"events"`
			}
			res := e.getJSON(path, &out)
			if res.StatusCode != 200 {
				t.Fatalf("GET %s: %d", path, res.StatusCode)
			}
			var got []string
			for _, ev := range out.Events {
				got = append(got, ev.ID)
			}
			return got
		}
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"", []string{"ana-9", "evt_b", "evt_a"}},
			{"source=secureagentics", []string{"evt_b", "evt_a"}},
			{"source=agility", []string{"ana-9"}},
			{"type=policy.violated", []string{"evt_a"}},
			{"severity=info", []string{"evt_b"}},
			{"text=upload", []string{"ana-9", "evt_a"}}, // title or subject, case-insensitive
			{"text=alrt_b", []string{"evt_b"}},
			{"text=100%25", nil}, // LIKE's wildcards are literal
			{"source=secureagentics&type=agent.registered", []string{"evt_b"}},
			{"limit=1", []string{"ana-9"}},
		} {
			t.Run(c.query, func(t *testing.T) {
				if got := ids("/api/v1/events?" + c.query); strings.Join(got, ",") != strings.Join(c.want, ",") {
					t.Errorf("API: %v, want %v", got, c.want)
				}
				res, body := e.get("/events?" + c.query)
				mustStatus(t, "page", res, body, 200)
				got := regexp.MustCompile(`<div class="sub mono">([^<]*)</div>`).FindAllStringSubmatch(body, -1)
				var page []string
				for _, m := range got {
					page = append(page, m[1])
				}
				if strings.Join(page, ",") != strings.Join(c.want, ",") {
					t.Errorf("page: %v, want %v", page, c.want)
				}
			})
		}
		for _, bad := range []string{"severity=urgent", "limit=0", "limit=501", "limit=x", "cursor=nonsense", "cursor=" + encodeCursor(deliveryCursor, 5)} {
			t.Run("bad "+bad, func(t *testing.T) {
				res, body := e.get("/api/v1/events?" + bad)
				mustStatus(t, "API", res, body, http.StatusBadRequest)
				if !strings.Contains(body, `"error"`) {
					t.Errorf("no error in %s", body)
				}
				res, body = e.get("/events?" + bad)
				mustStatus(t, "page", res, body, http.StatusBadRequest)
				mustContain(t, "page", body, `class="problem"`)
			})
		}
	})
}

func TestPagination(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		start := time.Now().UTC().Add(-time.Hour)
		const n = 123
		for i := range n {
			e.ingest("secureagentics", secureagentics(fmt.Sprintf("evt_%03d", i), "agent.registered", "agent", "agt", fmt.Sprintf("a%d", i)), start.Add(time.Duration(i)*time.Second))
		}
		t.Run("api events", func(t *testing.T) {
			var seen []string
			cursor := ""
			for page := 0; ; page++ {
				var out struct {
					Events     []bridge.Event `json:"events"`
					NextCursor string         `json:"next_cursor"`
				}
				e.getJSON("/api/v1/events?limit=50&cursor="+url.QueryEscape(cursor), &out)
				for _, ev := range out.Events {
					seen = append(seen, ev.ID)
				}
				if out.NextCursor == "" {
					if len(out.Events) != n%50 {
						t.Errorf("last page has %d events, want %d", len(out.Events), n%50)
					}
					break
				}
				if len(out.Events) != 50 {
					t.Fatalf("page %d has %d events", page, len(out.Events))
				}
				cursor = out.NextCursor
			}
			if len(seen) != n {
				t.Fatalf("saw %d events, want %d", len(seen), n)
			}
			for i, id := range seen {
				if want := fmt.Sprintf("evt_%03d", n-1-i); id != want {
					t.Fatalf("event %d is %s, want %s (newest first, each once)", i, id, want)
				}
			}
		})
		t.Run("pages events", func(t *testing.T) {
			path := "/events?source=secureagentics"
			pages := 0
			count := 0
			for path != "" {
				res, body := e.get(path)
				mustStatus(t, path, res, body, 200)
				count += strings.Count(body, `<div class="sub mono">evt_`)
				pages++
				m := regexp.MustCompile(`<a class="older" href="([^"]+)"`).FindStringSubmatch(body)
				if pages > 1 {
					mustContain(t, path, body, "← Newest")
				}
				path = ""
				if m != nil {
					path = strings.ReplaceAll(m[1], "&amp;", "&")
					if !strings.Contains(path, "source=secureagentics") {
						t.Fatalf("the next page drops the filter: %s", path)
					}
				}
			}
			if pages != 3 || count != n {
				t.Errorf("%d pages, %d events; want 3 pages, %d events", pages, count, n)
			}
		})
		t.Run("api deliveries", func(t *testing.T) {
			var all []int64
			cursor := ""
			for {
				var out struct {
					Deliveries []bridge.DeliveryRecord `json:"deliveries"`
					NextCursor string                  `json:"next_cursor"`
				}
				e.getJSON("/api/v1/deliveries?sink=archive&limit=40&cursor="+url.QueryEscape(cursor), &out)
				for _, d := range out.Deliveries {
					if len(all) > 0 && d.ID >= all[len(all)-1] {
						t.Fatalf("delivery %d after %d: not newest first", d.ID, all[len(all)-1])
					}
					all = append(all, d.ID)
				}
				if out.NextCursor == "" {
					break
				}
				cursor = out.NextCursor
			}
			if len(all) != n {
				t.Errorf("%d deliveries, want %d", len(all), n)
			}
		})
		t.Run("pages deliveries", func(t *testing.T) {
			res, body := e.get("/deliveries?sink=archive&limit=100")
			mustStatus(t, "page 1", res, body, 200)
			m := regexp.MustCompile(`<a class="older" href="([^"]+)"`).FindStringSubmatch(body)
			if m == nil {
				t.Fatal("no Older link")
			}
			res, body = e.get(strings.ReplaceAll(m[1], "&amp;", "&"))
			mustStatus(t, "page 2", res, body, 200)
			if got := strings.Count(body, `<tr class="row-pending"`); got != n-100 {
				t.Errorf("page 2 has %d rows, want %d", got, n-100)
			}
			mustNotContain(t, "last page", body, `class="older"`)
		})
	})
}

func TestEventPage(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ev, _ := e.seed()
		res, body := e.get(eventURL(ev.Source, ev.ID))
		mustStatus(t, "event", res, body, 200)
		mustContain(t, "event", body,
			ev.ID, "policy.violated", "alrt_1", ev.Title,
			`<span class="sev sev-high">high</span>`,
			`href="https://jira.example.net/browse/OPS-42"`, // the Jira key links to the issue
			"violations-to-jira", "archive-everything",
			`<span class="st st-failed">failed</span>`, "permission denied",
			`action="/deliveries/`,                       // a replay button on the failed one
			`<span class="jk">&#34;agent_id&#34;</span>`, // the raw body, pretty and highlighted
		)
		res, body = e.get("/events/secureagentics/no-such-event")
		mustStatus(t, "unknown event", res, body, http.StatusNotFound)

		var one struct {
			Event      bridge.Event               `json:"event"`
			Raw        map[string]any             `json:"raw"`
			Deliveries []bridge.DeliveryRecord    `json:"deliveries"`
			Extra      map[string]json.RawMessage `json:"-"`
		}
		res = e.getJSON("/api/v1"+eventURL(ev.Source, ev.ID), &one)
		mustStatus(t, "api event", res, "", 200)
		if one.Event.ID != ev.ID || one.Raw["id"] != ev.ID || len(one.Deliveries) != 2 {
			t.Errorf("api event: %+v", one)
		}
		res, body = e.get("/api/v1/events/secureagentics/no-such-event")
		mustStatus(t, "api unknown event", res, body, http.StatusNotFound)
	})
}

func TestJiraLinks(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	link := e.h.(*console).issueLinks()
	for _, c := range []struct{ sink, result, want string }{
		{"ops-jira", "OPS-42", jiraSite + "/browse/OPS-42"},
		{"ops-jira", "AB_1-7", jiraSite + "/browse/AB_1-7"},
		{"ops-jira", "ops-42", ""},
		{"ops-jira", "OPS-42\"><script>", ""},
		{"ops-jira", "javascript:alert(1)", ""},
		{"ops-jira", "dry-run", ""},
		{"archive", "OPS-42", ""}, // not a jira sink
	} {
		if got := link(c.sink, c.result); got != c.want {
			t.Errorf("link(%s, %q) = %q, want %q", c.sink, c.result, got, c.want)
		}
	}
}

func TestDeliveriesList(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ev, an := e.seed()
		count := func(q string) int {
			var out struct {
				Deliveries []bridge.DeliveryRecord `json:"deliveries"`
			}
			e.getJSON("/api/v1/deliveries?"+q, &out)
			return len(out.Deliveries)
		}
		for q, want := range map[string]int{
			"":                                   3,
			"status=failed":                      2,
			"status=delivered":                   1,
			"status=pending":                     0,
			"sink=ops-jira":                      1,
			"rule=archive-everything":            2,
			"event=" + ev.ID:                     2,
			"event=" + an.ID + "&source=agility": 1,
			"event=" + an.ID + "&source=secureagentics": 0,
		} {
			if got := count(q); got != want {
				t.Errorf("deliveries?%s: %d, want %d", q, got, want)
			}
		}
		res, body := e.get("/deliveries?status=failed")
		mustStatus(t, "page", res, body, 200)
		mustContain(t, "failed page", body, "Replay the 2 failed deliveries shown", "permission denied", `name="id"`)
		mustNotContain(t, "failed page", body, "OPS-42")
		res, body = e.get("/deliveries?status=lost")
		mustStatus(t, "bad status", res, body, http.StatusBadRequest)
		res, body = e.get("/api/v1/deliveries?status=lost")
		mustStatus(t, "bad status api", res, body, http.StatusBadRequest)
	})
}

func TestReplay(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.seed()
		fails := e.deliveries(bridge.DeliveryFilter{Status: bridge.StatusFailed})
		jiraOne := e.deliveries(bridge.DeliveryFilter{Status: bridge.StatusDelivered})[0]

		// One, from a page: back to the page, with what happened.
		res, body := e.postForm(fmt.Sprintf("/deliveries/%d/replay", fails[0].ID), url.Values{"back": {"/deliveries?status=failed"}})
		mustStatus(t, "replay one", res, body, http.StatusSeeOther)
		if loc := res.Header.Get("Location"); loc != "/deliveries?replayed=1&skipped=0&status=failed" {
			t.Errorf("redirect to %q", loc)
		}
		_, page := e.get("/deliveries?replayed=1&skipped=0&status=failed")
		mustContain(t, "flash", page, "Replayed 1 delivery")
		if e.wakes != 1 {
			t.Errorf("the pipeline was woken %d times, want 1", e.wakes)
		}
		if got := e.deliveries(bridge.DeliveryFilter{Status: bridge.StatusFailed}); len(got) != 1 || got[0].ID != fails[1].ID {
			t.Fatalf("failed after replaying one: %v", got)
		}
		// A back address elsewhere is not followed.
		for _, back := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"} {
			res, _ := e.postForm(fmt.Sprintf("/deliveries/%d/replay", fails[0].ID), url.Values{"back": {back}})
			if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/deliveries?") {
				t.Errorf("back %q: redirect to %q", back, loc)
			}
		}
		// All shown: the failed one replays, the pending one is skipped.
		res, body = e.postForm("/deliveries/replay", url.Values{"id": {fmt.Sprint(fails[0].ID), fmt.Sprint(fails[1].ID)}, "back": {"/"}})
		mustStatus(t, "replay shown", res, body, http.StatusSeeOther)
		if loc := res.Header.Get("Location"); loc != "/?replayed=1&skipped=1" {
			t.Errorf("redirect to %q", loc)
		}
		if got := e.deliveries(bridge.DeliveryFilter{Status: bridge.StatusFailed}); len(got) != 0 {
			t.Fatalf("failed after replaying all: %v", got)
		}
		// No ids replays nothing (the store reads none as all).
		e.settle("archive", failed("again"))
		res, _ = e.postForm("/deliveries/replay", url.Values{"back": {"/"}})
		if loc := res.Header.Get("Location"); loc != "/?replayed=0&skipped=0" {
			t.Errorf("replay of none: redirect to %q", loc)
		}
		if got := e.deliveries(bridge.DeliveryFilter{Status: bridge.StatusFailed}); len(got) != 2 {
			t.Fatalf("replaying no ids replayed %d", 2-len(got))
		}

		// The API.
		res, body = e.postJSON(fmt.Sprintf("/api/v1/deliveries/%d/replay", fails[0].ID), "")
		mustStatus(t, "api replay", res, body, 200)
		var out struct{ Replayed []int64 }
		json.Unmarshal([]byte(body), &out)
		if len(out.Replayed) != 1 || out.Replayed[0] != fails[0].ID {
			t.Errorf("api replay: %s", body)
		}
		res, body = e.postJSON(fmt.Sprintf("/api/v1/deliveries/%d/replay", fails[0].ID), "{}")
		mustStatus(t, "api replay of a pending one", res, body, http.StatusConflict)
		res, body = e.postJSON(fmt.Sprintf("/api/v1/deliveries/%d/replay", jiraOne.ID), "{}")
		mustStatus(t, "api replay of a delivered one", res, body, http.StatusConflict)
		mustContain(t, "409", body, "delivered, not failed")
		res, body = e.postJSON("/api/v1/deliveries/999999/replay", "{}")
		mustStatus(t, "api replay of none", res, body, http.StatusNotFound)
		res, body = e.postJSON("/api/v1/deliveries/x/replay", "{}")
		mustStatus(t, "api replay of x", res, body, http.StatusBadRequest)
	})
}

func TestTry(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		payload := string(secureagentics("evt_try", "policy.violated", "try me", "agt_t", "alrt_t"))
		res, body := e.postForm("/try", url.Values{"source": {"secureagentics"}, "payload": {payload}})
		mustStatus(t, "try page", res, body, 200)
		mustContain(t, "try page", body, "violations-to-jira", `<span class="verdict">match</span>`, `<span class="verdict">no match</span>`,
			"→ ops-jira", "agent agt_t", "evt_try")

		res, body = e.postJSON("/api/v1/try", `{"source":"secureagentics","payload":`+payload+`}`)
		mustStatus(t, "try api", res, body, 200)
		var out struct {
			Event bridge.Event `json:"event"`
			Rules []struct {
				Rule, Verdict string
				Actions       []struct {
					Sink   string
					Fields map[string]any
				}
			} `json:"rules"`
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range out.Rules {
			got[r.Rule] = r.Verdict
		}
		if out.Event.ID != "evt_try" || got["archive-everything"] != "match" || got["violations-to-jira"] != "match" || got["never"] != "no match" {
			t.Errorf("try api: %s", body)
		}
		if a := out.Rules[1].Actions; len(a) != 1 || a[0].Sink != "ops-jira" || a[0].Fields["description"] != "agent agt_t" {
			t.Errorf("rendered action: %+v", a)
		}
		// A payload as a string is posted as its text.
		res, body = e.postJSON("/api/v1/try", `{"source":"secureagentics","payload":"not json"}`)
		mustStatus(t, "not json", res, body, http.StatusBadRequest)
		mustContain(t, "not json", body, "secureagentics refuses this payload")
		for _, bad := range []string{`{"source":"nope","payload":{}}`, `{"payload":{}}`, `{"source":"agility"}`, `{"source":"agility","payload":{},"x":1}`, `nope`} {
			res, body = e.postJSON("/api/v1/try", bad)
			mustStatus(t, bad, res, body, http.StatusBadRequest)
		}
		res, body = e.postForm("/try", url.Values{"source": {"agility"}, "payload": {`{"id":1}`}})
		mustStatus(t, "refused payload", res, body, http.StatusBadRequest)
		mustContain(t, "refused payload", body, `class="problem"`, "agility refuses this payload")
		res, body = e.postJSON("/api/v1/try", `{"source":"agility","payload":"`+strings.Repeat("x", 70000)+`"}`)
		mustStatus(t, "too large", res, body, http.StatusRequestEntityTooLarge)

		// Nothing was stored.
		evs, err := e.store.Events(t.Context(), bridge.EventFilter{})
		if err != nil || len(evs) != 0 {
			t.Errorf("try stored %d events (%v)", len(evs), err)
		}
		if ds := e.deliveries(bridge.DeliveryFilter{}); len(ds) != 0 {
			t.Errorf("try stored %d deliveries", len(ds))
		}
	})
}

func TestRulesPage(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	e.seed()
	e.metrics.RuleErrors.WithLabelValues("never").Add(3)
	res, body := e.get("/rules")
	mustStatus(t, "rules", res, body, 200)
	row := func(name string) string {
		i := strings.Index(body, `id="rule-`+name+`"`)
		if i < 0 {
			t.Fatalf("no row for %s", name)
		}
		j := strings.Index(body[i:], "</tr>")
		return body[i : i+j]
	}
	for name, want := range map[string][]string{
		"archive-everything": {`>2</a>`, "→ archive"},
		"violations-to-jira": {`>1</a>`, "→ ops-jira", "type == &#34;policy.violated&#34;"},
		"never":              {`>0</a>`, `num-bad">3<`},
	} {
		mustContain(t, name, row(name), want...)
	}
}

func TestOverview(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.seed()
		e.stats.Add("secureagentics", bridge.OutcomeUnauthorized, time.Now())
		e.stats.Add("secureagentics", bridge.OutcomeUnauthorized, time.Now())
		e.metrics.Reloaded(time.Now(), fmt.Errorf("bridge.yaml:12: unknown key \"bogus\""))
		res, body := e.get("/")
		mustStatus(t, "overview", res, body, 200)
		mustContain(t, "overview", body,
			"1.2.3-test",
			`href="/deliveries?status=failed"`, // from a failure to the list
			"Latest failures", "permission denied", `action="/deliveries/`,
			`<td class="num num-bad">2</td>`, // two unauthorized
			`<td class="num num-ok">1</td>`,  // one accepted
			"refused", "unknown key &#34;bogus&#34;",
			"ops-jira", "archive",
		)
		// Sinks: archive has 2 failed, ops-jira 1 delivered.
		if !regexp.MustCompile(`(?s)deliveries\?sink=archive&amp;status=failed">2<`).MatchString(body) {
			t.Error("archive's failed count is not 2")
		}
		if !regexp.MustCompile(`(?s)deliveries\?sink=ops-jira&amp;status=delivered">1<`).MatchString(body) {
			t.Error("ops-jira's delivered count is not 1")
		}
	})
}
