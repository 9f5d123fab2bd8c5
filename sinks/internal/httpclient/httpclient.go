// Package httpclient is what the HTTP sinks share around one request: the
// client they keep, the User-Agent, reading and closing the answer, and
// keeping secrets and URLs out of error texts and logs.
package httpclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"bridge/bridge"
	"bridge/sinks/internal/tlsconf"
)

// Limits on what is read from an answer and kept of it.
const (
	// MaxAnswerBytes is how much of an answer's body is read for its text.
	MaxAnswerBytes = 64 << 10
	// maxDrainBytes is how much more is read and dropped so that the
	// connection can be reused; a longer body closes it.
	maxDrainBytes = 1 << 20
	// MaxMessageLen is how many runes of an answer's text TrimText keeps.
	MaxMessageLen = 512
	// maxIdleConnsPerHost lets concurrent batches to one collector reuse
	// their connections.
	maxIdleConnsPerHost = 16
)

// Client is the one HTTP client a sink keeps, built in its New and reused by
// every request. It sets the User-Agent and never follows a redirect: a
// redirect would lose the body or the credentials, so it is reported as the
// answer it is.
type Client struct {
	hc *http.Client
	ua string
}

// New returns the Client of a sink. It verifies servers as the sink's tls
// section says, with Go's defaults when the section is empty; building it
// reads the section's files and warns when verification is off (see
// tlsconf.Config.Build; sink names the sink type and shownURL is the URL as
// logs may show it). The User-Agent carries env.Version.
func New(t tlsconf.Config, env bridge.SinkEnv, sink, shownURL string) (*Client, error) {
	var tc *tls.Config
	if !t.IsZero() {
		var err error
		if tc, err = t.Build(env, sink, slog.String("url", shownURL)); err != nil {
			return nil, err
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.MaxIdleConnsPerHost = maxIdleConnsPerHost
	return &Client{
		hc: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		ua: UserAgent(env.Version),
	}, nil
}

// UserAgent is the User-Agent of the bridge at version: "bridge/1.2.3", or
// "bridge" when the version is unknown.
func UserAgent(version string) string {
	if version == "" {
		return "bridge"
	}
	return "bridge/" + version
}

// Answer is what came back for a request: its status, its header and at
// most MaxAnswerBytes of its body.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Post sends body to rawURL with header, which becomes the request's own
// (the caller must not use it afterwards), and the User-Agent. The answer's
// body is read up to MaxAnswerBytes, drained and closed, so the connection
// can be reused. A request that cannot be built fails permanently; a
// request that got no answer fails with the transport's error, without the
// URL, which may carry credentials in its query.
func (c *Client) Post(ctx context.Context, rawURL string, header http.Header, body []byte) (Answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return Answer{}, bridge.Permanent(fmt.Errorf("build request: %w", err))
	}
	if header != nil {
		req.Header = header
	}
	req.Header.Set("User-Agent", c.ua)
	resp, err := c.hc.Do(req)
	if err != nil {
		return Answer{}, fmt.Errorf("post: %w", StripURL(err))
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes))
	_ = resp.Body.Close()
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// CloseIdleConnections closes the connections no request is using.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Redact replaces every occurrence of each non-empty secret in b with
// "<secret>", so that an answer echoing a credential does not leak it into
// an error.
func Redact(b []byte, secrets ...string) []byte {
	for _, s := range secrets {
		if s != "" {
			b = bytes.ReplaceAll(b, []byte(s), []byte(bridge.Secret(s).String()))
		}
	}
	return b
}

// TrimText makes an answer's body fit an error: valid UTF-8, every secret
// replaced by "<secret>", one line, cut to MaxMessageLen runes.
func TrimText(b []byte, secrets ...string) string {
	t := strings.ToValidUTF8(string(b), "\uFFFD")
	for _, s := range secrets {
		if s != "" {
			t = strings.ReplaceAll(t, s, bridge.Secret(s).String())
		}
	}
	t = strings.Join(strings.Fields(t), " ")
	if utf8.RuneCountInString(t) > MaxMessageLen {
		r := []rune(t)
		t = string(r[:MaxMessageLen]) + "…"
	}
	return t
}

// CheckURL checks that s is an absolute http or https URL with a host. Its
// messages are written to follow the key's name in a config problem.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("is not a URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return errors.New("must start with https:// or http://")
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}

// StripURL drops the URL from a client error: the error says what went
// wrong, and a URL may carry credentials in its query.
func StripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// RedactURL returns raw with its user info and query values hidden, for
// logs and dry runs.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	var b strings.Builder
	b.WriteString(u.Scheme + "://")
	if u.User != nil {
		b.WriteString("<secret>@")
	}
	b.WriteString(u.Host + u.EscapedPath())
	if u.RawQuery != "" {
		keys := make([]string, 0, len(u.Query()))
		for k := range u.Query() {
			keys = append(keys, k+"=<secret>")
		}
		sort.Strings(keys)
		b.WriteString("?" + strings.Join(keys, "&"))
	}
	return b.String()
}

// Split cuts items into runs that each fit one request body of at most max
// bytes: overhead bytes for the body's framing (2 for a JSON array's
// brackets) and, per item, its size plus one byte for a separator. An item
// too large for any body goes alone, for the server to refuse on its own.
func Split[T any](items []T, max, overhead int, size func(T) int) [][]T {
	var out [][]T
	start, total := 0, overhead
	for i, it := range items {
		n := size(it) + 1
		if i > start && total+n > max {
			out = append(out, items[start:i])
			start, total = i, overhead
		}
		total += n
	}
	if start < len(items) {
		out = append(out, items[start:])
	}
	return out
}
