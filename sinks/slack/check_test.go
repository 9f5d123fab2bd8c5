package slack

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"bridge/bridge"
	"bridge/sinks/slack/slackfake"
)

func TestCheckToken(t *testing.T) {
	f := newFake(t, slackfake.Options{
		Tokens: []string{testToken},
		Channels: []slackfake.Channel{
			{ID: "C0SECOPS", Name: "secops", Member: true},
			{ID: "C0OLD", Name: "old", Member: true, Archived: true},
			{ID: "C0OUTSIDE", Name: "outside"},
			{ID: "G0SECRET", Name: "secret", Private: true},
		},
	})
	cfg := DefaultConfig()
	cfg.Token, cfg.APIURL, cfg.Channel = testToken, f.APIURL(), "#secops"
	actions := []bridge.Action{
		&Action{Channel: "#secops"},
		&Action{Channel: "C0SECOPS"},
		&Action{Channel: "#old"},
		&Action{Channel: "outside"},
		&Action{Channel: "#secret"},
		&Action{Channel: "G0SECRET"},
		&Action{Channel: "C0MISSING"},
		&Action{Channel: "U0ALICE01"},
		&Action{Channel: "{{ .data.channel }}"},
		&Action{},
	}
	var out bytes.Buffer
	problems, err := Check(context.Background(), &cfg, actions, &out)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	t.Log("\n" + got)
	for _, want := range []string{
		"token: ok: bot user bridge (U0BRIDGE) in team Fake Team (T0FAKE)",
		"channel #secops: ok (C0SECOPS, the bot is a member)",
		"channel C0SECOPS: ok (C0SECOPS, the bot is a member)",
		"channel #old: archived (C0OLD)",
		"channel outside: the bot is not a member (C0OUTSIDE)",
		"channel #secret: not found",
		"channel G0SECRET: not found",
		"channel C0MISSING: not found",
		"channel U0ALICE01: a user",
		"channel {{ .data.channel }}: a template",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if problems != 5 {
		t.Errorf("%d problems, want 5", problems)
	}
	if strings.Contains(got, testToken) {
		t.Error("the token is in the output")
	}

	t.Run("chat:write.public", func(t *testing.T) {
		f := newFake(t, slackfake.Options{Scopes: "chat:write,chat:write.public,channels:read", Channels: []slackfake.Channel{{ID: "C0OUTSIDE", Name: "outside"}}})
		cfg := DefaultConfig()
		cfg.Token, cfg.APIURL = testToken, f.APIURL()
		var out bytes.Buffer
		problems, err := Check(context.Background(), &cfg, []bridge.Action{&Action{Channel: "#outside"}}, &out)
		if err != nil || problems != 0 || !strings.Contains(out.String(), "chat:write.public scope lets the bot post") {
			t.Errorf("problems %d, err %v:\n%s", problems, err, out.String())
		}
	})
	t.Run("bad token", func(t *testing.T) {
		cfg := cfg
		cfg.Token = "xoxb-wrong"
		var out bytes.Buffer
		problems, err := Check(context.Background(), &cfg, actions, &out)
		if err != nil || problems != 1 || !strings.Contains(out.String(), "token: refused by Slack: slack: auth.test: invalid_auth") || !strings.Contains(out.String(), "channels: not checked") {
			t.Errorf("problems %d, err %v:\n%s", problems, err, out.String())
		}
	})
	t.Run("missing scope", func(t *testing.T) {
		f := newFake(t, slackfake.Options{Scopes: "channels:read"})
		cfg := DefaultConfig()
		cfg.Token, cfg.APIURL = testToken, f.APIURL()
		var out bytes.Buffer
		problems, _ := Check(context.Background(), &cfg, nil, &out)
		if problems != 1 || !strings.Contains(out.String(), "lacks the chat:write scope") {
			t.Errorf("problems %d:\n%s", problems, out.String())
		}
	})
	t.Run("Slack unreachable", func(t *testing.T) {
		// Not a token problem: the check could not run. The caller prints
		// err, so Check does not print it too.
		closed := slackfake.New(slackfake.Options{})
		closed.Close()
		cfg := DefaultConfig()
		cfg.Token, cfg.APIURL = testToken, closed.APIURL()
		var out bytes.Buffer
		problems, err := Check(context.Background(), &cfg, actions, &out)
		want := "slack: cannot reach " + strings.TrimSuffix(strings.TrimPrefix(closed.APIURL(), "http://"), "/api/") + ": connection refused"
		if err == nil || err.Error() != want || problems != 0 {
			t.Errorf("problems %d, err %v; want 0 and %q", problems, err, want)
		}
		if out.String() != "" {
			t.Errorf("Check printed, besides its error:\n%s", out.String())
		}
	})
	t.Run("Slack unreachable after auth.test", func(t *testing.T) {
		f := slackfake.New(slackfake.Options{Tokens: []string{testToken}})
		cfg := DefaultConfig()
		cfg.Token, cfg.APIURL = testToken, f.APIURL()
		var out bytes.Buffer
		problems, err := Check(context.Background(), &cfg, []bridge.Action{&Action{Channel: "#a"}, &Action{Channel: "C0AAAAAAA"}}, &checkAfter{w: &out, after: "token: ok", do: f.Close})
		if err == nil || !strings.Contains(err.Error(), "slack: cannot reach") || problems != 0 || strings.Contains(out.String(), "cannot") {
			t.Errorf("problems %d, err %v:\n%s", problems, err, out.String())
		}
	})
}

func TestCheckWebhook(t *testing.T) {
	f := newFake(t, slackfake.Options{Webhooks: map[string]string{"/services/T0/B0/good": "C0SECOPS"}})
	for _, tc := range []struct {
		path     string
		problems int
		want     string
	}{
		{"/services/T0/B0/good", 0, "webhook: ok: Slack answered no_text to an empty test payload"},
		{"/services/T0/B0/gone", 1, "webhook: does not work: HTTP 404 no_service"},
	} {
		cfg := DefaultConfig()
		cfg.WebhookURL = bridge.Secret(f.WebhookURL(tc.path))
		var out bytes.Buffer
		problems, err := Check(context.Background(), &cfg, []bridge.Action{&Action{Channel: "#x"}}, &out)
		got := out.String()
		if err != nil || problems != tc.problems || !strings.Contains(got, tc.want) || !strings.Contains(got, "cannot be checked without posting") || !strings.Contains(got, "webhooks created by Slack apps ignore") {
			t.Errorf("%s: problems %d, err %v:\n%s", tc.path, problems, err, got)
		}
		if strings.Contains(got, "/services/") {
			t.Errorf("the webhook URL is in the output:\n%s", got)
		}
	}
	if n := len(f.Messages()); n != 0 {
		t.Errorf("checking posted %d messages", n)
	}
}

// checkAfter writes to w and runs do once a line containing after was
// written: a service that goes away part way through a check.
type checkAfter struct {
	w     io.Writer
	after string
	do    func()
}

func (c *checkAfter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if c.do != nil && strings.Contains(string(p), c.after) {
		c.do()
		c.do = nil
	}
	return n, err
}
