package slack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	slackgo "github.com/slack-go/slack"

	"bridge/bridge"
	"bridge/sinks/internal/httpclient"
)

// channelID matches a conversation ID (public C..., private G..., DM D...).
var channelID = regexp.MustCompile(`^[CGD][A-Z0-9]{6,}$`)

// userID matches a user ID: chat.postMessage to a user posts in the bot's DM.
var userID = regexp.MustCompile(`^[UW][A-Z0-9]{6,}$`)

// Check checks a slack sink's config against Slack, for `bridge slack
// check`: with a bot token, that the token works (auth.test) and that every
// channel the actions name (and the sink's default) exists, is not archived
// and takes the bot's messages; with a webhook, what can be learnt without
// posting a message. It writes one line per finding to w and returns the
// number of problems found. err is set, and not written to w (the caller
// prints it, once), only when Slack could not be asked: it could not be
// reached ("cannot reach slack.com: connection refused"), or it answered
// with a server error. A refused token is a problem, not err.
func Check(ctx context.Context, cfg *Config, actions []bridge.Action, w io.Writer) (problems int, err error) {
	c := *cfg
	if err := c.Validate(); err != nil {
		return 0, fmt.Errorf("slack: %w", err)
	}
	channels, templated := checkedChannels(&c, actions)
	s, err := newSink(&c, bridge.SinkEnv{Timeout: 30 * time.Second}, time.Now, sleepCtx)
	if err != nil {
		return 0, err
	}
	defer s.Close(ctx)
	ck := &checker{s: s, w: w, ctx: ctx}
	switch {
	case c.webhook():
		ck.webhook(actions)
	case ck.token():
		for _, ch := range channels {
			if ck.err != nil {
				break
			}
			ck.channel(ch)
		}
	case ck.err == nil && len(channels) > 0:
		ck.printf("  channels: not checked, as the token does not work")
	}
	if ck.err == nil {
		for _, t := range templated {
			ck.printf("  channel %s: a template, rendered per event: not checked", t)
		}
	}
	return ck.problems, ck.err
}

// checkedChannels lists the distinct channels the actions post to, in
// order, and apart those that are templates.
func checkedChannels(cfg *Config, actions []bridge.Action) (plain, templated []string) {
	seen := map[string]bool{}
	add := func(ch string) {
		ch = strings.TrimSpace(ch)
		if ch == "" || seen[ch] {
			return
		}
		seen[ch] = true
		if strings.Contains(ch, "{{") {
			templated = append(templated, ch)
		} else {
			plain = append(plain, ch)
		}
	}
	add(cfg.Channel)
	for _, a := range actions {
		if a, ok := a.(*Action); ok {
			add(a.Channel)
		}
	}
	return plain, templated
}

type checker struct {
	s        *Sink
	w        io.Writer
	ctx      context.Context
	problems int
	err      error

	botName string
	scopes  []string // nil when Slack did not say
	byName  map[string]slackgo.Channel
	listErr error
	status  int // the HTTP status of the last call's answer; 0: no answer came
}

func (c *checker) printf(format string, args ...any) {
	fmt.Fprintf(c.w, format+"\n", args...)
}

func (c *checker) problem(format string, args ...any) {
	c.problems++
	c.printf(format, args...)
}

func (c *checker) hasScope(s string) bool {
	for _, v := range c.scopes {
		if v == s {
			return true
		}
	}
	return false
}

// call runs one Web API call, waiting out rate limits a few times.
func (c *checker) call(method string, f func(ctx context.Context) error) error {
	for try := 0; ; try++ {
		ctx, ans := recordAnswer(c.ctx)
		err := classify(method, f(ctx), ans)
		c.status = ans.status
		d, ok := retryDelay(err)
		if !ok || ans.status != http.StatusTooManyRequests || try == 3 {
			return err
		}
		if serr := sleepCtx(c.ctx, d); serr != nil {
			return err
		}
	}
}

// code returns Slack's ok:false code in err, if it is one.
func code(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.code
	}
	return ""
}

// fail ends the check with err, the error of a call with no answer or a
// server error: Slack could not be asked. When no answer came at all, it
// says "cannot reach HOST: why".
func (c *checker) fail(err error, host string) {
	if c.err != nil {
		return
	}
	if cause, ok := httpclient.Unreachable(err); ok && c.status == 0 && code(err) == "" {
		err = fmt.Errorf("slack: cannot reach %s: %s", host, cause)
	}
	c.err = err
}

// broken reports whether err, of the last call, means Slack could not be
// asked (no answer, or a server error) rather than an answer about what
// was asked.
func (c *checker) broken(err error) bool {
	return err != nil && code(err) == "" && (c.status == 0 || c.status >= 500)
}

// tokenRefused reports whether Slack's ok:false code means the token itself
// is not accepted.
func tokenRefused(code string) bool {
	switch code {
	case "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "no_permission", "org_login_required", "ekm_access_denied":
		return true
	}
	return false
}

// token checks the bot token with auth.test.
func (c *checker) token() bool {
	var resp *slackgo.AuthTestResponse
	err := c.call("auth.test", func(ctx context.Context) (err error) {
		resp, err = c.s.api.AuthTestContext(ctx)
		return err
	})
	if err != nil {
		switch status := c.status; {
		case tokenRefused(code(err)) || status == http.StatusUnauthorized || status == http.StatusForbidden:
			c.problem("  token: refused by Slack: %v", err)
		case code(err) != "":
			c.problem("  token: does not work: %v", err)
		case status != 0 && status < 500:
			c.problem("  token: cannot be checked: %v (is api_url Slack's Web API, https://slack.com/api/?)", err)
		default:
			c.fail(err, httpclient.Host(c.s.cfg.APIURL))
		}
		return false
	}
	c.botName = resp.User
	c.printf("  token: ok: bot user %s (%s) in team %s (%s), %s", resp.User, resp.UserID, resp.Team, resp.TeamID, resp.URL)
	if h := resp.Header.Get("X-OAuth-Scopes"); h != "" {
		for _, sc := range strings.Split(h, ",") {
			c.scopes = append(c.scopes, strings.TrimSpace(sc))
		}
		if !c.hasScope("chat:write") {
			c.problem("  token: lacks the chat:write scope, needed to post (scopes: %s)", h)
		}
	}
	return true
}

// channel checks that one channel exists and takes the bot's messages.
func (c *checker) channel(ref string) {
	label := "channel " + ref
	if userID.MatchString(ref) {
		c.printf("  %s: a user: messages go to the bot's direct messages with them; not checked", label)
		return
	}
	var ch *slackgo.Channel
	if channelID.MatchString(ref) {
		err := c.call("conversations.info", func(ctx context.Context) (err error) {
			ch, err = c.s.api.GetConversationInfoContext(ctx, &slackgo.GetConversationInfoInput{ChannelID: ref})
			return err
		})
		switch code(err) {
		case "":
			if c.broken(err) {
				c.fail(err, httpclient.Host(c.s.cfg.APIURL))
				return
			}
			if err != nil {
				c.problem("  %s: cannot check: %v", label, err)
				return
			}
		case "channel_not_found":
			c.problem("  %s: not found (no such channel, or a private channel the bot is not in)", label)
			return
		default:
			c.problem("  %s: cannot check: %v", label, err)
			return
		}
	} else {
		if c.byName == nil && c.listErr == nil {
			c.byName, c.listErr = c.listChannels()
		}
		if c.listErr != nil {
			if c.broken(c.listErr) {
				c.fail(c.listErr, httpclient.Host(c.s.cfg.APIURL))
				return
			}
			c.problem("  %s: cannot look the name up: %v", label, c.listErr)
			return
		}
		found, ok := c.byName[strings.ToLower(strings.TrimPrefix(ref, "#"))]
		if !ok {
			c.problem("  %s: not found (no public channel of that name, nor a private one the bot is in)", label)
			return
		}
		ch = &found
	}
	switch {
	case ch.IsArchived:
		c.problem("  %s: archived (%s): messages would fail with is_archived", label, ch.ID)
	case ch.IsMember:
		c.printf("  %s: ok (%s, the bot is a member)", label, ch.ID)
	case !ch.IsPrivate && c.hasScope("chat:write.public"):
		c.printf("  %s: ok (%s, not a member, but the chat:write.public scope lets the bot post)", label, ch.ID)
	default:
		c.problem("  %s: the bot is not a member (%s): messages would fail with not_in_channel; invite it (/invite @%s) or add the chat:write.public scope", label, ch.ID, c.botName)
	}
}

// listChannels maps the names of the channels the bot can see to them.
func (c *checker) listChannels() (map[string]slackgo.Channel, error) {
	out := map[string]slackgo.Channel{}
	cursor := ""
	for page := 0; page < 100; page++ {
		var list []slackgo.Channel
		var next string
		err := c.call("conversations.list", func(ctx context.Context) (err error) {
			list, next, err = c.s.api.GetConversationsContext(ctx, &slackgo.GetConversationsParameters{
				Cursor: cursor, Limit: 1000, Types: []string{"public_channel", "private_channel"},
			})
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, ch := range list {
			out[strings.ToLower(ch.Name)] = ch
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return out, nil
}

// webhook checks an incoming webhook without posting a message: Slack
// answers an empty payload with no_text when the webhook exists, and with
// no_service or action_prohibited when it does not work.
func (c *checker) webhook(actions []bridge.Action) {
	u, _ := url.Parse(c.s.cfg.WebhookURL.Value())
	c.printf("  webhook on %s (the URL is a secret and not shown)", u.Host)
	if u.Scheme != "https" {
		c.printf("  webhook: warning: the URL is not https")
	}
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.s.cfg.WebhookURL.Value(), bytes.NewReader([]byte("{}")))
	if err != nil {
		c.problem("  webhook: the URL is not valid")
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.s.doer.userAgent)
	resp, err := c.s.http.Do(req)
	if err != nil {
		if cause, ok := httpclient.Unreachable(err); ok {
			c.err = fmt.Errorf("slack: webhook: cannot reach %s: %s", u.Host, cause)
		} else {
			c.err = fmt.Errorf("slack: webhook: %w", cleanErr(err))
		}
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	text := errorText(string(b))
	switch {
	case resp.StatusCode == http.StatusBadRequest && (text == "no_text" || text == "invalid_payload" || text == "missing_text_or_fallback_or_attachments"):
		c.printf("  webhook: ok: Slack answered %s to an empty test payload, so the webhook exists (nothing was posted)", text)
	case resp.StatusCode == http.StatusOK:
		c.printf("  webhook: answered %d %s to an empty test payload; it seems to work", resp.StatusCode, text)
	default:
		c.problem("  webhook: does not work: HTTP %d %s", resp.StatusCode, text)
	}
	c.printf("  webhook: cannot be checked without posting: the channel it posts to (chosen when the webhook was created) and that Slack accepts the messages")
	for _, a := range actions {
		if a, ok := a.(*Action); ok && strings.TrimSpace(a.Channel) != "" {
			c.printf("  webhook: note: actions set channel (%s), which webhooks created by Slack apps ignore", a.Channel)
			break
		}
	}
}
