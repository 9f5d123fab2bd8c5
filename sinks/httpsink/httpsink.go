package httpsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"bridge/bridge"
	"bridge/sinks/internal/httpclient"
)

// Sink POSTs events to a URL. It implements bridge.Sink, bridge.BatchSink
// and bridge.DryRunner.
//
// Answers are classified by bridge.HTTPStatusError: 2xx delivered; 408, 429
// and 5xx retried, honouring Retry-After; any other status fails at once,
// with the answer's body (trimmed) in the error. With batch on, a batch is
// sent in as few requests as batch_bytes allows, grouped by format; a 413
// answer halves the request until it fits.
type Sink struct {
	cfg     *Config
	url     string
	shown   string // the URL as dry runs show it
	headers http.Header
	secrets []string // header values, kept out of error texts
	client  *httpclient.Client
	log     *slog.Logger
}

var _ bridge.BatchSink = (*Sink)(nil)
var _ bridge.DryRunner = (*Sink)(nil)

// New builds an http sink from its validated config.
func New(cfg *Config, env bridge.SinkEnv) (*Sink, error) {
	shown := httpclient.RedactURL(cfg.URL)
	client, err := httpclient.New(cfg.TLS, env, "http", shown)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	log := env.Log()
	s := &Sink{
		cfg:     cfg,
		url:     cfg.URL,
		shown:   shown,
		headers: http.Header{},
		client:  client,
		log:     log,
	}
	for k, v := range cfg.Headers {
		s.headers.Set(k, v.Value())
		if len(v.Value()) >= 4 {
			s.secrets = append(s.secrets, v.Value())
		}
	}
	return s, nil
}

// BatchLimits returns batch_size and batch_wait with batch on, else one
// delivery at a time without waiting.
func (s *Sink) BatchLimits() (int, time.Duration) {
	if !s.cfg.Batch {
		return 1, 0
	}
	return s.cfg.BatchSize, s.cfg.BatchWait.D()
}

// Send POSTs one event (with batch on, as an array of one). Its result is
// empty.
func (s *Sink) Send(ctx context.Context, d *bridge.Delivery) (string, error) {
	return "", s.SendBatch(ctx, []*bridge.Delivery{d})[0]
}

// item is one encoded event and the delivery it carries.
type item struct {
	pos    int
	format string
	body   []byte
}

// SendBatch sends every delivery of ds and returns one error per delivery.
func (s *Sink) SendBatch(ctx context.Context, ds []*bridge.Delivery) []error {
	errs := make([]error, len(ds))
	var groups [2][]item // json, ndjson: each its own requests
	for i, d := range ds {
		it, err := s.encode(i, d)
		if err != nil {
			errs[i] = err
			continue
		}
		g := 0
		if it.format == FormatNDJSON {
			g = 1
		}
		groups[g] = append(groups[g], it)
	}
	var chunks [][]item
	for _, g := range groups {
		if !s.cfg.Batch {
			for _, it := range g {
				chunks = append(chunks, []item{it})
			}
			continue
		}
		// Two bytes for a JSON array's brackets, counted for ndjson too.
		chunks = append(chunks, httpclient.Split(g, s.cfg.BatchBytes, 2, bodySize)...)
	}
	for n, chunk := range chunks {
		if err := s.sendChunk(ctx, chunk, errs); err != nil {
			// The server is busy or unreachable: do not press the rest on
			// it now; the pipeline retries them after a backoff.
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

// bodySize is the size of an item's encoded event.
func bodySize(it item) int { return len(it.body) }

// sendChunk posts items in one request and records each item's outcome in
// errs. It returns the error when it was retryable, so the caller can hold
// back the rest of the batch.
func (s *Sink) sendChunk(ctx context.Context, items []item, errs []error) error {
	status, err := s.post(ctx, items)
	if err == nil {
		return nil
	}
	if status == http.StatusRequestEntityTooLarge && len(items) > 1 {
		half := len(items) / 2
		if err := s.sendChunk(ctx, items[:half], errs); err != nil {
			for _, it := range items[half:] {
				errs[it.pos] = err
			}
			return err
		}
		return s.sendChunk(ctx, items[half:], errs)
	}
	for _, it := range items {
		errs[it.pos] = err
	}
	if bridge.IsPermanent(err) {
		return nil
	}
	return err
}

// body builds a request body from items, all of one format.
func (s *Sink) body(items []item) []byte {
	size := 2
	for _, it := range items {
		size += len(it.body) + 1
	}
	b := make([]byte, 0, size)
	switch {
	case items[0].format == FormatNDJSON:
		for _, it := range items {
			b = append(b, it.body...)
			b = append(b, '\n')
		}
	case s.cfg.Batch:
		b = append(b, '[')
		for i, it := range items {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, it.body...)
		}
		b = append(b, ']')
	default:
		b = append(b, items[0].body...)
	}
	return b
}

// post sends items in one request and returns the HTTP status (0 when no
// answer came) and the classified error.
func (s *Sink) post(ctx context.Context, items []item) (int, error) {
	header := s.headers.Clone()
	if header.Get("Content-Type") == "" {
		header.Set("Content-Type", contentType(items[0].format))
	}
	a, err := s.client.Post(ctx, s.url, header, s.body(items))
	if err != nil {
		return 0, fmt.Errorf("http: %w", err)
	}
	// Keep the header values out of the error even if an answer echoes them.
	if err := bridge.HTTPStatusError(a.Status, a.Header, httpclient.TrimText(a.Body, s.secrets...)); err != nil {
		return a.Status, fmt.Errorf("http: %w", err)
	}
	return a.Status, nil
}

func contentType(format string) string {
	if format == FormatNDJSON {
		return "application/x-ndjson"
	}
	return "application/json"
}

// encode builds the JSON object of one delivery.
func (s *Sink) encode(pos int, d *bridge.Delivery) (item, error) {
	if d == nil || d.Event == nil {
		return item{}, bridge.Permanent(errors.New("http: delivery has no event"))
	}
	var a Action
	if err := d.DecodeAction(&a); err != nil {
		return item{}, fmt.Errorf("http: action: %w", err)
	}
	format := s.cfg.Format
	if a.Format != "" {
		if !validFormat(a.Format) {
			return item{}, bridge.Permanent(fmt.Errorf("http: format %q is not json or ndjson", a.Format))
		}
		format = a.Format
	}
	b, err := d.Event.MarshalJSON() // what json.Marshal(d.Event) gives, without its second pass
	if err != nil {
		return item{}, bridge.Permanent(fmt.Errorf("http: encode event %s: %w", d.Event.ID, err))
	}
	return item{pos: pos, format: format, body: b}, nil
}

// DryRun returns the request Send would make, with header values hidden.
func (s *Sink) DryRun(_ context.Context, d *bridge.Delivery) (string, error) {
	it, err := s.encode(0, d)
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(s.headers)+1)
	for k := range s.headers {
		names = append(names, k+": <secret>")
	}
	if s.headers.Get("Content-Type") == "" {
		names = append(names, "Content-Type: "+contentType(it.format))
	}
	sort.Strings(names)
	return fmt.Sprintf("POST %s %s %s", s.shown, strings.Join(names, " "), s.body([]item{it})), nil
}

// Close closes idle connections; no request is in flight by then.
func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}
