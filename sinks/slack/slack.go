package slack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	slackgo "github.com/slack-go/slack"

	"bridge/bridge"
)

// Type describes the slack sink type for the config loader.
func Type() bridge.SinkType {
	return bridge.SinkType{
		NewConfig: func() bridge.SinkConfig { c := DefaultConfig(); return &c },
		NewAction: func() bridge.Action { return &Action{} },
		New:       New,
	}
}

// Sink posts deliveries to Slack. With a bot token the result of a delivery
// is the message's ts; an incoming webhook returns no ts, so a webhook
// sink's result is empty.
type Sink struct {
	cfg     Config
	log     *slog.Logger
	state   bridge.State
	api     *slackgo.Client // nil for a webhook sink
	http    *http.Client
	doer    *httpDoer
	pace    *pacer
	threads bridge.Locker // one first message per thread key at a time; shared across reloads
}

// New builds a slack sink from its validated config.
func New(sc bridge.SinkConfig, env bridge.SinkEnv) (bridge.Sink, error) {
	return newSink(sc, env, time.Now, sleepCtx)
}

func newSink(sc bridge.SinkConfig, env bridge.SinkEnv, now func() time.Time, sleep func(context.Context, time.Duration) error) (*Sink, error) {
	c, ok := sc.(*Config)
	if !ok || c == nil {
		return nil, fmt.Errorf("slack: config is %T, not *slack.Config", sc)
	}
	cfg := *c
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	logger := env.Log()
	timeout := env.Timeout
	if timeout <= 0 {
		timeout = bridge.DefaultSinkTimeout
	}
	version := env.Version
	if version == "" {
		version = "dev"
	}
	hc := &http.Client{Timeout: 2 * timeout}
	s := &Sink{
		cfg:     cfg,
		log:     logger,
		state:   env.State,
		http:    hc,
		doer:    &httpDoer{client: hc, userAgent: "bridge/" + version},
		pace:    newPacer(cfg.RateLimit, now, sleep),
		threads: env.KeyLocks(),
	}
	if !cfg.webhook() {
		s.api = slackgo.New(cfg.Token.Value(), slackgo.OptionHTTPClient(s.doer), slackgo.OptionAPIURL(cfg.APIURL))
	}
	return s, nil
}

// Close releases idle connections.
func (s *Sink) Close(context.Context) error {
	s.http.CloseIdleConnections()
	return nil
}

// message is one Slack message, as the bridge would post it in JSON.
type message struct {
	Channel  string            `json:"channel,omitempty"`
	Text     string            `json:"text"`
	Blocks   []json.RawMessage `json:"blocks,omitempty"`
	ThreadTS string            `json:"thread_ts,omitempty"`

	threadKey string // the state key of the thread, when threaded
}

// compose renders what d asks for into a message, without its thread.
func (s *Sink) compose(d *bridge.Delivery) (*message, error) {
	var a Action
	if err := d.DecodeAction(&a); err != nil {
		return nil, fmt.Errorf("slack: action: %w", err)
	}
	ev := d.Event
	if ev == nil {
		ev = &bridge.Event{}
	}
	m := &message{Channel: strings.TrimSpace(a.Channel), Text: strings.TrimSpace(a.Text)}
	if m.Channel == "" {
		m.Channel = s.cfg.Channel
	}
	if m.Channel == "" && !s.cfg.webhook() {
		return nil, bridge.Permanent(errors.New("slack: no channel: the action's channel rendered empty and the sink has no default channel"))
	}
	if m.Text == "" {
		m.Text = ev.Title
	}
	if m.Text == "" {
		m.Text = ev.Type
	}
	m.Text = cut(m.Text, maxTextRunes)
	if b := strings.TrimSpace(a.Blocks); b != "" {
		blocks, err := parseBlocks(b)
		if err != nil {
			return nil, bridge.Permanent(fmt.Errorf("slack: %w", err))
		}
		m.Blocks = blocks
	} else {
		m.Blocks = defaultBlocks(ev, m.Text)
	}
	if key := strings.TrimSpace(a.ThreadBy); key != "" {
		if s.cfg.webhook() {
			return nil, bridge.Permanent(errors.New("slack: thread_by needs a bot token: an incoming webhook returns no ts to thread on"))
		}
		m.threadKey = threadKey(m.Channel, key)
	}
	return m, nil
}

// threadKey is the state key of a thread: private to the sink, per channel
// and key. The key is hashed, as it may be long.
func threadKey(channel, key string) string {
	sum := sha256.Sum256([]byte(key))
	return "thread/" + channel + "/" + hex.EncodeToString(sum[:16])
}

// Send posts one message. A message with a thread key goes into the thread
// of the first message with that key; the first one's ts is kept in the
// sink's state so threads survive restarts.
func (s *Sink) Send(ctx context.Context, d *bridge.Delivery) (string, error) {
	m, err := s.compose(d)
	if err != nil {
		return "", err
	}
	if s.cfg.webhook() {
		return "", s.postWebhook(ctx, m)
	}
	if m.threadKey == "" {
		ts, _, err := s.post(ctx, m)
		return ts, err
	}
	if s.state == nil {
		return "", bridge.Permanent(errors.New("slack: thread_by: the sink has no state to keep threads in"))
	}

	// One delivery at a time per thread key finds out whether the thread
	// exists, so concurrent deliveries cannot each start a thread.
	unlock, err := s.threads.Lock(ctx, m.threadKey)
	if err != nil {
		return "", fmt.Errorf("slack: waiting for another message of the same thread: %w", err)
	}
	defer unlock()
	parent, ok, err := s.state.Get(ctx, m.threadKey)
	if err != nil {
		return "", fmt.Errorf("slack: thread state: %w", err)
	}
	if ok {
		m.ThreadTS = parent
	}
	ts, threaded, err := s.post(ctx, m)
	var ae *apiError
	if ok && errors.As(err, &ae) && staleThread(ae.code) {
		// The thread's first message is gone: forget it, and let the next
		// attempt start a new thread.
		if derr := s.state.Delete(ctx, m.threadKey); derr != nil {
			return "", fmt.Errorf("%w (and forgetting the thread failed: %v)", ae, derr)
		}
		return "", fmt.Errorf("%w: the thread's first message is gone; the next attempt starts a new thread", ae)
	}
	if err != nil {
		return "", err
	}
	switch {
	case !ok:
		s.remember(ctx, m.threadKey, ts)
	case !threaded:
		// Slack posts a reply to a deleted parent as a message of its own:
		// that message starts the thread from now on.
		s.log.Warn("slack: thread parent is gone, starting a new thread", "channel", m.Channel, "old_ts", parent, "ts", ts)
		s.remember(ctx, m.threadKey, ts)
	}
	return ts, nil
}

// staleThread reports whether Slack's code says a thread_ts no longer
// names a thread's first message.
func staleThread(code string) bool {
	switch code {
	case "invalid_thread_ts", "thread_not_found", "message_not_found":
		return true
	}
	return false
}

// remember stores a thread's first ts. The message is already posted, so a
// failure here is logged, not returned: a retry would post it twice. The
// attempt's deadline may be spent, so the write gets a few seconds of its
// own.
func (s *Sink) remember(ctx context.Context, key, ts string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.state.Put(ctx, key, ts); err != nil {
		s.log.Error("slack: cannot remember the thread's first message; later messages with its key will start a new thread", "ts", ts, "err", err)
	}
}

// post sends m through chat.postMessage, paced per channel. It returns the
// message's ts and, for a reply, whether Slack put it into the thread.
func (s *Sink) post(ctx context.Context, m *message) (ts string, threaded bool, err error) {
	if err := s.pace.wait(ctx, m.Channel); err != nil {
		return "", false, err
	}
	opts := []slackgo.MsgOption{slackgo.MsgOptionText(m.Text, false)}
	if len(m.Blocks) > 0 {
		blocks := make([]slackgo.Block, len(m.Blocks))
		for i, b := range m.Blocks {
			blocks[i] = rawBlock(b)
		}
		opts = append(opts, slackgo.MsgOptionBlocks(blocks...))
	}
	if m.ThreadTS != "" {
		opts = append(opts, slackgo.MsgOptionTS(m.ThreadTS))
	}
	actx, ans := recordAnswer(ctx)
	_, ts, msg, err := s.api.PostMessageWithResponseContext(actx, m.Channel, opts...)
	if err = classify("chat.postMessage", err, ans); err != nil {
		if ans.status == http.StatusTooManyRequests {
			d, _ := retryDelay(err)
			s.pace.hold(m.Channel, max(d, time.Second))
		}
		return "", false, err
	}
	if ts == "" {
		return "", false, errors.New("slack: chat.postMessage: the answer has no ts")
	}
	return ts, msg.ThreadTimestamp != "" || msg.Timestamp == "", nil
}

// postWebhook posts m to the incoming webhook itself, as slack-go's helper
// throws away Slack's error text (invalid_payload, no_service, ...).
func (s *Sink) postWebhook(ctx context.Context, m *message) error {
	if err := s.pace.wait(ctx, "webhook"); err != nil {
		return err
	}
	body, err := marshalNoEscape(m)
	if err != nil {
		return bridge.Permanent(fmt.Errorf("slack: webhook: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.WebhookURL.Value(), bytes.NewReader(body))
	if err != nil {
		return bridge.Permanent(errors.New("slack: webhook: webhook_url is not a valid URL"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.doer.userAgent)
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("slack: webhook: %w", cleanErr(err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if err := bridge.HTTPStatusError(resp.StatusCode, resp.Header, errorText(string(b))); err != nil {
		if resp.StatusCode == http.StatusTooManyRequests {
			d, _ := retryDelay(err)
			s.pace.hold("webhook", max(d, time.Second))
		}
		return fmt.Errorf("slack: webhook: %w", err)
	}
	return nil
}

// DryRun returns the JSON message Send would post (the webhook's body, or
// chat.postMessage's arguments), without the token or the webhook URL and
// without sending anything. A reply shows the thread it would go into.
func (s *Sink) DryRun(ctx context.Context, d *bridge.Delivery) (string, error) {
	m, err := s.compose(d)
	if err != nil {
		return "", err
	}
	if m.threadKey != "" && s.state != nil {
		if ts, ok, err := s.state.Get(ctx, m.threadKey); err == nil && ok {
			m.ThreadTS = ts
		}
	}
	b, err := marshalNoEscape(m)
	if err != nil {
		return "", fmt.Errorf("slack: %w", err)
	}
	return string(b), nil
}

// rawBlock hands an already encoded block to slack-go unchanged.
type rawBlock json.RawMessage

// BlockType returns the block's type.
func (b rawBlock) BlockType() slackgo.MessageBlockType {
	var v struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(b, &v)
	return slackgo.MessageBlockType(v.Type)
}

// ID returns the block's block_id.
func (b rawBlock) ID() string {
	var v struct {
		ID string `json:"block_id"`
	}
	_ = json.Unmarshal(b, &v)
	return v.ID
}

// MarshalJSON returns the block as it is.
func (b rawBlock) MarshalJSON() ([]byte, error) { return b, nil }
