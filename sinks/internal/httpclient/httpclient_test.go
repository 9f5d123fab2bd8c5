package httpclient

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"bridge/bridge"
	"bridge/sinks/internal/tlsconf"
)

func TestPost(t *testing.T) {
	var got *http.Request
	var gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, strings.Repeat("x", MaxAnswerBytes+100))
	}))
	defer srv.Close()
	c, err := New(tlsconf.Config{}, bridge.SinkEnv{Version: "1.2.3"}, "test", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()

	a, err := c.Post(context.Background(), srv.URL+"/in", http.Header{"Content-Type": {"application/json"}}, []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != http.StatusServiceUnavailable || a.Header.Get("Retry-After") != "3" || len(a.Body) != MaxAnswerBytes {
		t.Errorf("answer = %d %v, %d bytes", a.Status, a.Header, len(a.Body))
	}
	if got.Method != http.MethodPost || got.Header.Get("User-Agent") != "bridge/1.2.3" ||
		got.Header.Get("Content-Type") != "application/json" || gotBody != `{"a":1}` {
		t.Errorf("request = %s %v %q", got.Method, got.Header, gotBody)
	}

	a, err = c.Post(context.Background(), srv.URL+"/moved", nil, nil)
	if err != nil || a.Status != http.StatusFound || got.URL.Path != "/moved" {
		t.Errorf("redirect: status %d, err %v, last path %s; want 302 not followed", a.Status, err, got.URL.Path)
	}
}

func TestPostErrors(t *testing.T) {
	c, err := New(tlsconf.Config{}, bridge.SinkEnv{}, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Post(context.Background(), "http://[::1", nil, nil)
	if err == nil || !bridge.IsPermanent(err) || !strings.HasPrefix(err.Error(), "build request: ") {
		t.Errorf("bad URL: err = %v, want a permanent build request error", err)
	}

	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/in?token=SECRET-in-query"
	srv.Close()
	_, err = c.Post(context.Background(), url, nil, nil)
	if err == nil || bridge.IsPermanent(err) || !strings.HasPrefix(err.Error(), "post: ") || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("server gone: err = %v, want a retryable post error without the URL", err)
	}
}

func TestUserAgent(t *testing.T) {
	for version, want := range map[string]string{"": "bridge", "1.2.3": "bridge/1.2.3"} {
		if got := UserAgent(version); got != want {
			t.Errorf("UserAgent(%q) = %q, want %q", version, got, want)
		}
	}
}

func TestTrimText(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		secrets []string
		want    string
	}{
		{name: "one line", in: "  bad\r\n request\t here \n", want: "bad request here"},
		{name: "invalid utf-8", in: "a\xffb", want: "a\uFFFDb"},
		{name: "secrets", in: "token Bearer xyz and acme", secrets: []string{"Bearer xyz", "acme", ""}, want: "token <secret> and <secret>"},
		{name: "empty", in: "", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := TrimText([]byte(tc.in), tc.secrets...); got != tc.want {
				t.Errorf("TrimText(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	long := TrimText([]byte(strings.Repeat("é", 5000)))
	if n := utf8.RuneCountInString(long); n != MaxMessageLen+1 || !strings.HasSuffix(long, "…") || !utf8.ValidString(long) {
		t.Errorf("long text cut to %d runes: %.20q", n, long)
	}
}

func TestRedact(t *testing.T) {
	got := string(Redact([]byte(`{"text":"Invalid token abc-123","token":"abc-123"}`), "abc-123", ""))
	if want := `{"text":"Invalid token <secret>","token":"<secret>"}`; got != want {
		t.Errorf("Redact = %s, want %s", got, want)
	}
}

func TestCheckURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://collector.example/ingest": "",
		"http://127.0.0.1:8088":            "",
		"ftp://x":                          "must start with https:// or http://",
		"splunk.example:8088":              "must start with https:// or http://",
		"https:///x":                       "has no host",
		"http://[::1":                      "is not a URL",
	} {
		got := ""
		if err := CheckURL(in); err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("CheckURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://splunk.example:8088/services/collector/event": "https://splunk.example:8088/services/collector/event",
		"https://user:pw@x.example/in?b=2&a=1":                 "https://<secret>@x.example/in?a=<secret>&b=<secret>",
		"http://[::1":                                          "<invalid url>",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplit(t *testing.T) {
	size := func(n int) int { return n }
	for _, tc := range []struct {
		name     string
		items    []int
		max, ovh int
		want     [][]int
	}{
		{name: "none", items: nil, max: 10, want: nil},
		{name: "all fit", items: []int{3, 3}, max: 8, want: [][]int{{3, 3}}},
		{name: "separator counts", items: []int{3, 3, 3}, max: 8, want: [][]int{{3, 3}, {3}}},
		{name: "overhead counts", items: []int{3, 3}, max: 8, ovh: 2, want: [][]int{{3}, {3}}},
		{name: "too large goes alone", items: []int{1, 20, 1, 1}, max: 8, want: [][]int{{1}, {20}, {1, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Split(tc.items, tc.max, tc.ovh, size)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Split(%v, %d, %d) = %v, want %v", tc.items, tc.max, tc.ovh, got, tc.want)
			}
		})
	}
}
