package splunk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"bridge/bridge"
	"bridge/sinks/internal/httpclient"
)

// maxResends bounds how many times one SendBatch resends the rest of a
// request after Splunk refused one of its events.
const maxResends = 8

// codeIncorrectIndex is Splunk's answer code for an index the token may not
// write to.
const codeIncorrectIndex = 7

// Sink sends events to a Splunk HTTP Event Collector. It implements
// bridge.Sink, bridge.BatchSink and bridge.DryRunner.
//
// A batch is sent as concatenated envelopes, split into requests of at most
// batch_bytes. When Splunk refuses a request because of one event (its
// answer names the "invalid-event-number"), that event fails permanently
// with Splunk's text, and the other events of the request are sent again at
// once in a new request: Splunk does not say whether the events before the
// refused one were indexed, so they are resent rather than risk losing them
// (the event id lets a search drop the rare duplicate). For code 7
// (Incorrect index) every event of the request bound for the same index
// fails with it, since the index, not the event, is what Splunk refused.
type Sink struct {
	cfg      *Config
	endpoint string
	shown    string // the endpoint as logs and dry runs show it
	auth     string
	host     string
	client   *httpclient.Client
	log      *slog.Logger
}

var _ bridge.BatchSink = (*Sink)(nil)
var _ bridge.DryRunner = (*Sink)(nil)

// New builds a splunk_hec sink from its validated config.
func New(cfg *Config, env bridge.SinkEnv) (*Sink, error) {
	endpoint := cfg.endpoint()
	shown := httpclient.RedactURL(endpoint)
	client, err := httpclient.New(cfg.TLS, env, "splunk_hec", shown)
	if err != nil {
		return nil, fmt.Errorf("splunk_hec: %w", err)
	}
	log := env.Log()
	host := cfg.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	return &Sink{
		cfg:      cfg,
		endpoint: endpoint,
		shown:    shown,
		auth:     "Splunk " + cfg.Token.Value(),
		host:     host,
		client:   client,
		log:      log,
	}, nil
}

// BatchLimits returns batch_size and batch_wait.
func (s *Sink) BatchLimits() (int, time.Duration) {
	return s.cfg.BatchSize, s.cfg.BatchWait.D()
}

// Send sends one event. Its result is empty: without indexer
// acknowledgment Splunk returns nothing worth keeping.
func (s *Sink) Send(ctx context.Context, d *bridge.Delivery) (string, error) {
	return "", s.SendBatch(ctx, []*bridge.Delivery{d})[0]
}

// SendBatch sends every delivery of ds, in as few requests as batch_bytes
// allows, and returns one error per delivery.
func (s *Sink) SendBatch(ctx context.Context, ds []*bridge.Delivery) []error {
	errs := make([]error, len(ds))
	items := make([]item, 0, len(ds))
	for i, d := range ds {
		body, index, err := s.encode(d)
		if err != nil {
			errs[i] = err
			continue
		}
		items = append(items, item{pos: i, index: index, body: body})
	}
	budget := maxResends
	chunks := httpclient.Split(items, s.cfg.BatchBytes, 0, bodySize)
	for n, chunk := range chunks {
		if err := s.sendChunk(ctx, chunk, errs, &budget); err != nil {
			// Splunk is busy or unreachable: do not press the rest of the
			// batch on it now; the pipeline retries them after a backoff.
			for _, rest := range chunks[n+1:] {
				for _, it := range rest {
					errs[it.pos] = err
				}
			}
			break
		}
	}
	return errs
}

// item is one encoded envelope and the delivery it carries.
type item struct {
	pos   int    // the delivery's position in the batch
	index string // the envelope's index ("" for the token's default)
	body  []byte
}

// bodySize is the size of an item's envelope.
func bodySize(it item) int { return len(it.body) }

// sendChunk posts items in one request and records each item's outcome in
// errs. It returns the error when it was retryable (nothing was refused on
// its merits), so the caller can hold back the rest of the batch.
func (s *Sink) sendChunk(ctx context.Context, items []item, errs []error, budget *int) error {
	for len(items) > 0 {
		status, invalid, err := s.post(ctx, items)
		if err == nil {
			return nil
		}
		switch {
		case status == http.StatusRequestEntityTooLarge && len(items) > 1:
			// The collector's max_content_length is below batch_bytes:
			// halve the request until it fits.
			half := len(items) / 2
			if err := s.sendChunk(ctx, items[:half], errs, budget); err != nil {
				for _, it := range items[half:] {
					errs[it.pos] = err
				}
				return err
			}
			return s.sendChunk(ctx, items[half:], errs, budget)
		case bridge.IsPermanent(err) && invalid >= 0 && invalid < len(items):
			bad := items[invalid]
			rest := items[:0:0]
			for i, it := range items {
				if i == invalid || (errCode(err) == codeIncorrectIndex && it.index == bad.index) {
					errs[it.pos] = err
					continue
				}
				rest = append(rest, it)
			}
			if len(rest) > 0 && *budget <= 0 {
				for _, it := range rest {
					errs[it.pos] = errors.New("splunk_hec: not resent: too many events of this batch were refused; resending on the next attempt")
				}
				return nil
			}
			*budget--
			items = rest
		default:
			for _, it := range items {
				errs[it.pos] = err
			}
			if bridge.IsPermanent(err) {
				return nil
			}
			return err
		}
	}
	return nil
}

// post sends items in one request. It returns the HTTP status (0 when no
// answer came), the invalid-event-number of Splunk's answer (-1 when there
// is none) and the classified error.
func (s *Sink) post(ctx context.Context, items []item) (status, invalid int, err error) {
	size := 0
	for _, it := range items {
		size += len(it.body) + 1
	}
	body := make([]byte, 0, size)
	for _, it := range items {
		body = append(body, it.body...)
		body = append(body, '\n')
	}
	header := http.Header{"Content-Type": {"application/json"}}
	if s.cfg.Token != "" {
		header.Set("Authorization", s.auth)
	}
	a, err := s.client.Post(ctx, s.endpoint, header, body)
	if err != nil {
		return 0, -1, fmt.Errorf("splunk_hec: %w", err)
	}
	// Keep the token out of the error even if an answer echoes it.
	answer := httpclient.Redact(a.Body, s.cfg.Token.Value())
	invalid, err = answerError(a.Status, a.Header, answer)
	return a.Status, invalid, err
}

// hecAnswer is the JSON body of every HEC answer.
type hecAnswer struct {
	Text         string `json:"text"`
	Code         *int   `json:"code"`
	InvalidEvent *int   `json:"invalid-event-number"`
}

// codeError keeps Splunk's answer code with the error, for the few
// decisions that depend on it.
type codeError struct {
	err  error
	code int
}

// Error returns the wrapped error's text.
func (e *codeError) Error() string { return e.err.Error() }

// Unwrap returns the wrapped error.
func (e *codeError) Unwrap() error { return e.err }

// errCode returns the Splunk answer code carried by err, or -1.
func errCode(err error) int {
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	return -1
}

// answerError maps an HEC answer to an error: nil for 2xx; retryable for
// 408, 429 and 5xx (503 "Server is busy", code 9, among them), honouring
// Retry-After; permanent for every other status (401 and 403 bad token,
// 400 bad index or bad data). Splunk's text and code are kept word for
// word: "splunk_hec: HTTP 400: Incorrect index (code 7)". It also returns
// the answer's invalid-event-number, or -1.
func answerError(status int, header http.Header, body []byte) (int, error) {
	if status >= 200 && status < 300 {
		return -1, nil
	}
	var a hecAnswer
	msg := ""
	code, invalid := -1, -1
	if json.Unmarshal(body, &a) == nil && a.Code != nil {
		code = *a.Code
		msg = fmt.Sprintf("%s (code %d)", a.Text, code)
		if a.InvalidEvent != nil {
			invalid = *a.InvalidEvent
		}
	} else {
		msg = httpclient.TrimText(body)
	}
	err := fmt.Errorf("splunk_hec: %w", bridge.HTTPStatusError(status, header, msg))
	if code >= 0 {
		err = &codeError{err: err, code: code}
	}
	return invalid, err
}

// encode builds the envelope of one delivery and returns it with its index.
func (s *Sink) encode(d *bridge.Delivery) ([]byte, string, error) {
	if d == nil || d.Event == nil {
		return nil, "", bridge.Permanent(errors.New("splunk_hec: delivery has no event"))
	}
	var a Action
	if err := d.DecodeAction(&a); err != nil {
		return nil, "", fmt.Errorf("splunk_hec: action: %w", err)
	}
	if a.Format != "" && a.Format != FormatJSON {
		return nil, "", bridge.Permanent(fmt.Errorf("splunk_hec: format %q is not supported (only json)", a.Format))
	}
	ev, err := d.Event.MarshalJSON() // what json.Marshal(d.Event) gives, without its second pass
	if err != nil {
		return nil, "", bridge.Permanent(fmt.Errorf("splunk_hec: encode event %s: %w", d.Event.ID, err))
	}
	index := s.cfg.Index
	if a.Index != "" {
		index = a.Index
	}
	sourcetype := s.cfg.Sourcetype
	if a.Sourcetype != "" {
		sourcetype = a.Sourcetype
	}
	b := make([]byte, 0, len(ev)+160)
	b = append(b, '{')
	if t := envelopeTime(d.Event); t != "" {
		b = append(b, `"time":`...)
		b = append(b, t...)
		b = append(b, ',')
	}
	if s.host != "" {
		b = appendField(b, "host", s.host)
	}
	b = appendField(b, "source", "bridge:"+d.Event.Source)
	if sourcetype != "" {
		b = appendField(b, "sourcetype", sourcetype)
	}
	if index != "" {
		b = appendField(b, "index", index)
	}
	b = append(b, `"event":`...)
	b = append(b, ev...)
	b = append(b, '}')
	return b, index, nil
}

// appendField appends "key":"value", to b.
func appendField(b []byte, key, value string) []byte {
	v, _ := json.Marshal(value) // a string always marshals
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, `":`...)
	b = append(b, v...)
	return append(b, ',')
}

// envelopeTime is the event's time (the vendor's timestamp) as epoch
// seconds with milliseconds, falling back to when it was received.
func envelopeTime(ev *bridge.Event) string {
	t := ev.Time
	if t.IsZero() {
		t = ev.Received
	}
	if t.IsZero() {
		return ""
	}
	ms := t.UnixMilli()
	if ms < 0 {
		return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)
	}
	if ms%1000 == 0 {
		return strconv.FormatInt(ms/1000, 10)
	}
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
}

// DryRun returns the request Send would make, with the token hidden.
func (s *Sink) DryRun(_ context.Context, d *bridge.Delivery) (string, error) {
	body, _, err := s.encode(d)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("POST %s Authorization: Splunk %s %s", s.shown, s.cfg.Token, body), nil
}

// Close closes idle connections; no request is in flight by then.
func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}
