package antly

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"bridge/bridge"
)

// fakeAntly stands in for the Antly JQL endpoint: it keeps the subscriptions
// it was asked for, answers a bad token with 401 and an unknown trigger with
// 400, both with a JSON error body as an API would.
type fakeAntly struct {
	t      *testing.T
	mu     sync.Mutex
	bodies []map[string]any
	subs   map[string]bool // prefix|trigger|url
}

func newFakeAntly(t *testing.T) (*fakeAntly, *httptest.Server) {
	f := &fakeAntly{t: t, subs: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAntly) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, `{"error":"POST JSON only"}`, http.StatusMethodNotAllowed)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var q map[string]any
	if err := json.Unmarshal(b, &q); err != nil {
		http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies = append(f.bodies, q)
	m, _ := q["__meta__"].(map[string]any)
	if m["authenticationToken"] != "good-oauth-token" {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "  {\"error\":\"invalid_token\",\"message\":\"The access token expired\"}\n")
		return
	}
	trigger, _ := q["trigger"].(string)
	if !strings.HasPrefix(trigger, "profile.") {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"unknown trigger `+trigger+`"}`)
		return
	}
	key := q["prefix"].(string) + "|" + trigger + "|" + q["webhookUrl"].(string)
	switch m["intent"] {
	case "subscribeToWebhook":
		f.subs[key] = true
	case "unsubscribeFromWebhook":
		delete(f.subs, key)
	}
	io.WriteString(w, `{"status":"ok"}`)
}

func testConfig(apiURL string) bridge.AntlyConfig {
	return bridge.AntlyConfig{
		APIURL: apiURL, AccessToken: "good-oauth-token", Prefix: "Bridge",
		WebhookURL: "https://bridge.example.com/webhooks/antly",
		Triggers:   []string{"profile.Customer:create", "profile.Customer:update"},
	}
}

func TestSubscribeSendsTheDocumentedQuery(t *testing.T) {
	f, srv := newFakeAntly(t)
	cfg := testConfig(srv.URL + "/api/jql")
	c := &Client{HTTP: srv.Client()}
	ctx := context.Background()
	if err := c.Subscribe(ctx, cfg, "profile.Customer:create"); err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe(ctx, cfg, "profile.Customer:create"); err != nil {
		t.Fatal(err)
	}
	golden := []string{
		`{ "__meta__": { "namespace": "system.Webhook", "schema": "controller", "intent": "subscribeToWebhook", "authenticationClass": "oauth2", "authenticationToken": "good-oauth-token" }, "prefix": "Bridge", "trigger": "profile.Customer:create", "webhookUrl": "https://bridge.example.com/webhooks/antly" }`,
		`{ "__meta__": { "namespace": "system.Webhook", "schema": "controller", "intent": "unsubscribeFromWebhook", "authenticationClass": "oauth2", "authenticationToken": "good-oauth-token" }, "prefix": "Bridge", "trigger": "profile.Customer:create", "webhookUrl": "https://bridge.example.com/webhooks/antly" }`,
	}
	if len(f.bodies) != len(golden) {
		t.Fatalf("%d queries, want %d", len(f.bodies), len(golden))
	}
	for i, g := range golden {
		var want map[string]any
		if err := json.Unmarshal([]byte(g), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f.bodies[i], want) {
			got, _ := json.Marshal(f.bodies[i])
			t.Errorf("query %d:\n got %s\nwant %s", i, got, g)
		}
	}
	if len(f.subs) != 0 {
		t.Errorf("subscriptions left: %v", f.subs)
	}
}

func TestSubscribeEveryTrigger(t *testing.T) {
	f, srv := newFakeAntly(t)
	cfg := testConfig(srv.URL)
	c := &Client{HTTP: srv.Client()}
	for _, tr := range cfg.Triggers {
		if err := c.Subscribe(context.Background(), cfg, tr); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{
		"Bridge|profile.Customer:create|https://bridge.example.com/webhooks/antly": true,
		"Bridge|profile.Customer:update|https://bridge.example.com/webhooks/antly": true,
	}
	if !reflect.DeepEqual(f.subs, want) {
		t.Errorf("subscriptions = %v, want %v", f.subs, want)
	}
}

func TestErrorsCarryAntlysAnswer(t *testing.T) {
	_, srv := newFakeAntly(t)
	c := &Client{HTTP: srv.Client()}

	cfg := testConfig(srv.URL)
	cfg.AccessToken = "expired-oauth-token"
	err := c.Subscribe(context.Background(), cfg, "profile.Customer:create")
	want := `antly: subscribe profile.Customer:create: HTTP 401: {"error":"invalid_token","message":"The access token expired"}`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	if err != nil && strings.Contains(err.Error(), "expired-oauth-token") {
		t.Errorf("error leaks the token: %v", err)
	}

	err = c.Unsubscribe(context.Background(), testConfig(srv.URL), "system.Nope:create")
	want = `antly: unsubscribe system.Nope:create: HTTP 400: {"error":"unknown trigger system.Nope:create"}`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

func TestErrorInSuccessfulAnswer(t *testing.T) {
	for _, tt := range []struct {
		body    string
		wantErr bool
	}{
		{`{"status":"ok"}`, false},
		{`{"error":null,"errors":[]}`, false},
		{``, false},
		{`ok`, false},
		{`{"error":"trigger not found"}`, true},
		{`{"errors":[{"message":"denied"}]}`, true},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, tt.body)
		}))
		err := (&Client{}).Subscribe(context.Background(), testConfig(srv.URL), "profile.Customer:create")
		srv.Close()
		if (err != nil) != tt.wantErr {
			t.Errorf("answer %q: error = %v, want error %v", tt.body, err, tt.wantErr)
		}
	}
}

func TestEchoedTokenIsRedacted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusUnprocessableEntity)
		w.Write(b)
	}))
	defer srv.Close()
	err := (&Client{}).Subscribe(context.Background(), testConfig(srv.URL), "profile.Customer:create")
	if err == nil || strings.Contains(err.Error(), "good-oauth-token") || !strings.Contains(err.Error(), "HTTP 422") {
		t.Errorf("error = %v", err)
	}
}

func TestLongErrorBodyIsCut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, strings.Repeat("x", 10000))
	}))
	defer srv.Close()
	err := (&Client{}).Subscribe(context.Background(), testConfig(srv.URL), "profile.Customer:create")
	if err == nil || len(err.Error()) > maxErrorBody+200 || !strings.Contains(err.Error(), "HTTP 502") {
		t.Errorf("error of %d bytes: %.100v", len(err.Error()), err)
	}
}

func TestConfigAndContextErrors(t *testing.T) {
	c := &Client{}
	if err := c.Subscribe(context.Background(), bridge.AntlyConfig{}, "profile.Customer:create"); err == nil {
		t.Error("no error without api_url")
	}
	if err := c.Subscribe(context.Background(), testConfig("http://127.0.0.1:1"), ""); err == nil {
		t.Error("no error for an empty trigger")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices a closed connection only after the body
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Subscribe(ctx, testConfig(srv.URL), "profile.Customer:create"); err == nil {
		t.Error("no error when the context ended")
	}
}
