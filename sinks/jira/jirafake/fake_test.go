package jirafake_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jira "github.com/andygrunwald/go-jira"

	"bridge/sinks/jira/jirafake"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func do(t *testing.T, srv *jirafake.Server, method, path, auth, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.HasPrefix(auth, "pat:"):
		req.Header.Set("Authorization", "Bearer "+strings.TrimPrefix(auth, "pat:"))
	case auth != "":
		u, p, _ := strings.Cut(auth, ":")
		req.SetBasicAuth(u, p)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	_ = json.Unmarshal(b, &v)
	return resp.StatusCode, resp.Header, v
}

const cloudAuth = "bot@example.com:secret-token"

func createIssue(t *testing.T, srv *jirafake.Server, auth, summary string) map[string]any {
	t.Helper()
	body := `{"fields":{"project":{"key":"OPS"},"issuetype":{"name":"Task"},"summary":"` + summary + `","labels":["bridge-abc"]}}`
	code, _, v := do(t, srv, "POST", "/rest/api/2/issue", auth, body)
	if code != 201 {
		t.Fatalf("create: %d %v", code, v)
	}
	return v
}

func TestCloud(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	srv := jirafake.New(jirafake.Options{Flavor: jirafake.Cloud, SearchLag: 10 * time.Second, PageSize: 2, Now: c.Now})
	defer srv.Close()

	t.Run("basic auth is checked", func(t *testing.T) {
		for _, auth := range []string{"", "bot@example.com:wrong", "pat:secret-token"} {
			if code, _, _ := do(t, srv, "GET", "/rest/api/2/myself", auth, ""); code != 401 {
				t.Errorf("auth %q: %d", auth, code)
			}
		}
		if code, _, v := do(t, srv, "GET", "/rest/api/2/myself", cloudAuth, ""); code != 200 || v["accountId"] == nil {
			t.Errorf("%d %v", code, v)
		}
	})
	t.Run("old search is gone", func(t *testing.T) {
		code, h, v := do(t, srv, "GET", "/rest/api/2/search?jql=project%3DOPS", cloudAuth, "")
		msgs, _ := v["errorMessages"].([]any)
		if code != 410 || h.Get("Content-Type") != "application/json;charset=UTF-8" || len(msgs) != 1 ||
			!strings.HasPrefix(msgs[0].(string), "The requested API has been removed.") {
			t.Fatalf("%d %v %v", code, h, v)
		}
	})
	var ids []string
	for _, s := range []string{"one", "two", "three"} {
		ids = append(ids, createIssue(t, srv, cloudAuth, s)["id"].(string))
	}
	search := func(extra string) map[string]any {
		q := "/rest/api/2/search/jql?jql=" + url.QueryEscape(`labels = "bridge-abc" ORDER BY created DESC`) + extra
		code, _, v := do(t, srv, "GET", q, cloudAuth, "")
		if code != 200 {
			t.Fatalf("search: %d %v", code, v)
		}
		return v
	}
	t.Run("search lags", func(t *testing.T) {
		if v := search(""); len(v["issues"].([]any)) != 0 {
			t.Fatalf("%v", v)
		}
		v := search("&reconcileIssues=" + ids[2])
		if issues := v["issues"].([]any); len(issues) != 1 || issues[0].(map[string]any)["id"] != ids[2] {
			t.Fatalf("%v", v)
		}
	})
	t.Run("pages with nextPageToken", func(t *testing.T) {
		c.Advance(11 * time.Second)
		v := search("")
		tok, _ := v["nextPageToken"].(string)
		if len(v["issues"].([]any)) != 2 || v["isLast"] != false || tok == "" {
			t.Fatalf("%v", v)
		}
		v = search("&nextPageToken=" + url.QueryEscape(tok))
		if len(v["issues"].([]any)) != 1 || v["isLast"] != true || v["nextPageToken"] != nil {
			t.Fatalf("%v", v)
		}
	})
	t.Run("unbounded jql", func(t *testing.T) {
		if code, _, _ := do(t, srv, "GET", "/rest/api/2/search/jql?jql="+url.QueryEscape("ORDER BY key"), cloudAuth, ""); code != 400 {
			t.Fatalf("%d", code)
		}
	})
	t.Run("go-jira's comment and assignee bodies are refused", func(t *testing.T) {
		tp := jira.BasicAuthTransport{Username: "bot@example.com", Password: "secret-token"}
		client, err := jira.NewClient(tp.Client(), srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, resp, err := client.Issue.AddComment("OPS-1", &jira.Comment{Body: "hi"})
		if err == nil || resp.StatusCode != 400 {
			t.Fatalf("AddComment: %v", err)
		}
		_, resp, err = client.Issue.Create(&jira.Issue{Fields: &jira.IssueFields{Project: jira.Project{Key: "OPS"},
			Type: jira.IssueType{Name: "Task"}, Summary: "s", Assignee: &jira.User{AccountID: "abc"}}})
		if err == nil || resp.StatusCode != 400 {
			t.Fatalf("Create with assignee: %v", err)
		}
	})
	t.Run("scripted 429", func(t *testing.T) {
		srv.FailNext(jirafake.RouteMyself, 1, jirafake.Failure{Status: 429, RetryAfter: "3"})
		code, h, _ := do(t, srv, "GET", "/rest/api/2/myself", cloudAuth, "")
		if code != 429 || h.Get("Retry-After") != "3" {
			t.Fatalf("%d %v", code, h)
		}
		if code, _, _ := do(t, srv, "GET", "/rest/api/2/myself", cloudAuth, ""); code != 200 {
			t.Fatalf("%d", code)
		}
	})
	t.Run("field errors", func(t *testing.T) {
		body := `{"fields":{"project":{"key":"OPS"},"issuetype":{"name":"Task"},"summary":"s","priority":{"name":"Urgent"},"labels":["a b"]}}`
		code, h, v := do(t, srv, "POST", "/rest/api/2/issue", cloudAuth, body)
		errs, _ := v["errors"].(map[string]any)
		if code != 400 || h.Get("Content-Type") != "application/json;charset=UTF-8" ||
			errs["priority"] != "Priority name 'Urgent' is not valid" || errs["labels"] == nil {
			t.Fatalf("%d %v", code, v)
		}
	})
}

func TestDataCenter(t *testing.T) {
	srv := jirafake.New(jirafake.Options{Flavor: jirafake.DataCenter})
	defer srv.Close()
	pat := "pat:secret-token"
	if code, _, _ := do(t, srv, "GET", "/rest/api/2/myself", "pat:wrong", ""); code != 401 {
		t.Fatalf("wrong PAT: %d", code)
	}
	createIssue(t, srv, pat, "one")
	code, _, v := do(t, srv, "GET", "/rest/api/2/search/jql?jql=project%3DOPS", pat, "")
	if code != 404 || v["message"] != "HTTP 404 Not Found" {
		t.Fatalf("search/jql: %d %v", code, v)
	}
	code, _, v = do(t, srv, "GET", "/rest/api/2/search?jql="+url.QueryEscape(`project = OPS AND statusCategory != Done`), pat, "")
	if code != 200 || v["total"] != float64(1) {
		t.Fatalf("search: %d %v", code, v)
	}
	srv.SetStatus("OPS-1", "Done", "done")
	_, _, v = do(t, srv, "GET", "/rest/api/2/search?jql="+url.QueryEscape(`project = OPS AND statusCategory != Done`), pat, "")
	if v["total"] != float64(0) {
		t.Fatalf("search after done: %v", v)
	}
	if code, _, v := do(t, srv, "GET", "/rest/api/2/serverInfo", "", ""); code != 200 || v["deploymentType"] != "DataCenter" {
		t.Fatalf("serverInfo: %d %v", code, v)
	}
}

// TestWorkflow drives GET and POST /rest/api/2/issue/{key}/transitions in
// both products' shapes: transitions per status, a screen that requires a
// resolution, transitions the status does not offer, resolutiondate set and
// cleared, and a search that lags behind a status change.
func TestWorkflow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		flavor jirafake.Flavor
		auth   string
	}{{"cloud", jirafake.Cloud, cloudAuth}, {"datacenter", jirafake.DataCenter, "pat:secret-token"}} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			srv := jirafake.New(jirafake.Options{Flavor: tc.flavor, Now: c.Now, SearchLag: 10 * time.Second,
				Workflows: map[string]jirafake.Workflow{"SEC": jirafake.ResolutionScreenWorkflow()}})
			defer srv.Close()
			createIssue(t, srv, tc.auth, "one") // OPS-1
			transitions := func(key, query string) []map[string]any {
				t.Helper()
				code, _, v := do(t, srv, "GET", "/rest/api/2/issue/"+key+"/transitions"+query, tc.auth, "")
				if code != 200 || v["expand"] != "transitions" {
					t.Fatalf("transitions of %s: %d %v", key, code, v)
				}
				var out []map[string]any
				for _, x := range v["transitions"].([]any) {
					out = append(out, x.(map[string]any))
				}
				return out
			}
			names := func(ts []map[string]any) string {
				var n []string
				for _, x := range ts {
					n = append(n, x["name"].(string)+"→"+x["to"].(map[string]any)["name"].(string))
				}
				return strings.Join(n, ",")
			}

			ts := transitions("OPS-1", "")
			if got := names(ts); got != "Start Progress→In Progress,Done→Done" {
				t.Fatalf("from To Do: %s", got)
			}
			done := ts[1]
			if tc.flavor == jirafake.Cloud {
				if done["hasScreen"] != false || done["isGlobal"] != false || done["isAvailable"] != true || done["opsbarSequence"] != nil {
					t.Errorf("cloud shape %v", done)
				}
			} else if done["hasScreen"] != nil || done["opsbarSequence"] == nil {
				t.Errorf("data center shape %v", done)
			}
			if done["fields"] != nil {
				t.Errorf("fields without expand: %v", done)
			}
			if cat := done["to"].(map[string]any)["statusCategory"].(map[string]any); cat["key"] != "done" {
				t.Errorf("to %v", done["to"])
			}
			if f := transitions("OPS-1", "?expand=transitions.fields")[1]["fields"]; f == nil || len(f.(map[string]any)) != 0 {
				t.Errorf("expanded fields of a transition without a screen: %v", f)
			}

			// Reopen is not offered from To Do.
			code, _, v := do(t, srv, "POST", "/rest/api/2/issue/OPS-1/transitions", tc.auth, `{"transition":{"id":"41"}}`)
			msgs, _ := v["errorMessages"].([]any)
			want := map[jirafake.Flavor]string{jirafake.Cloud: "Transition id '41' is not valid for this issue.",
				jirafake.DataCenter: "It seems that you have tried to perform a workflow operation (Reopen) that is not valid for the current state of this issue (OPS-1)."}[tc.flavor]
			if code != 400 || len(msgs) != 1 || !strings.HasPrefix(msgs[0].(string), want) {
				t.Fatalf("reopen from To Do: %d %v", code, v)
			}
			// No screen: no fields.
			code, _, v = do(t, srv, "POST", "/rest/api/2/issue/OPS-1/transitions", tc.auth, `{"transition":{"id":"31"},"fields":{"resolution":{"name":"Done"}}}`)
			if errs, _ := v["errors"].(map[string]any); code != 400 || errs["resolution"] != "Field 'resolution' cannot be set. It is not on the appropriate screen, or unknown." {
				t.Fatalf("resolution without a screen: %d %v", code, v)
			}
			c.Advance(20 * time.Second)
			if code, _, _ := do(t, srv, "POST", "/rest/api/2/issue/OPS-1/transitions", tc.auth, `{"transition":{"id":"31"}}`); code != 204 {
				t.Fatalf("done: %d", code)
			}
			iss, _ := srv.Issue("OPS-1")
			if iss.Status != "Done" || iss.StatusCategory != "done" || iss.Resolution != "Done" || !iss.Resolved.Equal(c.Now()) {
				t.Fatalf("after Done: %+v", iss)
			}
			_, _, v = do(t, srv, "GET", "/rest/api/2/issue/OPS-1?fields=status,resolutiondate", tc.auth, "")
			f := v["fields"].(map[string]any)
			if f["resolutiondate"] != "2026-01-01T00:00:20.000+0000" || f["resolution"].(map[string]any)["name"] != "Done" {
				t.Errorf("issue fields %v", f)
			}
			if _, has := f["statuscategorychangedate"]; has != (tc.flavor == jirafake.Cloud) {
				t.Errorf("statuscategorychangedate on %s: %v", tc.name, f)
			}
			// Search lags behind the move.
			jql := url.QueryEscape(`project = OPS AND statusCategory != Done`)
			path := map[jirafake.Flavor]string{jirafake.Cloud: "/rest/api/2/search/jql?jql=", jirafake.DataCenter: "/rest/api/2/search?jql="}[tc.flavor] + jql
			if _, _, v := do(t, srv, "GET", path, tc.auth, ""); len(v["issues"].([]any)) != 1 {
				t.Errorf("search right after Done: %v", v)
			}
			c.Advance(11 * time.Second)
			if _, _, v := do(t, srv, "GET", path, tc.auth, ""); len(v["issues"].([]any)) != 0 {
				t.Errorf("search once the lag passed: %v", v)
			}
			if got := names(transitions("OPS-1", "")); got != "Reopen→To Do" {
				t.Fatalf("from Done: %s", got)
			}
			if code, _, _ := do(t, srv, "POST", "/rest/api/2/issue/OPS-1/transitions", tc.auth, `{"transition":{"id":"41"}}`); code != 204 {
				t.Fatalf("reopen: %d", code)
			}
			if iss, _ := srv.Issue("OPS-1"); iss.Status != "To Do" || iss.Resolution != "" || !iss.Resolved.IsZero() {
				t.Fatalf("after Reopen: %+v", iss)
			}

			// SEC's Done has a screen that requires a resolution.
			body := `{"fields":{"project":{"key":"SEC"},"issuetype":{"name":"Bug"},"summary":"s"}}`
			if code, _, v := do(t, srv, "POST", "/rest/api/2/issue", tc.auth, body); code != 201 || v["key"] != "SEC-1" {
				t.Fatalf("create: %d %v", code, v)
			}
			sd := transitions("SEC-1", "?expand=transitions.fields")[1]
			rf := sd["fields"].(map[string]any)["resolution"].(map[string]any)
			if rf["required"] != true || len(rf["allowedValues"].([]any)) != 4 {
				t.Fatalf("resolution field %v", rf)
			}
			if tc.flavor == jirafake.Cloud && (sd["hasScreen"] != true || rf["key"] != "resolution") {
				t.Errorf("cloud screen %v", sd)
			}
			code, h, v := do(t, srv, "POST", "/rest/api/2/issue/SEC-1/transitions", tc.auth, `{"transition":{"id":"31"}}`)
			if errs, _ := v["errors"].(map[string]any); code != 400 || h.Get("Content-Type") != "application/json;charset=UTF-8" || errs["resolution"] != "Resolution is required." {
				t.Fatalf("no resolution: %d %v", code, v)
			}
			code, _, v = do(t, srv, "POST", "/rest/api/2/issue/SEC-1/transitions", tc.auth, `{"transition":{"id":"31"},"fields":{"resolution":{"name":"Fixed"}}}`)
			if errs, _ := v["errors"].(map[string]any); code != 400 || errs["resolution"] == nil {
				t.Fatalf("unknown resolution: %d %v", code, v)
			}
			if code, _, _ := do(t, srv, "POST", "/rest/api/2/issue/SEC-1/transitions", tc.auth, `{"transition":{"id":"31"},"fields":{"resolution":{"name":"Won't Do"}}}`); code != 204 {
				t.Fatalf("with a resolution: %d", code)
			}
			if iss, _ := srv.Issue("SEC-1"); iss.Resolution != "Won't Do" {
				t.Errorf("resolution %q", iss.Resolution)
			}
			for _, bad := range []string{`{}`, `{"transition":{}}`, `not json`} {
				if code, _, _ := do(t, srv, "POST", "/rest/api/2/issue/SEC-1/transitions", tc.auth, bad); code != 400 {
					t.Errorf("%s: %d", bad, code)
				}
			}
			if code, _, _ := do(t, srv, "GET", "/rest/api/2/issue/NOPE-9/transitions", tc.auth, ""); code != 404 {
				t.Errorf("transitions of a missing issue: %d", code)
			}
			if code, _, _ := do(t, srv, "GET", "/rest/api/2/issue/OPS-1/transitions", "bot@example.com:wrong", ""); code != 401 {
				t.Errorf("wrong credentials: %d", code)
			}
			got := srv.Transitions()
			if len(got) != 3 || got[0] != (jirafake.Transitioned{Key: "OPS-1", Name: "Done", From: "To Do", To: "Done", Resolution: "Done"}) {
				t.Errorf("transitions %+v", got)
			}
		})
	}
}
