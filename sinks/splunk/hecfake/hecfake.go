// Package hecfake is a stand-in for a Splunk HTTP Event Collector, for
// tests. It checks the token as Splunk does, parses concatenated event
// envelopes, records the events it accepts, answers with Splunk's codes and
// texts, and can be scripted to answer busy or refuse an event.
package hecfake

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// Envelope is one event envelope as the collector received it.
type Envelope struct {
	Time       json.Number     `json:"time"`
	Host       string          `json:"host"`
	Source     string          `json:"source"`
	Sourcetype string          `json:"sourcetype"`
	Index      string          `json:"index"`
	Event      json.RawMessage `json:"event"`
	Fields     map[string]any  `json:"fields"`
	// Raw is the envelope exactly as sent.
	Raw json.RawMessage `json:"-"`
}

// ID returns the "id" of the envelope's event, when the event is an object
// that has one.
func (e Envelope) ID() string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(e.Event, &v)
	return v.ID
}

// Answer is one scripted answer: an HTTP status and Splunk's JSON body.
type Answer struct {
	Status int
	Code   int
	Text   string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// InvalidEvent, when not nil, is sent as "invalid-event-number".
	InvalidEvent *int
}

// Busy is Splunk's "Server is busy" answer (503, code 9), with a
// Retry-After header when retryAfter is not empty.
func Busy(retryAfter string) Answer {
	return Answer{Status: http.StatusServiceUnavailable, Code: 9, Text: "Server is busy", RetryAfter: retryAfter}
}

// InvalidFormat is Splunk's answer to a batch whose event n (from 0) is not
// valid (400, code 6).
func InvalidFormat(n int) Answer {
	return Answer{Status: http.StatusBadRequest, Code: 6, Text: "Invalid data format", InvalidEvent: &n}
}

// Option changes how a Server behaves.
type Option func(*Server)

// AllowIndexes limits the indexes the token may write to, as a token's
// allowed list does: an envelope naming another index is refused with 400,
// code 7 "Incorrect index". Without it, every index is allowed.
func AllowIndexes(names ...string) Option {
	return func(s *Server) {
		s.indexes = map[string]bool{}
		for _, n := range names {
			s.indexes[n] = true
		}
	}
}

// KeepBeforeInvalid makes the collector index the events before the one it
// refuses in a batch (Splunk's reported behaviour, not documented). Without
// it, a refused batch indexes nothing.
func KeepBeforeInvalid() Option { return func(s *Server) { s.keepBeforeInvalid = true } }

// CountOnly makes the collector count accepted events without keeping
// them, for load tests (Events and EventIDs then return nothing).
func CountOnly() Option { return func(s *Server) { s.countOnly = true } }

// TLS serves HTTPS with a self-signed certificate (see Certificate).
func TLS() Option { return func(s *Server) { s.tls = true } }

// Server is a running stand-in collector. Its URL is the base URL a sink is
// configured with.
type Server struct {
	URL   string
	token string
	srv   *httptest.Server

	indexes           map[string]bool
	keepBeforeInvalid bool
	tls               bool
	countOnly         bool

	mu       sync.Mutex
	script   []Answer
	events   []Envelope
	accepted int
	requests int
	auths    []string
}

// New starts a collector that accepts token. Close it when done.
func New(token string, opts ...Option) *Server {
	s := &Server{token: token}
	for _, o := range opts {
		o(s)
	}
	if s.tls {
		s.srv = httptest.NewTLSServer(s)
	} else {
		s.srv = httptest.NewServer(s)
	}
	s.URL = s.srv.URL
	return s
}

// Close shuts the collector down.
func (s *Server) Close() { s.srv.Close() }

// Certificate returns the collector's certificate when it serves HTTPS.
func (s *Server) Certificate() *x509.Certificate { return s.srv.Certificate() }

// Script queues answers: each of the next requests with a valid token gets
// the next answer instead of being processed.
func (s *Server) Script(answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, answers...)
}

// Events returns the envelopes accepted so far, in order.
func (s *Server) Events() []Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Envelope(nil), s.events...)
}

// EventIDs returns the event id of every accepted envelope, in order.
func (s *Server) EventIDs() []string {
	evs := s.Events()
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID()
	}
	return ids
}

// Count returns how many envelopes were accepted so far.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Requests returns how many requests reached the collector.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Authorizations returns the Authorization header of every request.
func (s *Server) Authorizations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}

// ServeHTTP answers one request as Splunk's HEC does.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	s.auths = append(s.auths, r.Header.Get("Authorization"))
	s.mu.Unlock()

	switch {
	case r.URL.Path == "/services/collector/health":
		reply(w, Answer{Status: http.StatusOK, Code: 17, Text: "HEC is healthy"})
		return
	case r.URL.Path != "/services/collector" && r.URL.Path != "/services/collector/event" &&
		r.URL.Path != "/services/collector/event/1.0":
		reply(w, Answer{Status: http.StatusNotFound, Code: 404, Text: "The requested URL was not found on this server."})
		return
	case r.Method != http.MethodPost:
		reply(w, Answer{Status: http.StatusMethodNotAllowed, Code: 405, Text: "Method Not Allowed"})
		return
	}
	auth := r.Header.Get("Authorization")
	tok, isSplunk := strings.CutPrefix(auth, "Splunk ")
	switch {
	case auth == "":
		reply(w, Answer{Status: http.StatusUnauthorized, Code: 2, Text: "Token is required"})
		return
	case !isSplunk:
		reply(w, Answer{Status: http.StatusUnauthorized, Code: 3, Text: "Invalid authorization"})
		return
	case tok != s.token:
		reply(w, Answer{Status: http.StatusForbidden, Code: 4, Text: "Invalid token"})
		return
	}
	s.mu.Lock()
	if len(s.script) > 0 {
		a := s.script[0]
		s.script = s.script[1:]
		s.mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		reply(w, a)
		return
	}
	s.mu.Unlock()

	body, err := io.ReadAll(r.Body)
	if err != nil {
		reply(w, Answer{Status: http.StatusBadRequest, Code: 6, Text: "Invalid data format"})
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		reply(w, Answer{Status: http.StatusBadRequest, Code: 5, Text: "No data"})
		return
	}
	accepted, refusal := s.parse(body)
	s.mu.Lock()
	if refusal == nil || s.keepBeforeInvalid {
		s.accepted += len(accepted)
		if !s.countOnly {
			s.events = append(s.events, accepted...)
		}
	}
	s.mu.Unlock()
	if refusal != nil {
		reply(w, *refusal)
		return
	}
	reply(w, Answer{Status: http.StatusOK, Code: 0, Text: "Success"})
}

// parse reads the concatenated envelopes of body. It returns the envelopes
// before the first bad one, and the answer refusing that one (nil when all
// are good).
func (s *Server) parse(body []byte) ([]Envelope, *Answer) {
	var out []Envelope
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for n := 0; ; n++ {
		bad := func(code int, text string) ([]Envelope, *Answer) {
			return out, &Answer{Status: http.StatusBadRequest, Code: code, Text: text, InvalidEvent: &n}
		}
		start := dec.InputOffset()
		var e Envelope
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return bad(6, "Invalid data format")
		}
		e.Raw = json.RawMessage(bytes.TrimSpace(body[start:dec.InputOffset()]))
		switch ev := strings.TrimSpace(string(e.Event)); ev {
		case "", "null":
			return bad(12, "Event field is required")
		case `""`:
			return bad(13, "Event field cannot be blank")
		}
		if e.Index != "" && s.indexes != nil && !s.indexes[e.Index] {
			return bad(7, "Incorrect index")
		}
		out = append(out, e)
	}
}

// reply writes a as Splunk does: a JSON body with text and code.
func reply(w http.ResponseWriter, a Answer) {
	body := map[string]any{"text": a.Text, "code": a.Code}
	if a.InvalidEvent != nil {
		body["invalid-event-number"] = *a.InvalidEvent
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if a.RetryAfter != "" {
		w.Header().Set("Retry-After", a.RetryAfter)
	}
	w.WriteHeader(a.Status)
	_ = json.NewEncoder(w).Encode(body)
}
