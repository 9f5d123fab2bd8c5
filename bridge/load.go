package bridge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
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
	envRef     = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)
	yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
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
	l := &loader{file: path, baseDir: filepath.Dir(path)}
	expandEnv(root, l)

	cfg := DefaultConfig()
	cfg.File = path
	cfg.BaseDir = l.baseDir
	doc := root.Content[0]
	l.keys(CheckKeys(doc, &cfg, "sinks", "rules"))
	// sinks and rules are decoded entry by entry below, each against its
	// own types: decoding them here too would report their mistakes twice.
	l.decode(withoutKeys(doc, "sinks", "rules"), &cfg, "", "")

	sinksNode := mapValue(doc, "sinks")
	cfg.Sinks = l.sinks(sinksNode, types)
	cfg.Rules = l.rules(mapValue(doc, "rules"))
	for i, n := range seqItems(mapValue(doc, "sources")) {
		if i < len(cfg.Sources) {
			cfg.Sources[i].Line = n.Line
		}
	}
	l.validate(&cfg, doc)
	l.sinkRefs(&cfg, doc)
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
	l := &loader{file: path, baseDir: filepath.Dir(path)}
	cfg := DefaultConfig()
	cfg.File = path
	cfg.BaseDir = l.baseDir
	if n := mapValue(root.Content[0], "store"); n != nil {
		expandEnv(n, l)
		l.keys(CheckKeys(n, &cfg.Store))
		l.decode(n, &cfg.Store, "", "store")
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
	baseDir  string // the config file's directory: relative paths start here
	problems Problems
	envLines map[int]bool        // lines whose values came from the environment
	failed   map[string][]string // list entry label ("" at the top) → keys whose values could not be read
}

// add records a problem, once: a mistake two checks find (a key of a rule
// decoded here and looked at again by package rules) is one line.
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

// decode decodes n into v: one problem per value that is not of its key's
// type, naming the key (its dotted path, after path, the section's own
// prefix, and within label, the list entry it is in) and the type the key
// takes. Each key that could not be read is remembered, so that Validate's
// complaints about the value it was left with are not reported too.
func (l *loader) decode(n *yaml.Node, v any, label, path string) {
	c := &typeChecker{fromEnv: l.fromEnv}
	c.walk(n, reflect.TypeOf(v), label, path)
	for _, p := range c.decode(n, v, label) {
		l.add(p.Line, "%s", p.String())
		if l.failed == nil {
			l.failed = map[string][]string{}
		}
		l.failed[p.Label] = append(l.failed[p.Label], p.Key)
	}
}

// fromEnv reports whether the value at line came from a ${VAR}.
func (l *loader) fromEnv(line int) bool { return l.envLines[line] }

// joinKey appends key to a dotted path.
func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// unreadable reports whether a Validate problem of the entry what (at its
// key field, "" for one at no key, with message msg) only restates that a
// value could not be read: it is at or below a key that had a type
// problem, or it complains about a key absent from the entry and names the
// unreadable one ("no secret, secrets or token" after "secrets: must be a
// list").
func (l *loader) unreadable(what, field, msg string, entry *yaml.Node) bool {
	for _, k := range l.failed[what] {
		if k == "" {
			continue
		}
		if field != "" && (field == k || below(field, k) || below(k, field)) {
			return true
		}
		absent := field == "" || entry == nil || FindKey(entry, field) == entry.Line
		name := k[strings.LastIndex(k, ".")+1:]
		if i := strings.IndexByte(name, '['); i >= 0 {
			name = name[:i]
		}
		if absent && containsWord(msg, name) {
			return true
		}
	}
	return false
}

// below reports whether key path p is below key path q: "rate_limit.rps"
// below "rate_limit", "secrets[1]" below "secrets".
func below(p, q string) bool { return strings.HasPrefix(p, q+".") || strings.HasPrefix(p, q+"[") }

// containsWord reports whether w occurs in s as a whole word (a key name:
// letters, digits and underscores).
func containsWord(s, w string) bool {
	isWord := func(b byte) bool {
		return b == '_' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
	}
	for i := 0; w != ""; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		at, end := i+j, i+j+len(w)
		if (at == 0 || !isWord(s[at-1])) && (end == len(s) || !isWord(s[end])) {
			return true
		}
		i = at + 1
	}
	return false
}

// problemFromErr turns a Validate error into problems, pointing FieldErrors
// at their key below node n and other errors at n itself.
func (l *loader) problemFromErr(err error, n *yaml.Node, what string) {
	for _, e := range SplitErrors(err) {
		if field, msg, ok := AsFieldError(e); ok {
			if !l.unreadable(what, field, msg, n) {
				l.add(FindKey(n, field), "%s: %s: %s", what, field, msg)
			}
			continue
		}
		if l.unreadable(what, "", e.Error(), n) {
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

// withoutKeys returns mapping n without the given keys (a shallow copy), or
// n itself when it is not a mapping.
func withoutKeys(n *yaml.Node, keys ...string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return n
	}
	c := *n
	c.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !contains(keys, n.Content[i].Value) {
			c.Content = append(c.Content, n.Content[i], n.Content[i+1])
		}
	}
	return &c
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
	for i, item := range seqItems(n) {
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
		label := entryLabel("sinks", item, i)
		l.keys(CheckKeys(common, &e))
		l.decode(common, &e, label, "")
		what := fmt.Sprintf("sink %q", e.Name)
		t, ok := types[e.Type]
		switch {
		case e.Type == "":
			if !l.unreadable(label, "type", "", item) {
				l.add(item.Line, "%s: type is required (one of %s)", what, typeNames(types))
			}
		case !ok:
			mean := ""
			if s := suggest(e.Type, strings.Split(typeNames(types), ", ")); s != "" {
				mean = ": did you mean " + s + "?"
			}
			l.add(FindKey(item, "type"), "%s: unknown type %q%s (one of %s)", what, e.Type, mean, typeNames(types))
		default:
			cfg := t.NewConfig()
			// The keys every sink takes are known here too, so that a typo
			// of one (timout) is offered its right spelling.
			l.keys(checkKeysAlso(own, cfg, commonSinkKeys))
			l.decode(own, cfg, label, "")
			verr := cfg.Validate()
			l.problemFromErr(verr, item, what)
			// What building the sink would refuse (a TLS file that cannot
			// be read) is found now, at its line, not when serve starts.
			if fc, ok := cfg.(FileChecker); ok && verr == nil {
				l.problemFromErr(fc.CheckFiles(l.baseDir), item, what)
			}
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
		// Actions are package rules' to check, against their sink's type.
		label := fmt.Sprintf("rule %d", len(out)+1) // as package rules names a rule without a name
		if name := mapValue(item, "name"); name != nil && name.Kind == yaml.ScalarNode && strings.TrimSpace(name.Value) != "" {
			label = fmt.Sprintf("rule %q", name.Value)
		}
		l.decode(withoutKeys(item, "actions"), &r, label, "")
		r.unread = l.failed[label]
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
		if acts != nil && acts.Kind != yaml.SequenceNode && !(acts.Kind == yaml.ScalarNode && acts.ShortTag() == "!!null") {
			l.add(acts.Line, "%s: actions: must be a list of actions, got %s", label, (&typeChecker{fromEnv: l.fromEnv}).got(acts))
			r.unread = append(r.unread, "actions")
		}
		for _, a := range seqItems(acts) {
			ac := ActionConfig{Node: a, Line: a.Line, FromEnv: l.fromEnv}
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
	switch host, port, err := net.SplitHostPort(s.Listen); {
	case s.Listen == "":
		l.add(FindKey(srv, "listen"), "server: listen is required (for example \"127.0.0.1:8080\" or \":8080\")")
	case l.unreadable("", "server.listen", "", doc):
	case err != nil && validPort(s.Listen):
		l.add(FindKey(srv, "listen"), "server: listen %q is not host:port: write \"127.0.0.1:%s\" (this machine only) or \":%s\" (every interface)", s.Listen, s.Listen, s.Listen)
	case err != nil:
		l.add(FindKey(srv, "listen"), "server: listen %q is not host:port (for example \"127.0.0.1:8080\", or \":8080\" for every interface)", s.Listen)
	case !validPort(port) && !knownService(port):
		l.add(FindKey(srv, "listen"), "server: listen %q: port %q is not a number from 0 to 65535", s.Listen, port)
	case strings.ContainsAny(host, " /"):
		l.add(FindKey(srv, "listen"), "server: listen %q: %q is not a host name or IP address", s.Listen, host)
	}
	cfg.Server.TLSCert = ResolvePath(cfg.BaseDir, s.TLSCert)
	cfg.Server.TLSKey = ResolvePath(cfg.BaseDir, s.TLSKey)
	l.validateServerTLS(cfg.Server, srv)
	if s.MaxBodyBytes <= 0 && !l.unreadable("", "server.max_body_bytes", "", doc) {
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

// knownService reports whether port is a TCP service name net.Listen takes
// (http, https), from the system's services file: no network is asked.
func knownService(port string) bool {
	if port == "" {
		return false
	}
	_, err := net.LookupPort("tcp", port)
	return err == nil
}

// validateServerTLS checks server.tls_cert and tls_key (resolved against the
// config file's directory) as serve will load them: set together, readable,
// and a certificate with its key.
func (l *loader) validateServerTLS(s ServerConfig, srv *yaml.Node) {
	if s.TLSCert == "" && s.TLSKey == "" {
		return
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		l.add(FindKey(srv, "tls_cert"), "server: tls_cert and tls_key go together: set both to serve HTTPS, or neither")
		return
	}
	readable := true
	for _, f := range []struct{ key, path string }{{"tls_cert", s.TLSCert}, {"tls_key", s.TLSKey}} {
		if err := readableFile(f.path); err != nil {
			l.add(FindKey(srv, f.key), "server: %s: %v", f.key, err)
			readable = false
		}
	}
	if !readable {
		return
	}
	if _, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey); err != nil {
		l.add(FindKey(srv, "tls_cert"), "server: tls_cert and tls_key are not a PEM certificate and its private key: %v", err)
	}
}

// readableFile says why the file at path (already resolved) cannot be
// read, or returns nil.
func readableFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("cannot read %s: %v", path, pe.Err)
		}
		return fmt.Errorf("cannot read %s: %v", path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory, not a file", path)
	}
	return nil
}

// sinkRefs checks that the rules' actions have sinks to go to when the
// sinks section is missing or not a list. Then one problem says so, and
// Config.SinksUnread tells package rules not to report every action's sink
// as unknown as well: a misspelt `sinks:` would otherwise bring one error
// per action.
func (l *loader) sinkRefs(cfg *Config, doc *yaml.Node) {
	n := mapValue(doc, "sinks")
	if n != nil && n.Kind == yaml.SequenceNode {
		return
	}
	cfg.SinksUnread = true
	if n != nil {
		return // "sinks must be a list" says it
	}
	var names []string
	for _, r := range cfg.Rules {
		for _, a := range r.Actions {
			if a.Sink != "" && !contains(names, a.Sink) {
				names = append(names, a.Sink)
			}
		}
	}
	if len(names) == 0 {
		return
	}
	sort.Strings(names)
	msg := fmt.Sprintf("rules: the actions send to %s, but there is no sinks section to define them", strings.Join(names, ", "))
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if k := doc.Content[i].Value; k != "sinks" && suggest(k, []string{"sinks"}) != "" {
			msg += fmt.Sprintf(" (is %q at line %d meant to be sinks?)", k, doc.Content[i].Line)
			break
		}
	}
	l.add(FindKey(doc, "rules"), "%s", msg)
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
