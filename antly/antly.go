// Package antly manages Antly webhook subscriptions (SPEC 4.3): it sends the
// subscribeToWebhook and unsubscribeFromWebhook JQL queries of the vendor's
// documentation to the Antly API.
package antly

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"bridge/bridge"
)

// The intents of the system.Webhook controller.
const (
	IntentSubscribe   = "subscribeToWebhook"
	IntentUnsubscribe = "unsubscribeFromWebhook"
)

// maxErrorBody is how much of an error answer is kept in the error.
const maxErrorBody = 2048

// Client sends subscription queries to Antly. The zero value is usable.
type Client struct {
	// HTTP is the client requests go through; nil means http.DefaultClient.
	// Set one with a Timeout, or give each call a context with a deadline.
	HTTP *http.Client
}

// meta is the __meta__ object of a JQL query.
type meta struct {
	Namespace           string `json:"namespace"`
	Schema              string `json:"schema"`
	Intent              string `json:"intent"`
	AuthenticationClass string `json:"authenticationClass"`
	AuthenticationToken string `json:"authenticationToken"`
}

// webhookQuery is a subscribe or unsubscribe query, in the documented order.
type webhookQuery struct {
	Meta       meta   `json:"__meta__"`
	Prefix     string `json:"prefix"`
	Trigger    string `json:"trigger"`
	WebhookURL string `json:"webhookUrl"`
}

// Subscribe asks Antly to post trigger's events (e.g. profile.Customer:create)
// to cfg.WebhookURL.
func (c *Client) Subscribe(ctx context.Context, cfg bridge.AntlyConfig, trigger string) error {
	if err := c.send(ctx, cfg, IntentSubscribe, trigger); err != nil {
		return fmt.Errorf("antly: subscribe %s: %w", trigger, err)
	}
	return nil
}

// Unsubscribe asks Antly to stop posting trigger's events to cfg.WebhookURL.
func (c *Client) Unsubscribe(ctx context.Context, cfg bridge.AntlyConfig, trigger string) error {
	if err := c.send(ctx, cfg, IntentUnsubscribe, trigger); err != nil {
		return fmt.Errorf("antly: unsubscribe %s: %w", trigger, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, cfg bridge.AntlyConfig, intent, trigger string) error {
	switch {
	case cfg.APIURL == "":
		return errors.New("no api_url configured")
	case cfg.AccessToken == "":
		return errors.New("no access_token configured")
	case cfg.WebhookURL == "":
		return errors.New("no webhook_url configured")
	case strings.TrimSpace(trigger) == "":
		return errors.New("empty trigger")
	}
	body, err := json.Marshal(webhookQuery{
		Meta: meta{
			Namespace:           "system.Webhook",
			Schema:              "controller",
			Intent:              intent,
			AuthenticationClass: "oauth2",
			AuthenticationToken: cfg.AccessToken.Value(),
		},
		Prefix:     cfg.Prefix,
		Trigger:    trigger,
		WebhookURL: cfg.WebhookURL,
	})
	if err != nil {
		return fmt.Errorf("encode query: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.APIURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "bridge")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return redact(err, cfg.AccessToken)
	}
	defer resp.Body.Close()
	answer, readErr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
	_, _ = io.Copy(io.Discard, resp.Body)
	text := answerText(answer, cfg.AccessToken)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if text == "" {
			return fmt.Errorf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, text)
	}
	if readErr != nil {
		return fmt.Errorf("read answer: %w", readErr)
	}
	if answerError(answer) {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, text)
	}
	return nil
}

// answerText trims an answer for an error message, cuts it to maxErrorBody
// bytes and blanks the access token should Antly echo the query back.
func answerText(b []byte, token bridge.Secret) string {
	cut := len(b) > maxErrorBody
	if cut {
		b = b[:maxErrorBody]
	}
	s := strings.ToValidUTF8(strings.TrimSpace(string(b)), "")
	if token != "" {
		s = strings.ReplaceAll(s, token.Value(), "<secret>")
	}
	if cut {
		s += "…"
	}
	return s
}

// answerError reports whether a 2xx answer still carries an error: a JSON
// object whose "error" is a non-empty string or an object, or whose "errors"
// is a non-empty list. Query APIs often report failures that way.
func answerError(b []byte) bool {
	var v map[string]any
	if json.Unmarshal(b, &v) != nil {
		return false
	}
	switch e := v["error"].(type) {
	case string:
		if strings.TrimSpace(e) != "" {
			return true
		}
	case map[string]any:
		if len(e) > 0 {
			return true
		}
	}
	list, _ := v["errors"].([]any)
	return len(list) > 0
}

// redact keeps the access token out of a transport error (a URL with the
// token in it, a proxy's echo).
func redact(err error, token bridge.Secret) error {
	if token == "" || !strings.Contains(err.Error(), token.Value()) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), token.Value(), "<secret>"))
}
