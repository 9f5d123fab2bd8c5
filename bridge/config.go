package bridge

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole config file (SPEC 8). Load builds it; every section is
// validated and every problem reported with its line.
type Config struct {
	Server  ServerConfig   `yaml:"server"`
	Store   StoreConfig    `yaml:"store"`
	Sources []SourceConfig `yaml:"sources"`
	Sinks   []SinkEntry    `yaml:"sinks"`
	Rules   []RuleConfig   `yaml:"rules"`
	Console *ConsoleConfig `yaml:"console"` // nil: no console

	File    string `yaml:"-"` // the file it was loaded from
	BaseDir string `yaml:"-"` // the file's directory: relative paths start here
	// SinksUnread is set when the file has no sinks section that could be
	// read (none, a misspelt one, or not a list). Load has then said so
	// once; the rules' sink names cannot be checked, and are not reported
	// one by one as unknown.
	SinksUnread bool `yaml:"-"`
}

// ServerConfig is the `server:` section.
type ServerConfig struct {
	Listen       string `yaml:"listen"`
	TLSCert      string `yaml:"tls_cert"`
	TLSKey       string `yaml:"tls_key"`
	MaxBodyBytes int64  `yaml:"max_body_bytes"`
}

// StoreConfig is the `store:` section: an SQLite file (path, the default)
// or a PostgreSQL database that several replicas share (postgres).
type StoreConfig struct {
	Path      string   `yaml:"path"`
	Postgres  Secret   `yaml:"postgres"` // a postgres:// URL; it may hold a password
	Retention Duration `yaml:"retention"`
	Sync      string   `yaml:"sync"`  // SQLite only: full or normal
	Lease     Duration `yaml:"lease"` // PostgreSQL only: how long a replica's claim on a delivery lasts unrenewed
}

// ConsoleConfig is the `console:` section (SPEC 10): the web console's own
// listener and its users. Users maps a user name to the bcrypt hash of its
// password (`bridge hash-password`); hashes are Secrets, so they never print.
type ConsoleConfig struct {
	Listen string            `yaml:"listen"`
	Users  map[string]Secret `yaml:"users"`
}

// IsPostgres reports whether the store is PostgreSQL.
func (c StoreConfig) IsPostgres() bool { return c.Postgres.Value() != "" }

// RateLimit is a source's request rate limit.
type RateLimit struct {
	RPS   float64 `yaml:"rps"`
	Burst int     `yaml:"burst"`
}

// SourceConfig is one `sources:` entry (SPEC 4.2).
type SourceConfig struct {
	Name            string       `yaml:"name"`
	Vendor          string       `yaml:"vendor"`
	Secret          Secret       `yaml:"secret"`
	Secrets         []Secret     `yaml:"secrets"`
	SignatureHeader string       `yaml:"signature_header"`
	Token           Secret       `yaml:"token"`
	TokenHeader     string       `yaml:"token_header"`
	Insecure        bool         `yaml:"insecure"`
	Severity        string       `yaml:"severity"`
	RateLimit       *RateLimit   `yaml:"rate_limit"`
	Antly           *AntlyConfig `yaml:"antly"`

	Line int `yaml:"-"`
}

// AntlyConfig is a source's `antly:` section (SPEC 4.3).
type AntlyConfig struct {
	APIURL      string   `yaml:"api_url"`
	AccessToken Secret   `yaml:"access_token"`
	Prefix      string   `yaml:"prefix"`
	WebhookURL  string   `yaml:"webhook_url"`
	Triggers    []string `yaml:"triggers"`
}

// RetryConfig is a sink's retry schedule: exponential with jitter from
// Initial up to MaxInterval between attempts, giving up after MaxAge.
type RetryConfig struct {
	Initial     Duration `yaml:"initial"`
	MaxInterval Duration `yaml:"max_interval"`
	MaxAge      Duration `yaml:"max_age"`
}

// SinkEntry is one `sinks:` entry: the settings every sink has, and its
// type's own config.
type SinkEntry struct {
	Name        string      `yaml:"name"`
	Type        string      `yaml:"type"`
	Timeout     Duration    `yaml:"timeout"`
	Concurrency int         `yaml:"concurrency"`
	Retry       RetryConfig `yaml:"retry"`

	Config SinkConfig `yaml:"-"` // the type's own config, decoded by Load
	Line   int        `yaml:"-"`
	node   *yaml.Node // the entry, to point problems at its keys
}

// Fingerprint identifies the entry's settings as written (after ${VAR}
// expansion, secrets included), so a reload can tell a changed sink from an
// unchanged one without printing anything.
func (e *SinkEntry) Fingerprint() string {
	if e.node == nil {
		return ""
	}
	b, err := yaml.Marshal(e.node)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// KeyLine returns the line of a key of this sink's entry (a dotted path),
// for problems found after loading.
func (e *SinkEntry) KeyLine(field string) int {
	if e.node == nil {
		return e.Line
	}
	return FindKey(e.node, field)
}

// RuleConfig is one `rules:` entry as written; package rules compiles it.
type RuleConfig struct {
	Name    string         `yaml:"name"`
	When    string         `yaml:"when"`
	Stop    bool           `yaml:"stop"`
	Actions []ActionConfig `yaml:"actions"`

	Line     int `yaml:"-"` // the rule's first line
	WhenLine int `yaml:"-"` // the line of its when:
	WhenCol  int `yaml:"-"` // the column where the expression starts

	// unread are the rule's keys whose values Load could not read (and
	// reported): when: [x], actions: 5.
	unread []string
}

// Unread reports whether Load could not read the value of the rule's key
// (a list for when, a number for actions) and said so: a check of that key
// would only report the same mistake again ("when is required").
func (r RuleConfig) Unread(key string) bool { return contains(r.unread, key) }

// ActionConfig is one action of a rule as written: the sink it goes to and
// its fields, kept as YAML for package rules to check and compile.
type ActionConfig struct {
	Sink string `yaml:"sink"`
	// ID names the action within its rule, for a later action's after.
	// After names an earlier action of the rule: this one is delivered
	// once that one is, and its templates read that one's result and link
	// as .results.ID and .links.ID. Both are here for the schema; the
	// loader leaves them empty, and package rules reads them from Node,
	// where their lines are.
	ID    string     `yaml:"id" jsonschema:"pattern=^[A-Za-z_][A-Za-z0-9_]*$"`
	After string     `yaml:"after"`
	Node  *yaml.Node `yaml:"-"` // the whole action mapping, `sink` included
	Line  int        `yaml:"-"`
	// FromEnv reports whether the value at a line of the file came from a
	// ${VAR}, so that messages about it do not quote it; nil: none did.
	FromEnv func(line int) bool `yaml:"-"`
}

// Default values, in one place.
const (
	DefaultListen       = ":8080"
	DefaultMaxBodyBytes = 1 << 20
	DefaultStorePath    = "data/bridge.db"
	DefaultRetention    = 720 * time.Hour
	DefaultSync         = "full"
	DefaultLease        = 30 * time.Second
	DefaultSinkTimeout  = 10 * time.Second
	DefaultConcurrency  = 4
	DefaultRetryInitial = time.Second
	DefaultRetryMax     = 5 * time.Minute
	DefaultRetryMaxAge  = 24 * time.Hour
)

// Duration is a time.Duration written in YAML as duration text ("10s",
// "24h", "30d", "1w2d") or a number of seconds.
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration as Go does.
func (d Duration) String() string { return time.Duration(d).String() }

// durationHint says what a duration looks like, for the messages that
// refuse one.
const durationHint = "like 500ms, 10s, 5m, 24h, 30d or 1w, or a number of seconds"

// UnmarshalYAML reads duration text or a number of seconds. The error names
// no key: the loader puts the key's path in front of it.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	// A *yaml.TypeError lets the decoder go on and report every problem.
	bad := func(msg string) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
	}
	if n.Kind != yaml.ScalarNode {
		return bad("must be a duration " + durationHint + ", got " + kindName(n))
	}
	if n.Tag == "!!int" || n.Tag == "!!float" {
		var s float64
		if err := n.Decode(&s); err != nil || s < 0 || math.IsNaN(s) || s*float64(time.Second) > math.MaxInt64 {
			return bad(fmt.Sprintf("%q is not a duration (%s)", n.Value, durationHint))
		}
		*d = Duration(s * float64(time.Second))
		return nil
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return bad(fmt.Sprintf("%q is not a duration (%s)", n.Value, durationHint))
	}
	*d = Duration(v)
	return nil
}

// durationPart is one number and unit of duration text.
var durationPart = regexp.MustCompile(`^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d|w)`)

// ParseDuration reads duration text as time.ParseDuration does, with two
// more units, as Prometheus has them: d (24h) and w (7d), so that 30d and
// 1w2d3h are durations. A leading + is allowed; negative durations are not.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	s = strings.TrimPrefix(s, "+")
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, fmt.Errorf("%q is not a duration", orig)
	}
	var total time.Duration
	for s != "" {
		m := durationPart.FindStringSubmatch(s)
		if m == nil {
			return 0, fmt.Errorf("%q is not a duration", orig)
		}
		s = s[len(m[0]):]
		num, unit, mult := m[1], m[2], time.Duration(1)
		switch unit {
		case "d":
			unit, mult = "h", 24
		case "w":
			unit, mult = "h", 7*24
		}
		v, err := time.ParseDuration(num + unit)
		if err != nil || v > math.MaxInt64/mult {
			return 0, fmt.Errorf("%q is not a duration (too long)", orig)
		}
		v *= mult
		if total > math.MaxInt64-v {
			return 0, fmt.Errorf("%q is not a duration (too long)", orig)
		}
		total += v
	}
	return total, nil
}

// KindName says what a YAML node is, for messages: "a mapping", "a list"
// or "text".
func KindName(n *yaml.Node) string { return kindName(n) }

// MapValue returns the value node of key in mapping n, or nil.
func MapValue(n *yaml.Node, key string) *yaml.Node { return mapValue(n, key) }

// kindName says what a node is, for messages: a mapping, a list, or text.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		if n.Alias != nil {
			return kindName(n.Alias)
		}
	}
	return "text"
}

// MarshalYAML writes Go duration text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// ResolvePath resolves p against base unless p is absolute or empty.
func ResolvePath(base, p string) string {
	if p == "" || filepath.IsAbs(p) || base == "" {
		return p
	}
	return filepath.Join(base, p)
}

// Problem is one thing wrong with a config file, at a line.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// Problems is every problem found in a config file. As an error it prints
// one problem per line, FILE:LINE: message.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// fieldError points a validation message at one key of a mapping.
type fieldError struct {
	field string // dotted path below the mapping: "url", "tls.ca_file"
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// FieldError reports a problem with one key of a config mapping, so the
// loader can point at that key's line. field may be a dotted path
// ("tls.ca_file"); msg should say what to fix.
func FieldError(field, msg string) error { return &fieldError{field: field, msg: msg} }

// FieldErrorf is FieldError with a format.
func FieldErrorf(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// AsFieldError splits a FieldError into its field path and message.
func AsFieldError(err error) (field, msg string, ok bool) {
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe.field, fe.msg, true
	}
	return "", "", false
}

// FindKey returns the line of the key at a dotted path below mapping node n,
// or n's own line when the path does not exist.
func FindKey(n *yaml.Node, path string) int {
	if n == nil {
		return 0
	}
	cur := n
	for _, part := range strings.Split(path, ".") {
		if cur.Kind != yaml.MappingNode {
			return cur.Line
		}
		found := false
		for i := 0; i+1 < len(cur.Content); i += 2 {
			if cur.Content[i].Value == part {
				if strings.Contains(path, ".") {
					cur = cur.Content[i+1]
				} else {
					return cur.Content[i].Line
				}
				found = true
				break
			}
		}
		if !found {
			return cur.Line
		}
	}
	return cur.Line
}

// SplitErrors returns the errors joined in err (errors.Join, nested joins
// included), in order; nil for nil. Validate methods join their problems,
// and the loader reports each one at its own line.
func SplitErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, SplitErrors(e)...)
		}
		return out
	}
	return []error{err}
}
