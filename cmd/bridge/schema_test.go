package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"gopkg.in/yaml.v3"

	"bridge/bridge"
)

const schemaFile = "../../docs/bridge.schema.json"

// generatedSchema is `bridge schema`'s output, run in-process.
func generatedSchema(t *testing.T) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run([]string{"schema"}, &out, &errb); code != 0 {
		t.Fatalf("bridge schema: exit %d: %s", code, errb.String())
	}
	return out.Bytes()
}

// compileSchema compiles a schema document with a JSON Schema library, as
// an editor would read it.
func compileSchema(t *testing.T, doc []byte) *jsonschema.Schema {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("bridge.schema.json", v); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("bridge.schema.json")
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return s
}

// validateYAML validates a YAML document as written, ${VAR} references
// unexpanded: what an editor sees.
func validateYAML(s *jsonschema.Schema, text []byte) error {
	var v any
	if err := yaml.Unmarshal(text, &v); err != nil {
		return fmt.Errorf("yaml: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

func TestSchemaIsCurrent(t *testing.T) {
	got := generatedSchema(t)
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("docs/bridge.schema.json is stale: run go run ./cmd/bridge schema > docs/bridge.schema.json")
	}
	if !bytes.Equal(generatedSchema(t), got) {
		t.Fatal("bridge schema prints a different schema each run")
	}
}

func TestSchemaAcceptsShippedConfigs(t *testing.T) {
	s := compileSchema(t, generatedSchema(t))
	for _, f := range []string{"../../rules.example.yaml", "../../deploy/bridge.compose.yaml"} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			text, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := validateYAML(s, text); err != nil {
				t.Fatalf("%s does not match the schema:\n%v", f, err)
			}
		})
	}
}

// TestRulesExampleNamesSchema checks the line editors read the schema from.
func TestRulesExampleNamesSchema(t *testing.T) {
	for f, want := range map[string]string{
		"../../rules.example.yaml":         "# yaml-language-server: $schema=docs/bridge.schema.json\n",
		"../../deploy/bridge.compose.yaml": "# yaml-language-server: $schema=../docs/bridge.schema.json\n",
	} {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(text, []byte(want)) {
			t.Errorf("%s does not start with %q", f, want)
		}
		ref := strings.TrimSpace(strings.TrimPrefix(want, "# yaml-language-server: $schema="))
		if _, err := os.Stat(filepath.Join(filepath.Dir(f), ref)); err != nil {
			t.Errorf("%s: the schema it names: %v", f, err)
		}
	}
}

// TestSchemaRejectsMistakes checks that mistakes in rules.example.yaml are
// flagged by the schema, and by the loader too: the two agree.
func TestSchemaRejectsMistakes(t *testing.T) {
	s := compileSchema(t, generatedSchema(t))
	example, err := os.ReadFile("../../rules.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, old, new string }{
		{"top-level section", "\nsinks:\n", "\nsinkz:\n"},
		{"retry key", "retry: {initial: 1s,", "retry: {intial: 1s,"},
		{"store key", "  sync: full\n", "  synk: full\n"},
		{"source key", "    token_header: X-Antly-Token\n", "    token_headr: X-Antly-Token\n"},
		{"antly key", "      triggers: [", "      trigers: ["},
		{"sink type's own key", "    project: OPS\n    # Every sink", "    projekt: OPS\n    # Every sink"},
		{"rule key", "    stop: true\n", "    stpo: true\n"},
		{"action key", "        summary: 'AGILITY {{", "        sumary: 'AGILITY {{"},
		{"sink type", "    type: file\n", "    type: fiel\n"},
		{"whole number", "    concurrency: 4\n", "    concurrency: four\n"},
		{"duration", "  retention: 720h\n", "  retention: 30 days\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !bytes.Contains(example, []byte(c.old)) {
				t.Fatalf("rules.example.yaml no longer has %q: update the test", c.old)
			}
			text := bytes.Replace(example, []byte(c.old), []byte(c.new), 1)
			if err := validateYAML(s, text); err == nil {
				t.Error("the schema accepts it")
			}
			path := filepath.Join(t.TempDir(), "bridge.yaml")
			if err := os.WriteFile(path, text, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := loadConfig(path); err == nil {
				t.Error("the loader accepts it")
			}
		})
	}
}

// TestSchemaAgreesWithLoader builds a config with every key the schema
// describes, of every sink type, and checks that the loader takes each key
// with a value of the schema's type; then it adds an unknown key to every
// mapping of that config and of rules.example.yaml in turn, and checks
// that the schema refuses it exactly where the loader does.
func TestSchemaAgreesWithLoader(t *testing.T) {
	doc := generatedSchema(t)
	s := compileSchema(t, doc)
	var root map[string]any
	if err := json.Unmarshal(doc, &root); err != nil {
		t.Fatal(err)
	}
	g := &sampler{defs: root["$defs"].(map[string]any)}
	full := g.object(root)
	var sinks, rules []any
	types := g.def("SinkEntry")["properties"].(map[string]any)["type"].(map[string]any)["enum"].([]any)
	if len(types) != len(sinkTypes()) {
		t.Fatalf("the schema has sink types %v, the binary %d", types, len(sinkTypes()))
	}
	for _, typ := range types {
		name := "s-" + typ.(string)
		sink := g.object(g.def("SinkEntry." + typ.(string)))
		sink["name"] = name
		sinks = append(sinks, sink)
		action := g.object(g.def("ActionConfig"))
		action["sink"] = name
		rules = append(rules, map[string]any{"name": "r-" + typ.(string), "when": "true", "actions": []any{action}})
	}
	full["sinks"], full["rules"] = sinks, rules
	text, err := yaml.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	if err := validateYAML(s, text); err != nil {
		t.Fatalf("the generated config does not match the schema: %v\n%s", err, text)
	}

	// Every key is known, and every value of the schema's type is read:
	// the only unknown keys are other sink types' action keys.
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, text, 0o600); err != nil {
		t.Fatal(err)
	}
	typeProblem := regexp.MustCompile(`unknown key|cannot unmarshal|duration|whole number|out of range`)
	actionKey := regexp.MustCompile(`^rule "r-[a-z_]+": action 1 \(sink s-[a-z_]+\): unknown key "([a-z_]+)"`)
	refused := map[string]int{} // action key → sink types that refuse it
	for _, p := range problemsOf(loadConfig(path)) {
		if m := actionKey.FindStringSubmatch(p.Msg); m != nil {
			refused[m[1]]++
			continue
		}
		if typeProblem.MatchString(p.Msg) {
			t.Errorf("the schema allows what the loader refuses: %s\n%s", p, numbered(text))
		}
	}
	for key, n := range refused {
		if n == len(types) {
			t.Errorf("action key %q is offered by the schema, and no sink type takes it", key)
		}
	}

	example, err := os.ReadFile("../../rules.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string][]byte{"generated": text, "rules.example.yaml": example} {
		t.Run(name, func(t *testing.T) {
			var n yaml.Node
			if err := yaml.Unmarshal(text, &n); err != nil {
				t.Fatal(err)
			}
			count := len(mappings(&n))
			if count < 10 {
				t.Fatalf("only %d mappings", count)
			}
			for i := 0; i < count; i++ {
				var doc yaml.Node
				yaml.Unmarshal(text, &doc)
				m := mappings(&doc)[i]
				m.Content = append(m.Content,
					&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "zz_typo"},
					&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "x"})
				mutated, err := yaml.Marshal(&doc)
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(t.TempDir(), "bridge.yaml")
				if err := os.WriteFile(path, mutated, 0o600); err != nil {
					t.Fatal(err)
				}
				var known []string
				loaderRefuses := false
				for _, p := range problemsOf(loadConfig(path)) {
					if k := knownKeys.FindStringSubmatch(p.Msg); k != nil {
						loaderRefuses = true
						known = strings.Split(k[1], ", ")
					}
				}
				schemaRefuses := validateYAML(s, mutated) != nil
				if loaderRefuses != schemaRefuses {
					t.Errorf("zz_typo in the mapping at line %d: loader refuses it: %v, schema refuses it: %v", m.Line, loaderRefuses, schemaRefuses)
				}
				// Each key the loader would take here, the schema knows.
				for _, k := range known {
					if unknownToSchema(t, s, text, i, k) {
						t.Errorf("key %q of the mapping at line %d: the loader takes it, the schema does not know it", k, m.Line)
					}
				}
			}
		})
	}
}

// knownKeys reads the keys the loader lists with an unknown key.
var knownKeys = regexp.MustCompile(`unknown key "zz_typo" \(known: ([^)]*)\)`)

// unknownToSchema reports whether the schema refuses key, written into the
// i-th mapping of text, as an additional property (whatever its value).
func unknownToSchema(t *testing.T, s *jsonschema.Schema, text []byte, i int, key string) bool {
	t.Helper()
	var doc yaml.Node
	yaml.Unmarshal(text, &doc)
	m := mappings(&doc)[i]
	for j := 0; j+1 < len(m.Content); j += 2 {
		if m.Content[j].Value == key {
			return false // written already, and so checked already
		}
	}
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"})
	b, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	var ve *jsonschema.ValidationError
	if err := validateYAML(s, b); !errors.As(err, &ve) {
		return false
	}
	var refuses func(e *jsonschema.ValidationError) bool
	refuses = func(e *jsonschema.ValidationError) bool {
		if ap, ok := e.ErrorKind.(*kind.AdditionalProperties); ok && slices.Contains(ap.Properties, key) {
			return true
		}
		return slices.ContainsFunc(e.Causes, refuses)
	}
	return refuses(ve)
}

// TestSchemaDurations checks that the schema reads durations as the loader does.
func TestSchemaDurations(t *testing.T) {
	s := compileSchema(t, generatedSchema(t))
	for _, v := range []string{"30s", "1h30m", "1.5h", ".5s", "500ms", "10us", "10µs", "0", "2", "2.5", "0.0", "+5s", "${RETENTION}", "${RETENTION:-720h}",
		"-1s", "-2", "30 s", "30", "s", "1d", "30d", "1w", "1w2d3h", "1.5d", "-1d", "1y", "7 d", "1dw", "", "thirty", "1e3", "'30'"} {
		text := []byte("store:\n  retention: " + v + "\n")
		if v == "" {
			text = []byte("store:\n  retention: ''\n")
		}
		var n yaml.Node
		if err := yaml.Unmarshal(text, &n); err != nil {
			t.Fatal(err)
		}
		var d bridge.Duration
		loaderOK := d.UnmarshalYAML(n.Content[0].Content[1].Content[1]) == nil || strings.Contains(v, "${")
		schemaOK := validateYAML(s, text) == nil
		if loaderOK != schemaOK {
			t.Errorf("retention: %s: the loader takes it: %v, the schema: %v", v, loaderOK, schemaOK)
		}
	}
}

// sampler makes a value of each schema: the first choice of an anyOf, a
// key for every property.
type sampler struct{ defs map[string]any }

func (g *sampler) def(name string) map[string]any {
	d, ok := g.defs[name].(map[string]any)
	if !ok {
		panic("schema: no $defs/" + name)
	}
	return d
}

func (g *sampler) value(s any) any {
	m, ok := s.(map[string]any)
	if !ok || len(m) == 0 {
		return nil // true or {}: anything goes, so say nothing
	}
	if ref, ok := m["$ref"].(string); ok {
		return g.value(g.def(strings.TrimPrefix(ref, "#/$defs/")))
	}
	if c, ok := m["const"]; ok {
		return c
	}
	if e, ok := m["enum"].([]any); ok {
		return e[0]
	}
	if a, ok := m["anyOf"].([]any); ok {
		return g.value(a[0])
	}
	switch m["type"] {
	case "object":
		return g.object(m)
	case "array":
		return []any{g.value(m["items"])}
	case "string":
		return "x"
	case "integer", "number":
		return 1
	case "boolean":
		return true
	}
	panic(fmt.Sprintf("schema: no sample for %v", m))
}

func (g *sampler) object(m map[string]any) map[string]any {
	out := map[string]any{}
	props, _ := m["properties"].(map[string]any)
	for k, p := range props {
		out[k] = g.value(p)
	}
	if ap, ok := m["additionalProperties"].(map[string]any); ok {
		out["some_key"] = g.value(ap)
	} else if props == nil && m["additionalProperties"] == nil {
		out["some_key"] = "x"
	}
	return out
}

// mappings returns every mapping node below n, in document order.
func mappings(n *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	if n.Kind == yaml.MappingNode {
		out = append(out, n)
	}
	for _, c := range n.Content {
		out = append(out, mappings(c)...)
	}
	return out
}

// problemsOf returns the problems of a loadConfig error.
func problemsOf(_ *loaded, err error) bridge.Problems {
	var ps bridge.Problems
	if err != nil && !errors.As(err, &ps) {
		ps = bridge.Problems{{Msg: err.Error()}}
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	return ps
}

// numbered prints text with line numbers, to read problems against.
func numbered(text []byte) string {
	var b strings.Builder
	for i, l := range strings.Split(string(text), "\n") {
		fmt.Fprintf(&b, "%3d  %s\n", i+1, l)
	}
	return b.String()
}
