package httpsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"bridge/bridge"
)

// Limits on what is read from an answer.
const (
	maxAnswerBytes = 64 << 10 // read for the error text
	maxDrainBytes  = 1 << 20  // drained so the connection can be reused
	maxMessageLen  = 512      // runes of the answer kept in an error
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
	ua      string
	client  *http.Client
	log     *slog.Logger
}

var _ bridge.BatchSink = (*Sink)(nil)
var _ bridge.DryRunner = (*Sink)(nil)

// New builds an http sink from its validated config.
func New(cfg *Config, env bridge.SinkEnv) (*Sink, error) {
	tc, err := cfg.TLS.build(env.Path)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.MaxIdleConnsPerHost = 16
	s := &Sink{
		cfg:     cfg,
		url:     cfg.URL,
		shown:   redactURL(cfg.URL),
		headers: http.Header{},
		ua:      userAgent(env.Version),
		client: &http.Client{
			Transport: tr,
			// A redirect would drop the body or the headers: report it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log: log,
	}
	for k, v := range cfg.Headers {
		s.headers.Set(k, v.Value())
		if len(v.Value()) >= 4 {
			s.secrets = append(s.secrets, v.Value())
		}
	}
	if cfg.TLS.InsecureSkipVerify {
		log.Warn("http: TLS certificate verification is off (tls.insecure_skip_verify); anyone on the path can read the events and the headers", "url", s.shown)
	}
	return s, nil
}

func userAgent(version string) string {
	if version == "" {
		return "bridge"
	}
	return "bridge/" + version
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
		chunks = append(chunks, split(g, s.cfg.BatchBytes)...)
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

// split cuts items into runs whose bodies add up to at most max bytes; an
// item larger than max goes alone.
func split(items []item, max int) [][]item {
	var out [][]item
	start, size := 0, 2
	for i, it := range items {
		n := len(it.body) + 1
		if i > start && size+n > max {
			out = append(out, items[start:i])
			start, size = i, 2
		}
		size += n
	}
	if start < len(items) {
		out = append(out, items[start:])
	}
	return out
}

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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(s.body(items)))
	if err != nil {
		return 0, bridge.Permanent(fmt.Errorf("http: build request: %w", err))
	}
	req.Header = s.headers.Clone()
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", contentType(items[0].format))
	}
	req.Header.Set("User-Agent", s.ua)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("http: post: %w", stripURL(err))
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes))
	_ = resp.Body.Close()
	if err := bridge.HTTPStatusError(resp.StatusCode, resp.Header, s.trimText(answer)); err != nil {
		return resp.StatusCode, fmt.Errorf("http: %w", err)
	}
	return resp.StatusCode, nil
}

func contentType(format string) string {
	if format == FormatNDJSON {
		return "application/x-ndjson"
	}
	return "application/json"
}

// trimText makes an answer body fit an error: valid UTF-8, one line, cut to
// maxMessageLen runes, and no header value in it.
func (s *Sink) trimText(b []byte) string {
	t := strings.ToValidUTF8(string(b), "\uFFFD")
	for _, v := range s.secrets {
		t = strings.ReplaceAll(t, v, bridge.Secret(v).String())
	}
	t = strings.Join(strings.Fields(t), " ")
	if utf8.RuneCountInString(t) > maxMessageLen {
		r := []rune(t)
		t = string(r[:maxMessageLen]) + "…"
	}
	return t
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

// stripURL drops the URL from a client error: the error says what went
// wrong, and a URL may carry credentials in its query.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redactURL returns u with user info and query values hidden, for logs
// and dry runs.
func redactURL(raw string) string {
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
