package bridge

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// KeyProblem is an unknown or misplaced key found by CheckKeys.
type KeyProblem struct {
	Line int
	Msg  string
}

// CheckKeys walks YAML node n against the Go type of v (a struct, or a
// pointer to one) and reports every mapping key the type has no yaml field
// for, with its line. yaml.v3's KnownFields does not apply to Node.Decode, so
// the loader checks keys itself; this also lets one run list every mistake.
// Maps, interfaces and types with their own UnmarshalYAML are not descended.
// skip names top-level keys the caller handles itself.
func CheckKeys(n *yaml.Node, v any, skip ...string) []KeyProblem {
	var out []KeyProblem
	checkKeys(n, reflect.TypeOf(v), skip, &out)
	return out
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

func checkKeys(n *yaml.Node, t reflect.Type, skip []string, out *[]KeyProblem) {
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
		return
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				checkKeys(c, t.Elem(), nil, out)
			}
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if contains(skip, k.Value) {
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				*out = append(*out, KeyProblem{Line: k.Line, Msg: fmt.Sprintf("unknown key %q (known: %s)", k.Value, knownList(fields))})
				continue
			}
			checkKeys(val, ft, nil, out)
		}
	}
}

// yamlFields maps each yaml key of struct t (inline structs flattened) to its type.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					m[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

func knownList(fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
