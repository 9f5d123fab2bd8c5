package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"bridge/bridge"
)

// Test is one rule test (SPEC 6): a payload posted to a source, and what
// the rules must make of it.
type Test struct {
	Name    string
	Source  string // the configured source whose normalizer reads the payload
	Payload []byte // the raw body, as the vendor would post it
	Expect  Expect
	Line    int // the test's line in its file
	// Chain gives chained actions the results and links of the actions
	// they run after (`results:` and `links:`); those it leaves out read
	// "<results.ID>" and "<links.ID>".
	Chain Chain
}

// Expect is what a test requires. A list left out of the file is not
// checked; an empty list expects nothing.
type Expect struct {
	Rules      []string         // exactly the rules that match (in any order)
	HasRules   bool             // rules was given
	Actions    []map[string]any // per planned action, in order: the fields to compare (sink included)
	HasActions bool             // actions was given
}

// testFile is the layout of a tests file.
type testFile struct {
	Tests []testEntry `yaml:"tests"`
}

type testEntry struct {
	Name        string            `yaml:"name"`
	Source      string            `yaml:"source"`
	PayloadFile string            `yaml:"payload_file"`
	Payload     rawNode           `yaml:"payload"`
	Results     map[string]string `yaml:"results"`
	Links       map[string]string `yaml:"links"`
	Expect      struct {
		Rules   rawNode `yaml:"rules"`
		Actions rawNode `yaml:"actions"`
	} `yaml:"expect"`
}

// rawNode keeps a value as YAML; CheckKeys does not look inside it (the
// keys of a payload or of expected fields are free).
type rawNode struct{ yaml.Node }

// UnmarshalYAML keeps the node.
func (r *rawNode) UnmarshalYAML(n *yaml.Node) error {
	r.Node = *n
	return nil
}

// LoadTests reads a tests file. Problems come as bridge.Problems with the
// file's lines; payload_file is relative to the tests file's directory. An
// inline payload that is a mapping is posted as JSON; one written as text
// is posted as it is (to test bodies that are not valid JSON).
func LoadTests(path string) ([]Test, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rule tests: %w", err)
	}
	var probs bridge.Problems
	add := func(line int, format string, args ...any) {
		probs = append(probs, bridge.Problem{File: path, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		line := 0
		msg := err.Error()
		if m := yamlErrLine.FindStringSubmatch(strings.TrimPrefix(msg, "yaml: ")); m != nil {
			fmt.Sscan(m[1], &line)
			msg = m[2]
		}
		add(line, "%s", msg)
		return nil, probs
	}
	if len(doc.Content) == 0 {
		add(0, "no tests: the file is empty")
		return nil, probs
	}
	root := doc.Content[0]
	for _, kp := range bridge.CheckKeys(root, &testFile{}) {
		add(kp.Line, "%s", kp.Msg)
	}
	var tf testFile
	if err := root.Decode(&tf); err != nil {
		for _, p := range yamlProblems(err, root.Line) {
			add(p.line, "%s", p.msg)
		}
		return nil, probs
	}
	testsNode := mappingValue(root, "tests")
	if testsNode == nil || len(tf.Tests) == 0 {
		add(root.Line, "no tests: the file needs a `tests:` list")
		return nil, probs
	}
	dir := filepath.Dir(path)
	var tests []Test
	for i, e := range tf.Tests {
		n := testsNode.Content[i]
		t := Test{Name: e.Name, Source: e.Source, Line: n.Line, Chain: Chain{Results: e.Results, Links: e.Links}}
		label := fmt.Sprintf("test %q", e.Name)
		if e.Name == "" {
			label = fmt.Sprintf("test %d", i+1)
			add(n.Line, "%s: name is required", label)
		}
		if e.Source == "" {
			add(n.Line, "%s: source is required", label)
		}
		switch {
		case e.PayloadFile != "" && e.Payload.Kind != 0:
			add(bridge.FindKey(n, "payload"), "%s: give payload or payload_file, not both", label)
		case e.PayloadFile != "":
			p := bridge.ResolvePath(dir, e.PayloadFile)
			body, err := os.ReadFile(p)
			if err != nil {
				add(bridge.FindKey(n, "payload_file"), "%s: payload_file: %v", label, err)
			}
			t.Payload = body
		case e.Payload.Kind != 0:
			body, err := payloadBytes(&e.Payload.Node)
			if err != nil {
				add(e.Payload.Line, "%s: payload: %v", label, err)
			}
			t.Payload = body
		default:
			add(n.Line, "%s: payload or payload_file is required", label)
		}
		if r := &e.Expect.Rules; r.Kind != 0 {
			t.Expect.HasRules = true
			if err := r.Decode(&t.Expect.Rules); err != nil {
				add(r.Line, "%s: expect.rules must be a list of rule names", label)
			}
		}
		if a := &e.Expect.Actions; a.Kind != 0 {
			t.Expect.HasActions = true
			if err := a.Decode(&t.Expect.Actions); err != nil {
				add(a.Line, "%s: expect.actions must be a list of mappings (sink and fields)", label)
			}
		}
		tests = append(tests, t)
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return tests, nil
}

// mappingValue returns the value of key in mapping n, or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return resolve(n.Content[i+1])
		}
	}
	return nil
}

// payloadBytes turns an inline payload into a body: a mapping is written
// as JSON; text is taken as the raw body (to test bodies that are not JSON).
func payloadBytes(n *yaml.Node) ([]byte, error) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		return []byte(n.Value), nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot be written as JSON: %w", err)
	}
	return b, nil
}

// RunTests runs tests against set, normalizing each payload as its source
// would, and writes one line per test ("PASS name", or "FAIL name: " and
// every difference) and a final "N passed, N failed". Besides the
// expectations, a rule that fails to evaluate or a payload the source
// refuses fails the test.
func RunTests(set *Set, tests []Test, normalize func(source string, payload []byte) (*bridge.Event, error), w io.Writer) (passed, failed int) {
	for _, t := range tests {
		fails := runTest(set, t, normalize)
		if len(fails) == 0 {
			passed++
			fmt.Fprintf(w, "PASS %s\n", t.Name)
			continue
		}
		failed++
		fmt.Fprintf(w, "FAIL %s: %s\n", t.Name, strings.Join(fails, "; "))
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", passed, failed)
	return passed, failed
}

// runTest returns what is wrong, or nothing when the test passes.
func runTest(set *Set, t Test, normalize func(string, []byte) (*bridge.Event, error)) []string {
	ev, err := normalize(t.Source, t.Payload)
	if err != nil {
		return []string{fmt.Sprintf("source %s: %v", t.Source, err)}
	}
	res := set.Evaluate(ev)
	for i, p := range res.Planned {
		if p.After != "" && p.Err == nil {
			c := t.Chain.filled(set.ancestorsOf(p))
			res.Planned[i].Action, res.Planned[i].Err = RenderDeferred(p.Action, ev, c)
		}
	}
	var fails []string
	for _, e := range res.Errors {
		fails = append(fails, fmt.Sprintf("rule %q: %v", e.Rule, e.Err))
	}
	if t.Expect.HasRules {
		got := append([]string(nil), res.Matched...)
		want := append([]string(nil), t.Expect.Rules...)
		sort.Strings(got)
		sort.Strings(want)
		if !slicesEqual(got, want) {
			fails = append(fails, fmt.Sprintf("rules: matched %s, want %s", list(res.Matched), list(t.Expect.Rules)))
		}
	}
	if t.Expect.HasActions {
		if len(res.Planned) != len(t.Expect.Actions) {
			fails = append(fails, fmt.Sprintf("actions: %d planned, want %d", len(res.Planned), len(t.Expect.Actions)))
		}
		for i := 0; i < len(res.Planned) && i < len(t.Expect.Actions); i++ {
			fails = append(fails, compareAction(i+1, res.Planned[i], t.Expect.Actions[i])...)
		}
	}
	return fails
}

// compareAction compares the keys want gives, and only those.
func compareAction(n int, p bridge.Planned, want map[string]any) []string {
	label := fmt.Sprintf("action %d (rule %s, sink %s)", n, p.Rule, p.Sink)
	var fails []string
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if w, ok := want["sink"]; ok && toString(w) != p.Sink {
		fails = append(fails, fmt.Sprintf("%s: sink %s, want %s", label, p.Sink, toString(w)))
	}
	if p.Err != nil {
		return append(fails, fmt.Sprintf("%s: %v", label, p.Err))
	}
	got := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(p.Action))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		return append(fails, fmt.Sprintf("%s: rendered fields: %v", label, err))
	}
	for _, k := range keys {
		if k == "sink" {
			continue
		}
		g, ok := got[k]
		if !ok {
			fails = append(fails, fmt.Sprintf("%s: %s is not set, want %s", label, k, show(want[k])))
			continue
		}
		if !sameValue(g, want[k]) {
			fails = append(fails, fmt.Sprintf("%s: %s is %s, want %s", label, k, show(g), show(want[k])))
		}
	}
	return fails
}

// sameValue compares a rendered value (decoded from JSON, numbers as
// json.Number) with an expected one (decoded from YAML). Scalars compare by
// their text, so `count: 2` expects a rendered 2 or "2".
func sameValue(got, want any) bool {
	switch w := want.(type) {
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameValue(g[i], w[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok || !sameValue(gv, wv) {
				return false
			}
		}
		return true
	case nil:
		return got == nil
	}
	switch got.(type) {
	case []any, map[string]any, nil:
		return false
	}
	return toString(got) == toString(want) || reflect.DeepEqual(got, want)
}

// show writes v as JSON as the action has it: <, > and & as they are
// (Slack's <url|text> links read as written).
func show(v any) string {
	b, err := encodeJSON(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func list(names []string) string {
	return "[" + strings.Join(names, ", ") + "]"
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
