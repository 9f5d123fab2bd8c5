// Package slack is the Slack sink: it posts one message per delivery, through
// chat.postMessage with a bot token or to an incoming webhook.
//
// Sink keys: token (a bot token) or webhook_url, api_url (another Web API
// base), channel (the default for actions), rate_limit {rps, burst} (per
// channel; default one message a second with bursts of three).
//
// Action keys, all templates: channel, text (the notification line), blocks
// (a JSON array replacing the default Block Kit layout; '[]' sends the text
// alone) and thread_by (a key: later messages with the same key go into the
// first one's thread; bot token only).
//
// The default layout is a header with the event's title, the text when it
// says more than the title, the severity, source, type and subject as
// fields, and a context line with the event id and time. Every text is cut
// by runes to Slack's limits, so Slack never refuses a message for its size.
//
// A delivery's result is the message's ts (empty for webhooks, which return
// none). Slack's error codes are kept verbatim in errors
// ("slack: chat.postMessage: channel_not_found"); codes that mean a wrong
// configuration or payload fail the delivery at once, the transient ones and
// 429 and 5xx answers are retried, honouring Retry-After.
package slack

import (
	"errors"
	"net/url"
	"strings"

	"bridge/bridge"
)

// DefaultAPIURL is the Slack Web API base the bot token is used against.
const DefaultAPIURL = "https://slack.com/api/"

// DefaultConfig returns a sink config with every default filled in: the
// Slack API base and a pace of one message per second per channel with
// bursts of three, which is what Slack tolerates for chat.postMessage.
func DefaultConfig() Config {
	return Config{
		APIURL:    DefaultAPIURL,
		RateLimit: bridge.RateLimit{RPS: 1, Burst: 3},
	}
}

// Config is a slack sink's own config. Exactly one of Token (a bot token,
// messages go through chat.postMessage) and WebhookURL (an incoming webhook,
// whose channel is fixed when the webhook is created) is set.
type Config struct {
	// Token is the bot token (xoxb-...).
	Token bridge.Secret `yaml:"token"`
	// WebhookURL is an incoming webhook URL; it is a secret, as anyone who
	// has it can post.
	WebhookURL bridge.Secret `yaml:"webhook_url"`
	// APIURL is the Slack Web API base, for proxies and tests; it always
	// ends with a slash once validated.
	APIURL string `yaml:"api_url"`
	// Channel is the channel used by actions that name none.
	Channel string `yaml:"channel"`
	// RateLimit paces messages per channel (per webhook for webhook sinks)
	// so the bridge rarely meets Slack's own limit.
	RateLimit bridge.RateLimit `yaml:"rate_limit"`
}

// Validate checks the config and normalizes api_url to end with a slash, as
// slack-go appends method names to it.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.Token == "" && c.WebhookURL == "":
		errs = append(errs, bridge.FieldError("token", "set token (a bot token) or webhook_url (an incoming webhook)"))
	case c.Token != "" && c.WebhookURL != "":
		errs = append(errs, bridge.FieldError("webhook_url", "set either token or webhook_url, not both"))
	}
	if c.Token != "" && strings.ContainsAny(c.Token.Value(), " \t\r\n") {
		errs = append(errs, bridge.FieldError("token", "the token contains white space (a stray newline in the variable?)"))
	}
	if c.WebhookURL != "" {
		// The URL is a secret: say what is wrong, never what it is.
		u, err := url.Parse(c.WebhookURL.Value())
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, bridge.FieldError("webhook_url", "not an http(s) URL (expected https://hooks.slack.com/services/...)"))
		}
	}
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, bridge.FieldErrorf("api_url", "%q is not an http(s) URL", c.APIURL))
	} else if !strings.HasSuffix(c.APIURL, "/") {
		c.APIURL += "/"
	}
	if c.WebhookURL != "" && c.APIURL != DefaultAPIURL {
		errs = append(errs, bridge.FieldError("api_url", "api_url is used only with token; a webhook sink posts to webhook_url"))
	}
	if c.RateLimit.RPS <= 0 {
		errs = append(errs, bridge.FieldError("rate_limit.rps", "must be more than 0 messages per second"))
	}
	if c.RateLimit.Burst < 1 {
		errs = append(errs, bridge.FieldError("rate_limit.burst", "must be at least 1"))
	}
	return errors.Join(errs...)
}

// webhook reports whether the sink posts to an incoming webhook.
func (c *Config) webhook() bool { return c.WebhookURL != "" }

// Action is what a rule asks of a slack sink. Every field is a template,
// rendered per event before the sink sees it.
type Action struct {
	// Channel is a channel ID (C0123...) or name (#secops); with a bot token
	// it is required unless the sink has a default channel. Webhooks created
	// by Slack apps ignore it.
	Channel string `yaml:"channel" json:"channel"`
	// Text is the message's notification line (also shown under the header
	// unless it only repeats the event's title).
	Text string `yaml:"text" json:"text"`
	// ThreadBy is a key: messages with the same key after the first go into
	// the first one's thread. It needs a bot token. An empty key (after
	// rendering) posts a message of its own.
	ThreadBy string `yaml:"thread_by" json:"thread_by"`
	// Blocks replaces the default Block Kit blocks: it must render to a
	// JSON array of blocks. '[]' sends the text alone.
	Blocks string `yaml:"blocks" json:"blocks"`
}

// Validate checks what can be checked before rendering.
func (a *Action) Validate(sc bridge.SinkConfig) error {
	cfg, _ := sc.(*Config)
	var errs []error
	if strings.TrimSpace(a.Text) == "" {
		errs = append(errs, bridge.FieldError("text", "text is required (the message's notification line)"))
	}
	if cfg != nil && !cfg.webhook() && strings.TrimSpace(a.Channel) == "" && cfg.Channel == "" {
		errs = append(errs, bridge.FieldError("channel", "channel is required with a bot token (or set channel on the sink)"))
	}
	if cfg != nil && cfg.webhook() && strings.TrimSpace(a.ThreadBy) != "" {
		errs = append(errs, bridge.FieldError("thread_by", "threads need a bot token: an incoming webhook does not return the message's ts"))
	}
	if b := strings.TrimSpace(a.Blocks); b != "" && !strings.Contains(b, "{{") {
		if _, err := parseBlocks(b); err != nil {
			errs = append(errs, bridge.FieldError("blocks", err.Error()))
		}
	}
	return errors.Join(errs...)
}
