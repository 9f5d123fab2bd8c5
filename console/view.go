package console

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"bridge/bridge"
)

// page is what every page template gets: the layout's fields and the
// page's own Data.
type page struct {
	Title   string
	Nav     string // the menu entry to highlight
	User    string
	Version string
	Host    string
	CSRF    string
	Back    string // this page's path and query: where a form returns to
	Flash   string // one line about what the last action did
	Assets  map[string]string
	Data    any
}

// parseTemplates parses the layout with each page.
func (c *console) parseTemplates() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(c.funcs()).ParseFS(templateFS, "templates/layout.html", name)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[base] = t
	}
	return out, nil
}

// render executes a page into a buffer first, so that a template error
// is a clean 500 and not half a page.
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	t := c.pages[name]
	p := page{
		Title: title, Nav: name, User: userOf(r), Version: c.opt.Version, Host: c.host,
		CSRF: c.csrf.token(userOf(r)), Back: r.URL.RequestURI(), Flash: flash(r), Assets: c.assets, Data: data,
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintln(w, "500: the page could not be rendered; the log says why")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errorPage renders a page that says what went wrong.
func (c *console) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", http.StatusText(status), struct {
		Status int
		Text   string
		Msg    string
	}{status, http.StatusText(status), msg})
}

// flash says what a replay the browser was sent back from did.
func flash(r *http.Request) string {
	q := r.URL.Query()
	if q.Get("replayed") == "" && q.Get("skipped") == "" {
		return ""
	}
	n, _ := strconv.Atoi(q.Get("replayed"))
	skipped, _ := strconv.Atoi(q.Get("skipped"))
	var parts []string
	switch {
	case n == 1:
		parts = append(parts, "Replayed 1 delivery: it is pending again and will be sent shortly.")
	case n > 1:
		parts = append(parts, fmt.Sprintf("Replayed %d deliveries: they are pending again and will be sent shortly.", n))
	}
	switch {
	case skipped == 1:
		parts = append(parts, "1 delivery was no longer failed and was left as it is.")
	case skipped > 1:
		parts = append(parts, fmt.Sprintf("%d deliveries were no longer failed and were left as they are.", skipped))
	}
	if len(parts) == 0 {
		return "Nothing to replay."
	}
	return strings.Join(parts, " ")
}

// assetURLs gives each static file a URL with a hash of its content.
func assetURLs() (map[string]string, error) {
	out := map[string]string{}
	err := fs.WalkDir(staticFS, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := strings.TrimPrefix(path, "static/")
		out[name] = "/static/" + name + "?v=" + hex.EncodeToString(sum[:6])
		return nil
	})
	return out, err
}

// jiraKey is what a Jira issue key looks like; only such a result links.
var jiraKey = regexp.MustCompile(`^[A-Z][A-Z0-9_]+-[0-9]+$`)

func (c *console) funcs() template.FuncMap {
	return template.FuncMap{
		"ago":      c.ago,
		"exact":    exactTime,
		"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"sevClass": sevClass,
		"stClass":  statusClass,
		"eventURL": eventURL,
		"cut":      cut,
		"json":     highlightJSON,
		"plural": func(n int, one, many string) string {
			if n == 1 {
				return one
			}
			return many
		},
		"outcomeClass": outcomeClass,
		"add":          func(a, b int) int { return a + b },
		"dict":         dict,
		"label":        func(s string) string { return strings.ReplaceAll(s, "_", " ") },
	}
}

// dict builds a map from key, value pairs, to hand a partial template
// several values.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// issueLinks returns, for the current config, a function from a delivery's
// sink and result to the Jira issue's browse URL, or "" when the result is
// no issue key of a jira sink.
func (c *console) issueLinks() func(sink, result string) string {
	var sites map[string]string
	if rt := c.opt.Runtime(); rt != nil && rt.Config != nil && c.opt.JiraURLs != nil {
		sites = c.opt.JiraURLs(rt.Config)
	}
	return func(sink, result string) string {
		site, ok := sites[sink]
		if !ok || !jiraKey.MatchString(result) {
			return ""
		}
		u, err := url.Parse(site)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			return ""
		}
		return strings.TrimSuffix(site, "/") + "/browse/" + result
	}
}

// ago says how long before now t was, as a person would ("3 min ago"), or
// how long until it is ("in 5 s").
func (c *console) ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return relative(c.now().Sub(t), t)
}

func relative(d time.Duration, t time.Time) string {
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		s = fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%d h", int(d.Hours()))
	case d < 60*24*time.Hour:
		s = fmt.Sprintf("%d days", int(d.Hours()/24))
	default:
		return t.UTC().Format("2 Jan 2006")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// exactTime is the full time, for a tooltip; the script puts it in the
// reader's time zone.
func exactTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
}

// sevClass is the badge class of a severity: only known ones get colour.
func sevClass(s string) string {
	if bridge.ValidSeverity(s) {
		return "sev sev-" + s
	}
	return "sev"
}

func statusClass(s string) string {
	switch s {
	case bridge.StatusPending, bridge.StatusDelivered, bridge.StatusFailed:
		return "st st-" + s
	}
	return "st"
}

func outcomeClass(o string) string {
	switch o {
	case bridge.OutcomeAccepted, bridge.OutcomeDuplicate:
		return "num-ok"
	default:
		return "num-bad"
	}
}

// eventURL is the page of one event.
func eventURL(source, id string) string {
	return "/events/" + url.PathEscape(source) + "/" + url.PathEscape(id)
}

// cut shortens s to n runes, on one line.
func cut(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// jsonTok is one token of highlighted JSON: its class and its text. The
// template escapes the text like any other.
type jsonTok struct {
	C string // k (key), s (string), n (number), b (true, false, null), p (punctuation and space)
	T string
}

// maxHighlight is the largest body highlighted token by token; a larger one
// is shown as plain text.
const maxHighlight = 256 << 10

// highlightJSON pretty-prints a JSON text into tokens to colour; text that
// is not JSON comes back as one plain token.
func highlightJSON(v any) []jsonTok {
	var raw []byte
	switch x := v.(type) {
	case []byte:
		raw = x
	case json.RawMessage:
		raw = x
	case string:
		raw = []byte(x)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return []jsonTok{{C: "p", T: fmt.Sprint(x)}}
		}
		raw = b
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return []jsonTok{{C: "p", T: string(raw)}}
	}
	text := buf.String()
	if len(text) > maxHighlight {
		return []jsonTok{{C: "p", T: text}}
	}
	var out []jsonTok
	for i := 0; i < len(text); {
		ch := text[i]
		switch {
		case ch == '"':
			j := i + 1
			for j < len(text) && text[j] != '"' {
				if text[j] == '\\' {
					j++
				}
				j++
			}
			j++
			class := "s"
			if k := j; k < len(text) && text[k] == ':' {
				class = "k"
			}
			out = append(out, jsonTok{C: class, T: text[i:j]})
			i = j
		case ch == '-' || (ch >= '0' && ch <= '9'):
			j := i + 1
			for j < len(text) && strings.IndexByte("0123456789.eE+-", text[j]) >= 0 {
				j++
			}
			out = append(out, jsonTok{C: "n", T: text[i:j]})
			i = j
		case ch == 't' || ch == 'f' || ch == 'n':
			j := i
			for j < len(text) && text[j] >= 'a' && text[j] <= 'z' {
				j++
			}
			out = append(out, jsonTok{C: "b", T: text[i:j]})
			i = j
		default:
			j := i + 1
			for j < len(text) && strings.IndexByte("\"-0123456789tfn", text[j]) < 0 {
				j++
			}
			out = append(out, jsonTok{C: "p", T: text[i:j]})
			i = j
		}
	}
	return out
}

// Cursors are opaque to clients: a kind letter and the store's keyset
// position, base64url-encoded.

func encodeCursor(kind byte, pos int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(string(kind) + strconv.FormatInt(pos, 10)))
}

func decodeCursor(kind byte, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != kind {
		return 0, fmt.Errorf("cursor %q is not one this list gave out", s)
	}
	n, err := strconv.ParseInt(string(b[1:]), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("cursor %q is not one this list gave out", s)
	}
	return n, nil
}

// Page sizes.
const (
	defaultLimit = 50
	maxLimit     = 500
)

func parseLimit(s string) (int, error) {
	if s == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		return 0, fmt.Errorf("limit must be a whole number from 1 to %d", maxLimit)
	}
	return n, nil
}

// withQuery returns path with q, dropping empty values.
func withQuery(path string, q url.Values) string {
	clean := url.Values{}
	for k, vs := range q {
		for _, v := range vs {
			if v != "" {
				clean.Add(k, v)
			}
		}
	}
	if len(clean) == 0 {
		return path
	}
	return path + "?" + clean.Encode()
}
