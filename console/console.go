// Package console is the bridge's web console and its JSON API (SPEC 10):
// server-rendered pages over the store (overview, events, one event,
// deliveries, try, rules) and /api/v1 beside them, on a listener of their
// own, behind HTTP basic auth.
//
// Everything a vendor sent is attacker-controlled text. Pages are rendered
// with html/template only, never with template.HTML built from vendor data;
// vendor URLs are never rendered as links; a strict Content-Security-Policy
// forbids inline script and style, so even a mistake cannot run code.
// State-changing requests are POSTs, checked against cross-site requests
// (Sec-Fetch-Site and Origin) and, for forms, a token bound to the user;
// API POSTs must be application/json, which no cross-site form can send.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"bridge/bridge"
)

// Options are what the console reads and acts on.
type Options struct {
	// Store is the bridge's store: events, deliveries, replays.
	Store bridge.Store
	// Runtime returns the config being served; it changes on reload.
	Runtime func() *bridge.Runtime
	// Metrics gives rule match counts and the last reload.
	Metrics *bridge.Metrics
	// Webhooks are this process's webhook counts by the hour; nil shows none.
	Webhooks *bridge.WebhookStats
	// Users maps each user name to the bcrypt hash of its password. With
	// none, the console asks for no password and answers only requests
	// addressed to a loopback host (the config allows no users only on a
	// loopback listen address).
	Users map[string]bridge.Secret
	// Version is shown on every page.
	Version string
	// Logger gets refused logins and failed store calls; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// JiraURLs returns, for a config, the site URL of each jira sink by
	// sink name, so that a delivered issue key links to the issue.
	JiraURLs func(cfg *bridge.Config) map[string]string
	// Wake, when set, is told after a replay which sinks have deliveries
	// due, so that the pipeline sends them at once instead of at its next
	// poll.
	Wake func(sinks map[string]bool)
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// console is the handler New returns.
type console struct {
	opt    Options
	log    *slog.Logger
	now    func() time.Time
	auth   *authenticator
	csrf   *csrfKey
	cross  *http.CrossOriginProtection
	pages  map[string]*template.Template
	assets map[string]string // asset path → its URL with a content hash, for caching
	host   string            // this machine's name, shown beside the version
	stats  sinkStats         // the overview's per-sink counts
	mux    *http.ServeMux
}

// New returns the console's handler: every page and API route, each behind
// basic auth.
func New(opt Options) (http.Handler, error) {
	if opt.Store == nil || opt.Runtime == nil {
		return nil, errors.New("console: a store and a runtime are required")
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Metrics == nil {
		opt.Metrics = bridge.NewMetrics(nil)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("console: random key: %w", err)
	}
	auth, err := newAuthenticator(opt.Users, key, opt.Now)
	if err != nil {
		return nil, err
	}
	c := &console{
		opt:   opt,
		log:   opt.Logger,
		now:   opt.Now,
		auth:  auth,
		csrf:  &csrfKey{key: key},
		cross: http.NewCrossOriginProtection(),
	}
	c.host, _ = os.Hostname()
	if c.assets, err = assetURLs(); err != nil {
		return nil, err
	}
	if c.pages, err = c.parseTemplates(); err != nil {
		return nil, err
	}
	c.mux = c.routes()
	return c, nil
}

func (c *console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.overview)
	mux.HandleFunc("GET /events", c.events)
	mux.HandleFunc("GET /events/{source}/{id...}", c.event)
	mux.HandleFunc("GET /deliveries", c.deliveries)
	mux.HandleFunc("POST /deliveries/{id}/replay", c.formPOST(c.replayOne))
	mux.HandleFunc("POST /deliveries/replay", c.formPOST(c.replayShown))
	mux.HandleFunc("GET /try", c.try)
	mux.HandleFunc("POST /try", c.formPOST(c.try))
	mux.HandleFunc("GET /rules", c.rules)
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Asset URLs carry a hash of their content: they may be kept.
		w.Header().Set("Cache-Control", "private, max-age=86400")
		files.ServeHTTP(w, r)
	}))

	mux.HandleFunc("GET /api/v1/events", c.apiEvents)
	mux.HandleFunc("GET /api/v1/events/{source}/{id...}", c.apiEvent)
	mux.HandleFunc("GET /api/v1/deliveries", c.apiDeliveries)
	mux.HandleFunc("POST /api/v1/deliveries/{id}/replay", c.apiPOST(c.apiReplay))
	mux.HandleFunc("POST /api/v1/try", c.apiPOST(c.apiTry))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
	})
	return mux
}

// cspPolicy allows the console's own stylesheet, script and images and
// nothing else: no inline script or style, no framing, forms post only here.
const cspPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP sets the security headers, authenticates, and routes.
func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", cspPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	user, ok := c.auth.check(r)
	if !ok {
		if name, _, given := r.BasicAuth(); given {
			c.log.Warn("console: sign-in refused", "user", name, "remote", r.RemoteAddr)
		}
		c.unauthorized(w, r)
		return
	}
	if user == "" && !loopbackHost(r.Host) {
		// Without users the console trusts the machine; a page elsewhere
		// must not reach it by pointing its own name at 127.0.0.1.
		c.fail(w, r, http.StatusMisdirectedRequest, "this console has no users and answers only requests for a loopback host (127.0.0.1, localhost)")
		return
	}
	c.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
}

type userKey struct{}

// userOf returns the authenticated user of a request ("" without users).
func userOf(r *http.Request) string {
	u, _ := r.Context().Value(userKey{}).(string)
	return u
}

func (c *console) unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Basic realm="bridge console", charset="UTF-8"`)
	if isAPI(r) {
		writeJSONError(w, http.StatusUnauthorized, "authentication required: HTTP basic auth with a console user")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintln(w, "401 Unauthorized: sign in with a console user (console.users in the config).")
}

// formPOST guards a page's POST: no cross-site request, and the form's
// token must be the user's.
func (c *console) formPOST(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := c.cross.Check(r); err != nil {
			c.errorPage(w, r, http.StatusForbidden, "Refused: this request came from another site (cross-site request forgery protection).")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, c.formLimit())
		if err := r.ParseForm(); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				c.errorPage(w, r, http.StatusRequestEntityTooLarge, "The form is too large.")
				return
			}
			c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
			return
		}
		if !c.csrf.valid(userOf(r), r.PostForm.Get("csrf")) {
			c.errorPage(w, r, http.StatusForbidden, "Refused: the form's security token is missing or out of date (the bridge may have restarted). Go back, reload the page and try again.")
			return
		}
		h(w, r)
	}
}

// apiPOST guards an API POST: no cross-site request, and a JSON body,
// which a cross-site form cannot send and a cross-site script cannot send
// without a CORS preflight the console never answers.
func (c *console) apiPOST(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := c.cross.Check(r); err != nil {
			writeJSONError(w, http.StatusForbidden, "cross-site request refused")
			return
		}
		ct := strings.TrimSpace(strings.Split(r.Header.Get("Content-Type"), ";")[0])
		if !strings.EqualFold(ct, "application/json") {
			writeJSONError(w, http.StatusUnsupportedMediaType, "API POSTs must have Content-Type: application/json (cross-site request forgery protection)")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, c.formLimit())
		h(w, r)
	}
}

// formLimit bounds a POST body: a payload of max_body_bytes, encoded.
func (c *console) formLimit() int64 {
	n := int64(bridge.DefaultMaxBodyBytes)
	if rt := c.opt.Runtime(); rt != nil && rt.Config != nil && rt.Config.Server.MaxBodyBytes > 0 {
		n = rt.Config.Server.MaxBodyBytes
	}
	return 3*n + 64<<10
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// fail answers an error in the request's kind: JSON for the API, a page
// otherwise.
func (c *console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if isAPI(r) {
		writeJSONError(w, status, msg)
		return
	}
	c.errorPage(w, r, status, msg)
}

// storeFailed logs a store error and answers 503.
func (c *console) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Error("console: store", "path", r.URL.Path, "err", err)
	c.fail(w, r, http.StatusServiceUnavailable, "The store cannot answer now: "+err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		writeJSONError(w, http.StatusInternalServerError, "encode: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// loopbackHost reports whether a Host header names this machine's loopback.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
