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
