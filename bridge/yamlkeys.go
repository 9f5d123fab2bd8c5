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
//
// A key within reach of a known one (a typo, a different case, a prefix:
// sink, Listen, max_body) is offered it: `unknown key "sink": did you mean
// sinks? (known: ...)`.
func CheckKeys(n *yaml.Node, v any, skip ...string) []KeyProblem {
	var out []KeyProblem
	checkKeys(n, reflect.TypeOf(v), skip, nil, &out)
	return out
}

// checkKeysAlso is CheckKeys for a mapping whose keys are split between
// two structs (a sink entry: the keys every sink takes, and its type's
// own): also are the other's keys, listed as known and offered to typos,
// though not checked here.
func checkKeysAlso(n *yaml.Node, v any, also []string) []KeyProblem {
	var out []KeyProblem
	checkKeys(n, reflect.TypeOf(v), also, also, &out)
	return out
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

func checkKeys(n *yaml.Node, t reflect.Type, skip, also []string, out *[]KeyProblem) {
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
				checkKeys(c, t.Elem(), nil, nil, out)
			}
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := yamlFields(t)
		known := make([]string, 0, len(fields)+len(also))
		for k := range fields {
			known = append(known, k)
		}
		for _, k := range also {
			if _, ok := fields[k]; !ok {
				known = append(known, k)
			}
		}
		sort.Strings(known)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if contains(skip, k.Value) {
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				msg := fmt.Sprintf("unknown key %q", k.Value)
				if s := suggest(k.Value, known); s != "" {
					msg += ": did you mean " + s + "?"
				}
				*out = append(*out, KeyProblem{Line: k.Line, Msg: msg + " (known: " + strings.Join(known, ", ") + ")"})
				continue
			}
			checkKeys(val, ft, nil, nil, out)
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

// Suggest returns the names of known nearest to name ("sinks", "a or b"),
// for a "did you mean" in a message, or "" when none is near (see suggest).
func Suggest(name string, known []string) string { return suggest(name, known) }

// suggest returns the known keys nearest to key, "a or b", or "" when
// none is near: at most two edits away (one for keys of up to four
// letters), the same but for case, or one a prefix of the other (at least
// four letters long).
func suggest(key string, known []string) string {
	lower := strings.ToLower(key)
	best, bestScore := []string(nil), 3
	for _, k := range known {
		kl := strings.ToLower(k)
		score := editDistance(lower, kl)
		limit := 2
		if len([]rune(key)) <= 4 {
			limit = 1
		}
		switch {
		case kl == lower:
			score = 0
		case score <= limit:
		case len(lower) >= 4 && len(kl) >= 4 && (strings.HasPrefix(kl, lower) || strings.HasPrefix(lower, kl)):
			score = 2
		default:
			continue
		}
		switch {
		case score < bestScore:
			best, bestScore = []string{k}, score
		case score == bestScore:
			best = append(best, k)
		}
	}
	if len(best) > 3 {
		return ""
	}
	return strings.Join(best, " or ")
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
