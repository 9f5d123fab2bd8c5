package bridge

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// fromEnvText stands in for a value that came from the environment: it may
// be a secret, so messages never quote it.
const fromEnvText = "(the value from the environment)"

var (
	// yamlTypeMsg is yaml.v3's type error: cannot unmarshal !!str `x` into int64.
	yamlTypeMsg = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
	// quotedInMsg is a value quoted in a message, replaced when it came from
	// the environment.
	quotedInMsg = regexp.MustCompile("`[^`]*`|\"(?:[^\"\\\\]|\\\\.)*\"")
)

// TypeProblem is a value that is not of its key's type: Key is its dotted
// path below the node checked ("rate_limit.rps"), Msg says what the key
// takes and what it got, without the key.
type TypeProblem struct {
	Line  int
	Label string // the list entry it is in, as problems name it (`source "a"`); "" at the top
	Key   string
	Msg   string
}

// String is the problem as the loader prints it: label, key, message.
func (p TypeProblem) String() string {
	s := p.Msg
	if p.Key != "" {
		s = p.Key + ": " + s
	}
	if p.Label != "" {
		s = p.Label + ": " + s
	}
	return s
}

// DecodeNode decodes n into v (a pointer) and returns every value that is
// not of its key's type, one problem per key, each naming the key (a dotted
// path below n) and the type it takes: `labels: must be a list of text, got
// "ops"`. yaml.v3's own messages (`cannot unmarshal !!str into []string`)
// never reach the user. fromEnv, when not nil, reports whether the value at
// a line came from a ${VAR}; such values are not quoted. A whole-number
// setting given a fraction is a problem too: yaml.v3 would quietly cut it.
func DecodeNode(n *yaml.Node, v any, fromEnv func(line int) bool) []TypeProblem {
	c := &typeChecker{fromEnv: fromEnv}
	c.walk(n, reflect.TypeOf(v), "", "")
	return c.decode(n, v, "")
}

// typeChecker walks a YAML node against the Go type it is decoded into.
type typeChecker struct {
	fromEnv func(line int) bool
	out     []TypeProblem
}

// decode decodes n into v after walk, and adds what yaml.v3 refused that
// the walk did not explain (at a line the walk reported nothing at), in
// words.
func (c *typeChecker) decode(n *yaml.Node, v any, label string) []TypeProblem {
	err := n.Decode(v)
	if err == nil {
		return c.out
	}
	reported := map[int]bool{}
	for _, p := range c.out {
		reported[p.Line] = true
	}
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, e := range msgs {
		line, msg := splitYAMLError(e)
		if reported[line] {
			continue
		}
		c.out = append(c.out, TypeProblem{Line: line, Label: label, Msg: c.hide(line, cleanTypeMsg(msg))})
	}
	return c.out
}

func (c *typeChecker) env(line int) bool { return c.fromEnv != nil && c.fromEnv(line) }

// hide replaces quoted values in msg when the value at line came from the
// environment.
func (c *typeChecker) hide(line int, msg string) string {
	if c.env(line) {
		return quotedInMsg.ReplaceAllString(msg, fromEnvText)
	}
	return msg
}

func (c *typeChecker) add(n *yaml.Node, label, key, format string, args ...any) {
	c.out = append(c.out, TypeProblem{Line: n.Line, Label: label, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// got describes a value for "got ...": a mapping, a list, or the value.
func (c *typeChecker) got(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		return kindName(n)
	}
	if c.env(n.Line) {
		return fromEnvText
	}
	v := n.Value
	if utf8.RuneCountInString(v) > 40 {
		v = string([]rune(v)[:40]) + "…"
	}
	if n.ShortTag() == "!!str" {
		return strconv.Quote(v)
	}
	return v
}

// walk reports every value below n that type t cannot take. label and key
// name where n is: the list entry (`sink "x"`) and the dotted key path
// within it. Unknown keys are CheckKeys' to report and are skipped here.
func (c *typeChecker) walk(n *yaml.Node, t reflect.Type, label, key string) {
	if n == nil || t == nil {
		return
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // yaml leaves the zero value (or the default); Validate judges it
	}
	if decodesItself(t) {
		// Duration and the like read their own values and say what is wrong.
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			var te *yaml.TypeError
			msgs := []string{err.Error()}
			if errors.As(err, &te) {
				msgs = te.Errors
			}
			for _, e := range msgs {
				_, msg := splitYAMLError(e)
				c.add(n, label, key, "%s", c.hide(n.Line, cleanTypeMsg(msg)))
			}
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Interface:
		return // anything goes
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.add(n, label, key, "must be %s, got %s", describeType(t), c.got(n))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.ShortTag() == "!!merge" {
				c.walkMerge(val, t, label, key)
				continue
			}
			if ft, ok := fields[k.Value]; ok {
				c.walk(val, ft, label, joinKey(key, k.Value))
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.add(n, label, key, "must be %s, got %s", describeType(t), c.got(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.walk(n.Content[i+1], t.Elem(), label, joinKey(key, n.Content[i].Value))
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			c.add(n, label, key, "must be %s, got %s", describeType(t), c.got(n))
			return
		}
		elem := t.Elem()
		for elem.Kind() == reflect.Pointer {
			elem = elem.Elem()
		}
		for i, item := range n.Content {
			if label == "" && elem.Kind() == reflect.Struct {
				// A top-level list of named entries (sources): problems
				// name the entry as Validate's do.
				c.walk(item, t.Elem(), entryLabel(key, item, i), "")
				continue
			}
			c.walk(item, t.Elem(), label, fmt.Sprintf("%s[%d]", key, i)) // as template problems name them: labels[1]
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Decode(new(bool)) != nil {
			c.add(n, label, key, "must be true or false, got %s", c.got(n))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		c.wholeNumber(n, t, label, key)
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil {
			c.add(n, label, key, "must be a number, got %s", c.got(n))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			c.add(n, label, key, "must be text, got %s", c.got(n))
		}
	default:
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			_, msg := splitYAMLError(err.Error())
			c.add(n, label, key, "%s", c.hide(n.Line, cleanTypeMsg(msg)))
		}
	}
}

// walkMerge walks the mappings a `<<` key merges into a struct.
func (c *typeChecker) walkMerge(n *yaml.Node, t reflect.Type, label, key string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.SequenceNode {
		for _, m := range n.Content {
			c.walkMerge(m, t, label, key)
		}
		return
	}
	c.walk(n, t, label, key)
}

// wholeNumber checks a whole-number setting: yaml.v3 would quietly cut
// max_body_bytes: 100.9 to 100. A whole number written as a float (1e6,
// 100.0) is taken.
func (c *typeChecker) wholeNumber(n *yaml.Node, t reflect.Type, label, key string) {
	if n.Kind != yaml.ScalarNode {
		c.add(n, label, key, "must be a whole number, got %s", c.got(n))
		return
	}
	unsigned := t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uintptr
	if n.ShortTag() == "!!float" {
		var f float64
		if n.Decode(&f) != nil || math.IsNaN(f) {
			c.add(n, label, key, "must be a whole number, got %s", c.got(n))
			return
		}
		switch {
		case math.IsInf(f, 0) || f < math.MinInt64 || f > math.MaxInt64 || unsigned && f < 0:
			c.add(n, label, key, "%s is out of range", c.got(n))
		case f != math.Trunc(f):
			c.add(n, label, key, "must be a whole number, got %s", c.got(n))
		}
		return
	}
	if n.Decode(reflect.New(t).Interface()) != nil {
		if n.ShortTag() == "!!int" {
			c.add(n, label, key, "%s is out of range", c.got(n))
			return
		}
		c.add(n, label, key, "must be a whole number, got %s", c.got(n))
	}
}

// entryLabel names entry i of the top-level list key as problems do:
// `source "a"`, `sink "out"`.
func entryLabel(key string, item *yaml.Node, i int) string {
	what := strings.TrimSuffix(key, "s")
	if name := mapValue(item, "name"); name != nil && name.Kind == yaml.ScalarNode {
		return fmt.Sprintf("%s %q", what, name.Value)
	}
	if item.Kind == yaml.MappingNode {
		return fmt.Sprintf("%s %q", what, "")
	}
	return fmt.Sprintf("%s %d", what, i+1)
}

// describeType says in words what a value of type t is written as.
func describeType(t reflect.Type) string {
	w, t := typeWords(t)
	if decodesItself(t) {
		return w.one
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list of " + describePlural(t.Elem())
	case reflect.Map:
		return "a mapping of keys to " + describePlural(t.Elem())
	case reflect.Struct:
		fields := yamlFields(t)
		names := make([]string, 0, len(fields))
		for k := range fields {
			names = append(names, k)
		}
		sort.Strings(names)
		return "a mapping (" + strings.Join(names, ", ") + ")"
	}
	return w.one
}

// describePlural is describeType for the items of a list or mapping.
func describePlural(t reflect.Type) string {
	w, _ := typeWords(t)
	return w.many
}

// decodesItself reports whether t has its own UnmarshalYAML.
func decodesItself(t reflect.Type) bool {
	return t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType)
}

// words name a kind of value, one of them and several.
type words struct{ one, many string }

// typeWords names what a value of type t is written as, and returns t
// without its pointers (t itself for a type that decodes itself).
func typeWords(t reflect.Type) (words, reflect.Type) {
	if decodesItself(t) {
		if t == reflect.TypeOf(Duration(0)) {
			return words{"a duration " + durationHint, "durations"}, t
		}
		return words{"a value", "values"}, t
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return words{"text", "text"}, t
	case reflect.Bool:
		return words{"true or false", "true or false"}, t
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return words{"a whole number", "whole numbers"}, t
	case reflect.Float32, reflect.Float64:
		return words{"a number", "numbers"}, t
	case reflect.Slice, reflect.Array:
		return words{"a list", "lists"}, t
	case reflect.Map, reflect.Struct:
		return words{"a mapping", "mappings"}, t
	}
	return words{"a value", "values"}, t
}

// goTypeWords says in words what a Go type named in a yaml.v3 message is.
func goTypeWords(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	case goType == "string" || goType == "bridge.Secret":
		return "text"
	case goType == "bool":
		return "true or false"
	case goType == "bridge.Duration":
		return "a duration " + durationHint
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	}
	return "a mapping"
}

// cleanTypeMsg turns a yaml.v3 type message (`cannot unmarshal !!str
// `lots` into int64`) into words (`must be a whole number, got "lots"`);
// other messages are kept.
func cleanTypeMsg(msg string) string {
	m := yamlTypeMsg.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	got := map[string]string{"!!map": "a mapping", "!!seq": "a list"}[m[1]]
	if got == "" {
		got = m[2]
		if m[1] == "!!str" {
			got = strconv.Quote(m[2])
		}
	}
	return "must be " + goTypeWords(m[3]) + ", got " + got
}
