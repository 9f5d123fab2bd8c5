// Package slackfake is a stand-in Slack for tests: the Web API methods the
// bridge calls (chat.postMessage, auth.test, conversations.info,
// conversations.list) and incoming webhooks, behaving as Slack does: the
// token from the form body (what slack-go sends) or a bearer header, ok:false
// errors with HTTP 200, Block Kit limits, threads, a rate limit per channel
// answered with 429 and Retry-After, and scripted failures.
package slackfake

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// Channel is a conversation of the fake workspace.
type Channel struct {
	ID       string
	Name     string // without '#'
	Private  bool
	Archived bool
	// Member says whether the bot is in the channel; posting to a channel
	// the bot is not in fails with not_in_channel, unless the channel is
	// public and the token has the chat:write.public scope.
	Member bool
}

// RateLimit is a token bucket: PerSecond messages a second with bursts of
// Burst. The zero value means no limit.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// Options configures a Server.
type Options struct {
	// Tokens are the valid bot tokens; any other token gets invalid_auth.
	Tokens []string
	// Scopes are reported by auth.test in X-OAuth-Scopes (default
	// "chat:write,channels:read,groups:read").
	Scopes string
	// Channels of the workspace.
	Channels []Channel
	// Webhooks maps incoming-webhook paths ("/services/T0/B0/XYZ") to the
	// channel ID they post to; other paths answer 404 no_service.
	Webhooks map[string]string
	// RateLimit applies per channel to chat.postMessage, and per webhook.
	RateLimit RateLimit
	// Now is the server's clock (default time.Now).
	Now func() time.Time
}

// Message is one message the fake accepted.
type Message struct {
	Channel  string          // the channel's ID
	TS       string          // the message's ts
	ThreadTS string          // the parent's ts, for a reply
	Text     string          // the top-level text
	Blocks   json.RawMessage // as received (nil when none)
	Via      string          // "form", "json" or "webhook"
	Webhook  string          // the webhook path, for Via "webhook"
}

// Request is one call the fake answered.
type Request struct {
	Method      string // the API method ("chat.postMessage") or "webhook"
	ContentType string
	TokenFrom   string // "form", "header" or "" (none)
	Status      int
	Error       string // Slack's error code or webhook error text; "" when ok
	Time        time.Time
}

// Answer is a scripted reply, used instead of the normal one.
type Answer struct {
	Status     int    // HTTP status (default 200)
	Error      string // ok:false code, or for webhooks the plain-text body
	RetryAfter string // a Retry-After header value
}

// Server is a running fake Slack.
type Server struct {
	srv  *httptest.Server
	opts Options

	mu       sync.Mutex
	tokens   map[string]string // token -> "" or revocation code
	channels []*Channel
	limiters map[string]*rate.Limiter
	scripted map[string][]Answer
	messages []Message
	requests []Request
	deleted  map[string]bool // channel/ts of deleted messages
	lastTS   time.Time
}

// New starts a fake Slack. Close it when done.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Scopes == "" {
		opts.Scopes = "chat:write,channels:read,groups:read"
	}
	s := &Server{
		opts:     opts,
		tokens:   map[string]string{},
		limiters: map[string]*rate.Limiter{},
		scripted: map[string][]Answer{},
		deleted:  map[string]bool{},
	}
	for _, t := range opts.Tokens {
		s.tokens[t] = ""
	}
	for _, c := range opts.Channels {
		s.channels = append(s.channels, &c)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/{method}", s.api)
	mux.HandleFunc("/services/", s.webhook)
	s.srv = httptest.NewServer(mux)
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// APIURL is the Web API base, ending with a slash (for api_url).
func (s *Server) APIURL() string { return s.srv.URL + "/api/" }

// WebhookURL is the URL of the incoming webhook at path.
func (s *Server) WebhookURL(path string) string { return s.srv.URL + path }

// Messages returns every accepted message, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Requests returns every call answered, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// RateLimited returns how many calls were answered with 429.
func (s *Server) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Status == http.StatusTooManyRequests {
			n++
		}
	}
	return n
}

// Script queues answers for the next calls of method ("chat.postMessage",
// "auth.test", ... or "webhook"), one per call, before normal service.
func (s *Server) Script(method string, answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripted[method] = append(s.scripted[method], answers...)
}

// RevokeToken makes token fail with code (token_revoked, account_inactive).
func (s *Server) RevokeToken(token, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = code
}

// DeleteMessage deletes a message: replies to it are then posted as
// messages of their own, as Slack does.
func (s *Server) DeleteMessage(channelID, ts string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted[channelID+"/"+ts] = true
}

func (s *Server) now() time.Time { return s.opts.Now() }

// nextTS returns a unique, increasing ts: "<seconds>.<6 digits>".
func (s *Server) nextTS() string {
	t := s.now().Truncate(time.Microsecond)
	if !t.After(s.lastTS) {
		t = s.lastTS.Add(time.Microsecond)
	}
	s.lastTS = t
	return fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000)
}

func (s *Server) findChannel(ref string) *Channel {
	name := strings.TrimPrefix(ref, "#")
	for _, c := range s.channels {
		if c.ID == ref || c.Name == name {
			return c
		}
	}
	return nil
}

// allow takes a token from key's bucket, or returns the seconds to wait.
func (s *Server) allow(key string) (bool, int) {
	rl := s.opts.RateLimit
	if rl.PerSecond <= 0 {
		return true, 0
	}
	lim, ok := s.limiters[key]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(rl.PerSecond), max(rl.Burst, 1))
		s.limiters[key] = lim
	}
	now := s.now()
	if lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return false, max(1, int(math.Ceil(d.Seconds())))
}

func (s *Server) popScript(method string) (Answer, bool) {
	q := s.scripted[method]
	if len(q) == 0 {
		return Answer{}, false
	}
	s.scripted[method] = q[1:]
	return q[0], true
}

// call is one parsed Web API request.
type call struct {
	method    string
	ctype     string
	token     string
	tokenFrom string
	args      map[string]string // form values, or JSON scalars as text
	blocks    json.RawMessage
}

func parseCall(r *http.Request) (*call, string) {
	c := &call{method: r.PathValue("method"), args: map[string]string{}}
	c.ctype, _, _ = mime.ParseMediaType(r.Header.Get("Content-Type"))
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		c.token, c.tokenFrom = strings.TrimPrefix(h, "Bearer "), "header"
	}
	switch {
	case c.ctype == "application/json":
		var m map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			return c, "invalid_json"
		}
		for k, v := range m {
			if k == "blocks" {
				c.blocks = v
				continue
			}
			var str string
			if json.Unmarshal(v, &str) == nil {
				c.args[k] = str
			} else {
				c.args[k] = string(v)
			}
		}
		// Slack ignores a token in a JSON body: JSON needs the header.
	default:
		if err := r.ParseForm(); err != nil {
			return c, "invalid_form_data"
		}
		for k := range r.Form {
			c.args[k] = r.Form.Get(k)
		}
		if b, ok := c.args["blocks"]; ok {
			c.blocks = json.RawMessage(b)
			delete(c.args, "blocks")
		}
		if c.token == "" && c.args["token"] != "" {
			c.token, c.tokenFrom = c.args["token"], "form"
		}
	}
	return c, ""
}

func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	c, perr := parseCall(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	req := Request{Method: c.method, ContentType: c.ctype, TokenFrom: c.tokenFrom, Status: http.StatusOK, Time: s.now()}
	reply := func(status int, body map[string]any, header map[string]string) {
		req.Status = status
		if ok, _ := body["ok"].(bool); !ok {
			req.Error, _ = body["error"].(string)
		}
		s.requests = append(s.requests, req)
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	}
	fail := func(code string) { reply(http.StatusOK, map[string]any{"ok": false, "error": code}, nil) }

	if a, ok := s.popScript(c.method); ok {
		status := a.Status
		if status == 0 {
			status = http.StatusOK
		}
		h := map[string]string{}
		if a.RetryAfter != "" {
			h["Retry-After"] = a.RetryAfter
		}
		if status >= 500 {
			req.Status, req.Error = status, a.Error
			s.requests = append(s.requests, req)
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, "<html><body>Slack is having trouble</body></html>")
			return
		}
		reply(status, map[string]any{"ok": a.Error == "", "error": a.Error}, h)
		return
	}
	if perr != "" {
		fail(perr)
		return
	}
	switch {
	case c.token == "":
		fail("not_authed")
		return
	default:
		code, ok := s.tokens[c.token]
		if !ok {
			fail("invalid_auth")
			return
		}
		if code != "" {
			fail(code)
			return
		}
	}

	switch c.method {
	case "auth.test":
		reply(http.StatusOK, map[string]any{
			"ok": true, "url": "https://fake.slack.com/", "team": "Fake Team", "user": "bridge",
			"team_id": "T0FAKE", "user_id": "U0BRIDGE", "bot_id": "B0BRIDGE",
		}, map[string]string{"X-OAuth-Scopes": s.opts.Scopes})
	case "chat.postMessage":
		s.postMessage(c, reply, fail)
	case "conversations.info":
		ch := s.findChannel(c.args["channel"])
		if ch == nil || ch.ID != c.args["channel"] || (ch.Private && !ch.Member) {
			fail("channel_not_found")
			return
		}
		reply(http.StatusOK, map[string]any{"ok": true, "channel": channelJSON(ch)}, nil)
	case "conversations.list":
		s.list(c, reply)
	default:
		reply(http.StatusNotFound, map[string]any{"ok": false, "error": "unknown_method"}, nil)
	}
}

func channelJSON(c *Channel) map[string]any {
	return map[string]any{
		"id": c.ID, "name": c.Name, "is_channel": true, "is_private": c.Private,
		"is_archived": c.Archived, "is_member": c.Member,
	}
}

func (s *Server) list(c *call, reply func(int, map[string]any, map[string]string)) {
	types := c.args["types"]
	if types == "" {
		types = "public_channel"
	}
	var all []*Channel
	for _, ch := range s.channels {
		if ch.Private && (!ch.Member || !strings.Contains(types, "private_channel")) {
			continue
		}
		if !ch.Private && !strings.Contains(types, "public_channel") {
			continue
		}
		if ch.Archived && c.args["exclude_archived"] == "true" {
			continue
		}
		all = append(all, ch)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	limit, _ := strconv.Atoi(c.args["limit"])
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	start, _ := strconv.Atoi(c.args["cursor"])
	start = min(max(start, 0), len(all))
	end := min(start+limit, len(all))
	page := []map[string]any{}
	for _, ch := range all[start:end] {
		page = append(page, channelJSON(ch))
	}
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	reply(http.StatusOK, map[string]any{"ok": true, "channels": page, "response_metadata": map[string]any{"next_cursor": next}}, nil)
}

func (s *Server) postMessage(c *call, reply func(int, map[string]any, map[string]string), fail func(string)) {
	ch := s.findChannel(c.args["channel"])
	switch {
	case c.args["channel"] == "":
		fail("channel_not_found")
		return
	case ch == nil || (ch.Private && !ch.Member):
		fail("channel_not_found")
		return
	case ch.Archived:
		fail("is_archived")
		return
	case !ch.Member && (ch.Private || !strings.Contains(","+s.opts.Scopes+",", ",chat:write.public,")):
		fail("not_in_channel")
		return
	}
	text := c.args["text"]
	if code := checkMessage(text, c.blocks); code != "" {
		fail(code)
		return
	}
	if ok, wait := s.allow(ch.ID); !ok {
		reply(http.StatusTooManyRequests, map[string]any{"ok": false, "error": "ratelimited"}, map[string]string{"Retry-After": strconv.Itoa(wait)})
		return
	}
	via := "form"
	if c.ctype == "application/json" {
		via = "json"
	}
	m := Message{Channel: ch.ID, TS: s.nextTS(), Text: text, Blocks: c.blocks, Via: via}
	if parent := c.args["thread_ts"]; parent != "" && s.isParent(ch.ID, parent) {
		m.ThreadTS = parent
	}
	s.messages = append(s.messages, m)
	msg := map[string]any{"type": "message", "subtype": "bot_message", "text": text, "ts": m.TS, "bot_id": "B0BRIDGE"}
	if m.ThreadTS != "" {
		msg["thread_ts"] = m.ThreadTS
	}
	reply(http.StatusOK, map[string]any{"ok": true, "channel": ch.ID, "ts": m.TS, "message": msg}, nil)
}

// isParent reports whether ts is a live top-level message in the channel.
func (s *Server) isParent(channelID, ts string) bool {
	if s.deleted[channelID+"/"+ts] {
		return false
	}
	for _, m := range s.messages {
		if m.Channel == channelID && m.TS == ts && m.ThreadTS == "" {
			return true
		}
	}
	return false
}

// checkMessage applies Slack's limits: it returns the error code Slack
// would answer, or "".
func checkMessage(text string, blocks json.RawMessage) string {
	if utf8.RuneCountInString(text) > 40000 {
		return "msg_too_long"
	}
	if len(blocks) == 0 {
		if strings.TrimSpace(text) == "" {
			return "no_text"
		}
		return ""
	}
	var list []map[string]any
	if err := json.Unmarshal(blocks, &list); err != nil {
		return "invalid_blocks_format"
	}
	if len(list) == 0 && strings.TrimSpace(text) == "" {
		return "no_text"
	}
	if len(list) > 50 {
		return "invalid_blocks"
	}
	textOK := func(obj any, limit int) bool {
		t, ok := obj.(map[string]any)
		if !ok {
			return false
		}
		s, _ := t["text"].(string)
		typ, _ := t["type"].(string)
		n := utf8.RuneCountInString(s)
		return (typ == "plain_text" || typ == "mrkdwn") && n >= 1 && n <= limit
	}
	for _, b := range list {
		switch b["type"] {
		case "header":
			if !textOK(b["text"], 150) || b["text"].(map[string]any)["type"] != "plain_text" {
				return "invalid_blocks"
			}
		case "section":
			_, hasText := b["text"]
			fields, _ := b["fields"].([]any)
			if !hasText && len(fields) == 0 {
				return "invalid_blocks"
			}
			if hasText && !textOK(b["text"], 3000) {
				return "invalid_blocks"
			}
			if len(fields) > 10 {
				return "invalid_blocks"
			}
			for _, f := range fields {
				if !textOK(f, 2000) {
					return "invalid_blocks"
				}
			}
		case "context":
			elems, _ := b["elements"].([]any)
			if len(elems) == 0 || len(elems) > 10 {
				return "invalid_blocks"
			}
		case "divider", "image", "actions", "rich_text", "markdown", "input", "file", "video", "table":
		default:
			return "invalid_blocks"
		}
	}
	return ""
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	defer s.mu.Unlock()
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	req := Request{Method: "webhook", ContentType: ctype, Time: s.now()}
	reply := func(status int, text string, header map[string]string) {
		req.Status = status
		if status != http.StatusOK {
			req.Error = text
		}
		s.requests = append(s.requests, req)
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, text)
	}
	if a, ok := s.popScript("webhook"); ok {
		status := a.Status
		if status == 0 {
			status = http.StatusOK
		}
		text := a.Error
		if text == "" {
			text = "ok"
		}
		h := map[string]string{}
		if a.RetryAfter != "" {
			h["Retry-After"] = a.RetryAfter
		}
		reply(status, text, h)
		return
	}
	if r.Method != http.MethodPost {
		reply(http.StatusMethodNotAllowed, "invalid_method", nil)
		return
	}
	chID, ok := s.opts.Webhooks[r.URL.Path]
	if !ok {
		reply(http.StatusNotFound, "no_service", nil)
		return
	}
	ch := s.findChannel(chID)
	if ch == nil {
		reply(http.StatusNotFound, "channel_not_found", nil)
		return
	}
	if ch.Archived {
		reply(http.StatusGone, "channel_is_archived", nil)
		return
	}
	var msg struct {
		Text   string          `json:"text"`
		Blocks json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		// Slack also takes a form field payload=<json>.
		v, _ := url.ParseQuery(string(body))
		if p := v.Get("payload"); p == "" || json.Unmarshal([]byte(p), &msg) != nil {
			reply(http.StatusBadRequest, "invalid_payload", nil)
			return
		}
	}
	if code := checkMessage(msg.Text, msg.Blocks); code != "" {
		if code == "invalid_blocks_format" {
			code = "invalid_blocks"
		}
		reply(http.StatusBadRequest, code, nil)
		return
	}
	if ok, wait := s.allow("webhook:" + r.URL.Path); !ok {
		reply(http.StatusTooManyRequests, "rate_limited", map[string]string{"Retry-After": strconv.Itoa(wait)})
		return
	}
	s.messages = append(s.messages, Message{Channel: ch.ID, TS: s.nextTS(), Text: msg.Text, Blocks: msg.Blocks, Via: "webhook", Webhook: r.URL.Path})
	reply(http.StatusOK, "ok", nil)
}
