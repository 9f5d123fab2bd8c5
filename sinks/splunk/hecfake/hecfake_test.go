package hecfake

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func post(t *testing.T, url, auth, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer %q is not JSON: %v", b, err)
	}
	return resp.StatusCode, m
}

func TestServer(t *testing.T) {
	s := New("tok", AllowIndexes("main"))
	defer s.Close()
	ev := `{"event":{"id":"a"}}`
	for _, tc := range []struct {
		name, path, auth, body string
		status                 int
		code                   float64
		invalid                any
	}{
		{"missing token", "/services/collector/event", "", ev, 401, 2, nil},
		{"no Splunk prefix", "/services/collector/event", "tok", ev, 401, 3, nil},
		{"wrong token", "/services/collector/event", "Splunk nope", ev, 403, 4, nil},
		{"wrong path", "/services/collector/other", "Splunk tok", ev, 404, 404, nil},
		{"no data", "/services/collector/event", "Splunk tok", " ", 400, 5, nil},
		{"two events", "/services/collector/event", "Splunk tok", ev + "\n" + `{"event":"b","index":"main"}`, 200, 0, nil},
		{"bad index", "/services/collector", "Splunk tok", ev + `{"event":"c","index":"x"}`, 400, 7, 1.0},
		{"no event", "/services/collector", "Splunk tok", `{"time":1}`, 400, 12, 0.0},
		{"blank event", "/services/collector", "Splunk tok", ev + ev + `{"event":""}`, 400, 13, 2.0},
		{"broken JSON", "/services/collector", "Splunk tok", ev + `{"event":`, 400, 6, 1.0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, m := post(t, s.URL+tc.path, tc.auth, tc.body)
			if status != tc.status || m["code"] != tc.code || m["invalid-event-number"] != tc.invalid {
				t.Errorf("got %d %v, want %d code %v invalid %v", status, m, tc.status, tc.code, tc.invalid)
			}
		})
	}
	if got := s.EventIDs(); len(got) != 2 || got[0] != "a" {
		t.Errorf("events = %q, want the two accepted ones", got)
	}
	s.Script(Busy("3"))
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/services/collector/event", strings.NewReader(ev))
	req.Header.Set("Authorization", "Splunk tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" {
		t.Errorf("scripted busy: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if got := s.Requests(); got != 11 {
		t.Errorf("requests = %d, want 11", got)
	}
}
