package slackfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func post(t *testing.T, u, ctype, auth, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func apiAnswer(t *testing.T, body string) (ok bool, code string) {
	t.Helper()
	var v struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("not JSON: %s", body)
	}
	return v.OK, v.Error
}

func TestPostMessage(t *testing.T) {
	s := New(Options{
		Tokens:    []string{"xoxb-good"},
		Channels:  []Channel{{ID: "C1", Name: "one", Member: true}, {ID: "C2", Name: "two"}},
		RateLimit: RateLimit{PerSecond: 0.001, Burst: 2},
	})
	defer s.Close()
	form := func(v url.Values) string { return v.Encode() }
	const formType = "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name, ctype, auth, body string
		status                  int
		code                    string
	}{
		{"form with token", formType, "", form(url.Values{"token": {"xoxb-good"}, "channel": {"C1"}, "text": {"hi"}}), 200, ""},
		{"json with bearer", "application/json", "xoxb-good", `{"channel":"#one","text":"hi","blocks":[{"type":"divider"}]}`, 200, ""},
		{"json token in body is not enough", "application/json", "", `{"token":"xoxb-good","channel":"C1","text":"hi"}`, 200, "not_authed"},
		{"unknown token", formType, "", form(url.Values{"token": {"xoxb-bad"}, "channel": {"C1"}, "text": {"hi"}}), 200, "invalid_auth"},
		{"unknown channel", formType, "xoxb-good", form(url.Values{"channel": {"C9"}, "text": {"hi"}}), 200, "channel_not_found"},
		{"not a member", formType, "xoxb-good", form(url.Values{"channel": {"C2"}, "text": {"hi"}}), 200, "not_in_channel"},
		{"no text", formType, "xoxb-good", form(url.Values{"channel": {"C1"}}), 200, "no_text"},
		{"header too long", formType, "xoxb-good", form(url.Values{"channel": {"C1"}, "text": {"x"}, "blocks": {`[{"type":"header","text":{"type":"plain_text","text":"` + strings.Repeat("x", 151) + `"}}]`}}), 200, "invalid_blocks"},
		{"rate limited", formType, "xoxb-good", form(url.Values{"channel": {"C1"}, "text": {"hi"}}), 429, "ratelimited"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := post(t, s.APIURL()+"chat.postMessage", tc.ctype, tc.auth, tc.body)
			ok, code := apiAnswer(t, body)
			if status != tc.status || code != tc.code || ok != (tc.code == "") {
				t.Fatalf("%d %s", status, body)
			}
			if status == 429 && h.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		})
	}
	msgs := s.Messages()
	if len(msgs) != 2 || msgs[0].Via != "form" || msgs[1].Via != "json" || string(msgs[1].Blocks) != `[{"type":"divider"}]` || msgs[0].TS >= msgs[1].TS {
		t.Errorf("messages %+v", msgs)
	}
	if s.RateLimited() != 1 {
		t.Errorf("RateLimited() = %d", s.RateLimited())
	}
	reqs := s.Requests()
	if reqs[0].TokenFrom != "form" || reqs[1].TokenFrom != "header" {
		t.Errorf("requests %+v", reqs[:2])
	}
}

func TestThreadsAndLists(t *testing.T) {
	s := New(Options{Tokens: []string{"t"}, Channels: []Channel{
		{ID: "C1", Name: "one", Member: true}, {ID: "C2", Name: "two"}, {ID: "G1", Name: "priv", Private: true},
	}})
	defer s.Close()
	send := func(thread string) (string, string) {
		_, _, body := post(t, s.APIURL()+"chat.postMessage", "application/json", "t", `{"channel":"C1","text":"x","thread_ts":"`+thread+`"}`)
		var v struct {
			TS      string `json:"ts"`
			Message struct {
				ThreadTS string `json:"thread_ts"`
			} `json:"message"`
		}
		_ = json.Unmarshal([]byte(body), &v)
		return v.TS, v.Message.ThreadTS
	}
	parent, _ := send("")
	if _, th := send(parent); th != parent {
		t.Errorf("reply thread_ts %q, want %q", th, parent)
	}
	s.DeleteMessage("C1", parent)
	if _, th := send(parent); th != "" {
		t.Errorf("reply to a deleted parent was threaded")
	}

	_, _, body := post(t, s.APIURL()+"conversations.list", "application/x-www-form-urlencoded", "", "token=t&limit=1&types=public_channel,private_channel")
	if !strings.Contains(body, `"id":"C1"`) || !strings.Contains(body, `"next_cursor":"1"`) {
		t.Errorf("list page 1: %s", body)
	}
	_, _, body = post(t, s.APIURL()+"conversations.list", "application/x-www-form-urlencoded", "", "token=t&limit=1&cursor=1&types=public_channel,private_channel")
	if !strings.Contains(body, `"id":"C2"`) || strings.Contains(body, "G1") || !strings.Contains(body, `"next_cursor":""`) {
		t.Errorf("list page 2: %s", body)
	}
}

func TestWebhook(t *testing.T) {
	s := New(Options{
		Channels:  []Channel{{ID: "C1", Name: "one"}},
		Webhooks:  map[string]string{"/services/T/B/X": "C1"},
		RateLimit: RateLimit{PerSecond: 0.001, Burst: 1},
	})
	defer s.Close()
	hook := s.WebhookURL("/services/T/B/X")
	for _, tc := range []struct {
		name, url, body string
		script          *Answer
		status          int
		answer          string
	}{
		{"ok", hook, `{"text":"hi"}`, nil, 200, "ok"},
		{"not JSON", hook, `{"text":`, nil, 400, "invalid_payload"},
		{"no text", hook, `{}`, nil, 400, "no_text"},
		{"revoked", s.WebhookURL("/services/T/B/nope"), `{"text":"hi"}`, nil, 404, "no_service"},
		{"prohibited", hook, `{"text":"hi"}`, &Answer{Status: 403, Error: "action_prohibited"}, 403, "action_prohibited"},
		{"rate limited", hook, `{"text":"hi"}`, nil, 429, "rate_limited"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.script != nil {
				s.Script("webhook", *tc.script)
			}
			status, _, body := post(t, tc.url, "application/json", "", tc.body)
			if status != tc.status || body != tc.answer {
				t.Errorf("%d %q, want %d %q", status, body, tc.status, tc.answer)
			}
		})
	}
	if msgs := s.Messages(); len(msgs) != 1 || msgs[0].Via != "webhook" || msgs[0].Text != "hi" || msgs[0].Channel != "C1" {
		t.Errorf("messages %+v", msgs)
	}
}
