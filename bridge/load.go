package bridge

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultConfig returns a config with every default filled in; Load decodes
// the file over it.
func DefaultConfig() Config {
	return Config{
		Server: ServerConfig{Listen: DefaultListen, MaxBodyBytes: DefaultMaxBodyBytes},
		Store:  StoreConfig{Path: DefaultStorePath, Retention: Duration(DefaultRetention), Sync: DefaultSync, Lease: Duration(DefaultLease)},
	}
}

// defaultSinkEntry is the common sink settings before a sink's own keys.
func defaultSinkEntry() SinkEntry {
	return SinkEntry{
		Timeout:     Duration(DefaultSinkTimeout),
		Concurrency: DefaultConcurrency,
		Retry: RetryConfig{
			Initial:     Duration(DefaultRetryInitial),
			MaxInterval: Duration(DefaultRetryMax),
			MaxAge:      Duration(DefaultRetryMaxAge),
		},
	}
}

var (
	envRef      = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)
	yamlLineRe  = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	quotedValue = regexp.MustCompile("`[^`]*`")
)

// Load reads, expands and validates a config file. The error, when there is
// one, is Problems: every mistake found, each with the file and its line;
// the config is still returned (as far as it could be decoded) so that the
// caller can go on checking, except after a YAML syntax error, which stops
// at that error. types are the sink types the binary knows; rules are left
// for package rules to compile.
func Load(path string, types map[string]SinkType) (*Config, error) {
	root, ps := parseFile(path)
	if ps != nil {
		return nil, ps
	}
	l := &loader{file: path}
	expandEnv(root, l)

	cfg := DefaultConfig()
	cfg.File = path
	cfg.BaseDir = filepath.Dir(path)
	doc := root.Content[0]
	l.keys(CheckKeys(doc, &cfg, "sinks", "rules"))
	l.decode(doc, &cfg)

	sinksNode := mapValue(doc, "sinks")
	cfg.Sinks = l.sinks(sinksNode, types)
	cfg.Rules = l.rules(mapValue(doc, "rules"))
	for i, n := range seqItems(mapValue(doc, "sources")) {
		if i < len(cfg.Sources) {
			cfg.Sources[i].Line = n.Line
		}
	}
	l.validate(&cfg, doc)
	if len(l.problems) > 0 {
		return &cfg, l.sorted()
	}
	return &cfg, nil
}

// LoadStore reads only the `store:` section, so that commands that need only
// the store (events, deliveries, replay) work while an edit elsewhere in the
// file is broken.
func LoadStore(path string) (*Config, error) {
	root, ps := parseFile(path)
	if ps != nil {
		return nil, ps
	}
	l := &loader{file: path}
	cfg := DefaultConfig()
	cfg.File = path
	cfg.BaseDir = filepath.Dir(path)
	if n := mapValue(root.Content[0], "store"); n != nil {
		expandEnv(n, l)
		l.keys(CheckKeys(n, &cfg.Store))
		l.decode(n, &cfg.Store)
		l.validateStore(&cfg.Store, n)
	}
	cfg.Store.Path = ResolvePath(cfg.BaseDir, cfg.Store.Path)
	if len(l.problems) > 0 {
		return nil, l.sorted()
	}
	return &cfg, nil
}

// parseFile reads path into a YAML document node.
func parseFile(path string) (*yaml.Node, Problems) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: fmt.Sprintf("cannot read config: %v", errors.Unwrap(err))}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		line, msg := splitYAMLError(err.Error())
		return nil, Problems{{File: path, Line: line, Msg: "YAML syntax error: " + msg}}
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, Problems{{File: path, Line: 1, Msg: "the config must be a YAML mapping with server, store, sources, sinks and rules"}}
	}
	return &root, nil
}

func splitYAMLError(s string) (int, string) {
	s = strings.TrimPrefix(s, "yaml: ")
	if m := yamlLineRe.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, s
}

type loader struct {
	file     string
	problems Problems
	envLines map[int]bool // lines whose values came from the environment
}

// add records a problem, once: a section decoded twice (sinks are, whole and
// entry by entry) would otherwise report its mistakes twice.
func (l *loader) add(line int, format string, args ...any) {
	p := Problem{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)}
	for _, q := range l.problems {
		if q == p {
			return
		}
	}
	l.problems = append(l.problems, p)
}

func (l *loader) keys(kps []KeyProblem) {
	for _, k := range kps {
		l.add(k.Line, "%s", k.Msg)
	}
}

// decode decodes n into v, turning yaml's type errors into problems.
func (l *loader) decode(n *yaml.Node, v any) {
	l.wholeNumbers(n, reflect.TypeOf(v), "")
	err := n.Decode(v)
	if err == nil {
		return
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, e := range te.Errors {
			line, msg := splitYAMLError(e)
			if l.envLines[line] {
				// The value may be a secret: say where it came from instead.
				msg = quotedValue.ReplaceAllString(msg, "(the value from the environment)")
			}
			l.add(line, "%s", cleanTypeMsg(msg))
		}
		return
	}
	line, msg := splitYAMLError(err.Error())
	l.add(line, "%s", msg)
}

// wholeNumbers reports every number with a fraction (or out of range) that
// n gives a whole-number setting of type t: yaml.v3 would quietly cut
// max_body_bytes: 100.9 to 100. A whole number written as a float (1e6,
// 100.0) is taken. path is the dotted key path so far within the innermost
// list entry, which is how the other problems name a key.
func (l *loader) wholeNumbers(n *yaml.Node, t reflect.Type, path string) {
	if n == nil || t == nil {
		return
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		if t.Implements(unmarshalerType) {
			return
		}
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return // Duration and the like read their own numbers
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if ft, ok := fields[n.Content[i].Value]; ok {
				l.wholeNumbers(n.Content[i+1], ft, joinKey(path, n.Content[i].Value))
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			l.wholeNumbers(n.Content[i+1], t.Elem(), joinKey(path, n.Content[i].Value))
		}
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				l.wholeNumbers(c, t.Elem(), "")
			}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!float" {
			return
		}
		var f float64
		if n.Decode(&f) != nil || math.IsNaN(f) || math.IsInf(f, 1) {
			return // yaml refuses these itself
		}
		value := n.Value
		if l.envLines[n.Line] {
			value = "(the value from the environment)"
		}
		switch {
		case f != math.Trunc(f):
			l.add(n.Line, "%s: must be a whole number, got %s", path, value)
		case f < math.MinInt64 || t.Kind() >= reflect.Uint && f < 0:
			l.add(n.Line, "%s: %s is out of range", path, value)
		}
	}
}

// joinKey appends key to a dotted path.
func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// cleanTypeMsg makes yaml's Go-flavoured type messages readable.
func cleanTypeMsg(msg string) string {
	// " into" and " int64" come first: " int" would match inside them.
	r := strings.NewReplacer(" into", " into", " int64", " a whole number", "!!str", "text", "!!int", "number", "!!float", "number", "!!bool", "true/false",
		"!!map", "a mapping", "!!seq", "a list", "bridge.Duration", "duration", "bridge.Secret", "text",
		"int64", "a whole number", "float64", "a number", " int", " a whole number", "[]", "a list of ")
	return r.Replace(msg)
}

// problemFromErr turns a Validate error into problems, pointing FieldErrors
// at their key below node n and other errors at n itself.
func (l *loader) problemFromErr(err error, n *yaml.Node, what string) {
	for _, e := range SplitErrors(err) {
		if field, msg, ok := AsFieldError(e); ok {
			l.add(FindKey(n, field), "%s: %s: %s", what, field, msg)
			continue
		}
		line := 0
		if n != nil {
			line = n.Line
		}
		l.add(line, "%s: %v", what, e)
	}
}

func (l *loader) sorted() Problems {
	sort.SliceStable(l.problems, func(i, j int) bool { return l.problems[i].Line < l.problems[j].Line })
	return l.problems
}

// expandEnv replaces ${VAR} and ${VAR:-default} in every scalar value below
// n. An unset variable without a default is a problem naming it.
func expandEnv(n *yaml.Node, l *loader) {
	if n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		if l.envLines == nil {
			l.envLines = map[int]bool{}
		}
		l.envLines[n.Line] = true
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			m := envRef.FindStringSubmatch(ref)
			if v, ok := os.LookupEnv(m[1]); ok && (v != "" || m[2] == "") {
				return v
			}
			if m[2] != "" {
				return m[3]
			}
			l.add(n.Line, "environment variable %s is not set (set it, or write ${%s:-default})", m[1], m[1])
			return ""
		})
		if n.Style != 0 {
			return // quoted, a block scalar or tagged: it stays as written
		}
		// A plain scalar such as ${PORT} takes the type of what it became
		// when that is a number or true/false, and is text otherwise (yaml
		// resolved it as text, "${" and all; a value "null" stays text too).
		n.Tag = "!!str"
		var probe yaml.Node
		if err := yaml.Unmarshal([]byte(n.Value), &probe); err == nil && len(probe.Content) == 1 && probe.Content[0].Kind == yaml.ScalarNode {
			switch tag := probe.Content[0].ShortTag(); tag {
			case "!!int", "!!float", "!!bool":
				n.Tag = tag
			}
		}
		return
	}
	for _, c := range n.Content {
		expandEnv(c, l)
	}
}

// mapValue returns the value node of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// keyColumn returns the column of key in mapping n.
func keyColumn(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Column
		}
	}
	return n.Column
}

// seqItems returns the items of sequence n, or nil.
func seqItems(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

var commonSinkKeys = []string{"name", "type", "timeout", "concurrency", "retry"}

// sinks decodes every sink entry: the common keys into SinkEntry, the rest
// into the type's own config.
func (l *loader) sinks(n *yaml.Node, types map[string]SinkType) []SinkEntry {
	if n != nil && n.Kind != yaml.SequenceNode {
		l.add(n.Line, "sinks must be a list")
		return nil
	}
	var out []SinkEntry
	for _, item := range seqItems(n) {
		e := defaultSinkEntry()
		e.Line = item.Line
		if item.Kind != yaml.MappingNode {
			l.add(item.Line, "each sink must be a mapping with name and type")
			continue
		}
		common := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: item.Line, Column: item.Column}
		own := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: item.Line, Column: item.Column}
		for i := 0; i+1 < len(item.Content); i += 2 {
			dst := own
			if contains(commonSinkKeys, item.Content[i].Value) {
				dst = common
			}
			dst.Content = append(dst.Content, item.Content[i], item.Content[i+1])
		}
		l.keys(CheckKeys(common, &e))
		l.decode(common, &e)
		what := fmt.Sprintf("sink %q", e.Name)
		t, ok := types[e.Type]
		switch {
		case e.Type == "":
			l.add(item.Line, "%s: type is required (one of %s)", what, typeNames(types))
		case !ok:
			l.add(FindKey(item, "type"), "%s: unknown type %q (one of %s)", what, e.Type, typeNames(types))
		default:
			cfg := t.NewConfig()
			l.keys(CheckKeys(own, cfg))
			l.decode(own, cfg)
			l.problemFromErr(cfg.Validate(), item, what)
			e.Config = cfg
		}
		e.node = item
		out = append(out, e)
	}
	return out
}

func typeNames(types map[string]SinkType) string {
	names := make([]string, 0, len(types))
	for k := range types {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// rules decodes the rules list, keeping each action's YAML for package rules.
func (l *loader) rules(n *yaml.Node) []RuleConfig {
	if n != nil && n.Kind != yaml.SequenceNode {
		l.add(n.Line, "rules must be a list")
		return nil
	}
	var out []RuleConfig
	for _, item := range seqItems(n) {
		var r RuleConfig
		r.Line = item.Line
		if item.Kind != yaml.MappingNode {
			l.add(item.Line, "each rule must be a mapping with name, when and actions")
			continue
		}
		l.keys(CheckKeys(item, &r, "actions"))
		l.decode(item, &r)
		if w := mapValue(item, "when"); w != nil {
			r.WhenLine, r.WhenCol = w.Line, w.Column
			switch {
			case w.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0:
				r.WhenCol++ // the expression starts after the quote
			case w.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
				// A block scalar starts on the next line, indented below its key.
				r.WhenLine++
				r.WhenCol = keyColumn(item, "when") + 2
			}
		}
		r.Actions = nil
		acts := mapValue(item, "actions")
		if acts != nil && acts.Kind != yaml.SequenceNode {
			l.add(acts.Line, "rule %q: actions must be a list", r.Name)
		}
		for _, a := range seqItems(acts) {
			ac := ActionConfig{Node: a, Line: a.Line}
			if a.Kind != yaml.MappingNode {
				l.add(a.Line, "rule %q: each action must be a mapping with a sink", r.Name)
				continue
			}
			if s := mapValue(a, "sink"); s != nil {
				ac.Sink = s.Value
			}
			r.Actions = append(r.Actions, ac)
		}
		out = append(out, r)
	}
	return out
}

// validate checks every section after decoding.
func (l *loader) validate(cfg *Config, doc *yaml.Node) {
	srv := mapValue(doc, "server")
	s := cfg.Server
	if s.Listen == "" {
		l.add(FindKey(srv, "listen"), "server: listen is required (for example \":8080\")")
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		l.add(FindKey(srv, "tls_cert"), "server: tls_cert and tls_key go together: set both to serve HTTPS, or neither")
	}
	cfg.Server.TLSCert = ResolvePath(cfg.BaseDir, s.TLSCert)
	cfg.Server.TLSKey = ResolvePath(cfg.BaseDir, s.TLSKey)
	for _, f := range []string{cfg.Server.TLSCert, cfg.Server.TLSKey} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				l.add(FindKey(srv, "tls_cert"), "server: cannot read TLS file %s", f)
			}
		}
	}
	if s.MaxBodyBytes <= 0 {
		l.add(FindKey(srv, "max_body_bytes"), "server: max_body_bytes must be positive")
	}
	l.validateStore(&cfg.Store, mapValue(doc, "store"))
	cfg.Store.Path = ResolvePath(cfg.BaseDir, cfg.Store.Path)
	l.validateConsole(cfg, mapValue(doc, "console"))

	srcNodes := seqItems(mapValue(doc, "sources"))
	seen := map[string]int{}
	for i := range cfg.Sources {
		src := &cfg.Sources[i]
		var n *yaml.Node
		if i < len(srcNodes) {
			n = srcNodes[i]
		}
		what := fmt.Sprintf("source %q", src.Name)
		if src.Name != "" && seen[src.Name] > 0 {
			l.add(FindKey(n, "name"), "%s: name is used twice (also at line %d)", what, seen[src.Name])
		} else if src.Name != "" {
			seen[src.Name] = src.Line
		}
		l.problemFromErr(src.Validate(), n, what)
	}

	sinkSeen := map[string]int{}
	for i := range cfg.Sinks {
		e := &cfg.Sinks[i]
		what := fmt.Sprintf("sink %q", e.Name)
		switch {
		case e.Name == "":
			l.add(e.Line, "sink: name is required")
		case sinkSeen[e.Name] > 0:
			l.add(FindKey(e.node, "name"), "%s: name is used twice (also at line %d)", what, sinkSeen[e.Name])
		default:
			sinkSeen[e.Name] = e.Line
		}
		if e.Timeout <= 0 {
			l.add(FindKey(e.node, "timeout"), "%s: timeout must be positive", what)
		}
		if e.Concurrency < 1 {
			l.add(FindKey(e.node, "concurrency"), "%s: concurrency must be at least 1", what)
		}
		r := e.Retry
		if r.Initial <= 0 || r.MaxInterval < r.Initial || r.MaxAge <= 0 {
			l.add(FindKey(e.node, "retry"), "%s: retry needs initial > 0, max_interval >= initial and max_age > 0", what)
		}
	}
}

func (l *loader) validateStore(st *StoreConfig, n *yaml.Node) {
	if st.IsPostgres() {
		// The default path does not count: only one written in the file.
		if mapValue(n, "path") != nil {
			l.add(FindKey(n, "path"), "store: path (SQLite) and postgres are exclusive: keep one")
		}
		if mapValue(n, "sync") != nil {
			l.add(FindKey(n, "sync"), "store: sync is SQLite's only; PostgreSQL commits durably (its own synchronous_commit)")
		}
		st.Path = ""
		if err := checkPostgresURL(st.Postgres.Value()); err != nil {
			l.add(FindKey(n, "postgres"), "store: postgres: %v", err)
		}
		if st.Lease.D() < time.Second {
			l.add(FindKey(n, "lease"), "store: lease must be at least 1s (for example 30s)")
		}
	} else {
		if st.Path == "" {
			l.add(FindKey(n, "path"), "store: path is required (or postgres, for a PostgreSQL store)")
		}
		if st.Sync != "full" && st.Sync != "normal" {
			l.add(FindKey(n, "sync"), "store: sync must be full (an ack survives power loss) or normal (survives a process crash only), not %q", st.Sync)
		}
		if mapValue(n, "lease") != nil {
			l.add(FindKey(n, "lease"), "store: lease is PostgreSQL's only: one SQLite store has one process")
		}
	}
	if st.Retention <= 0 {
		l.add(FindKey(n, "retention"), "store: retention must be positive (for example 720h)")
	}
}

// checkPostgresURL checks the shape of a store.postgres URL without
// connecting, and without quoting it: it may hold a password.
func checkPostgresURL(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("not a valid URL (postgres://user:password@host:5432/database)")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return errors.New("must start with postgres:// (postgres://user:password@host:5432/database)")
	}
	if u.Host == "" {
		return errors.New("names no host (postgres://user:password@host:5432/database)")
	}
	return nil
}
