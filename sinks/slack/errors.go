package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	slackgo "github.com/slack-go/slack"

	"bridge/bridge"
)

// Retryable reports whether Slack's ok:false error code is worth another
// attempt. Every code not known to be transient means the request or the
// configuration is wrong (a bad token, an unknown or archived channel, a
// refused payload) and fails the delivery at once.
func Retryable(code string) bool {
	switch code {
	case "ratelimited", "rate_limited", "internal_error", "fatal_error",
		"service_unavailable", "request_timeout", "team_added_to_org":
		return true
	}
	return false
}

// answer is what the HTTP layer saw of Slack's answer to one call: slack-go
// throws away the status, headers and body of a non-200 answer, and reads a
// Retry-After only when it is a number of seconds.
type answer struct {
	status int
	header http.Header
	body   string // for non-200 answers, the start of the body
}

type answerKey struct{}

// recordAnswer makes the HTTP client note Slack's answer to calls made with
// the returned context.
func recordAnswer(ctx context.Context) (context.Context, *answer) {
	a := &answer{}
	return context.WithValue(ctx, answerKey{}, a), a
}

// httpDoer is the client slack-go calls: it sets the User-Agent and notes
// each answer for recordAnswer.
type httpDoer struct {
	client    *http.Client
	userAgent string
}

// Do sends req and, for a non-200 answer, keeps the start of its body.
func (h *httpDoer) Do(req *http.Request) (*http.Response, error) {
	req.Header.Set("User-Agent", h.userAgent)
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	if a, ok := req.Context().Value(answerKey{}).(*answer); ok {
		a.status, a.header = resp.StatusCode, resp.Header
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			a.body = string(b)
			resp.Body = io.NopCloser(strings.NewReader(a.body))
		}
	}
	return resp, nil
}

// classify turns what slack-go returned for one call into a bridge error:
// Slack's code verbatim (`slack: chat.postMessage: channel_not_found`),
// Permanent for codes no retry can fix and for 4xx answers, RetryAfter when
// Slack said when to come back.
func classify(method string, err error, a *answer) error {
	if err == nil {
		return nil
	}
	var se slackgo.SlackErrorResponse
	if errors.As(err, &se) {
		e := &apiError{method: method, code: se.Err, needed: se.Needed, provided: se.Provided}
		if !Retryable(se.Err) {
			return bridge.Permanent(e)
		}
		if a.header != nil {
			if d, ok := bridge.ParseRetryAfter(a.header.Get("Retry-After"), time.Now()); ok {
				return bridge.RetryAfter(e, d)
			}
		}
		return e
	}
	if a.status != 0 && a.status != http.StatusOK {
		return fmt.Errorf("slack: %s: %w", method, bridge.HTTPStatusError(a.status, a.header, errorText(a.body)))
	}
	return fmt.Errorf("slack: %s: %w", method, cleanErr(err))
}

// apiError is Slack's ok:false answer to a Web API call.
type apiError struct {
	method, code     string
	needed, provided string // scope diagnostics of missing_scope
}

func (e *apiError) Error() string {
	msg := "slack: " + e.method + ": " + e.code
	if e.needed != "" {
		msg += fmt.Sprintf(" (needed: %s, provided: %s)", e.needed, e.provided)
	}
	return msg
}

// errorText picks Slack's message out of an error body: the `error` of a
// JSON answer, or a short plain-text body (webhooks answer `no_service`).
// HTML pages are dropped.
func errorText(body string) string {
	body = strings.TrimSpace(body)
	var v struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(body), &v) == nil {
		return v.Error
	}
	if body == "" || strings.HasPrefix(body, "<") || strings.ContainsAny(body, "\n") {
		return ""
	}
	return cut(body, 200)
}

// cleanErr drops the URL from a transport error: a webhook URL is a secret.
func cleanErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

// retryDelay returns the wait a classified error asks for, if any.
func retryDelay(err error) (time.Duration, bool) {
	if err == nil || bridge.IsPermanent(err) {
		return 0, false
	}
	return bridge.RetryDelay(err)
}
