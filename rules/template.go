package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// valueFunc is the name of the function appended to every printing action
// of a template, so that a missing key prints as "" (text/template itself
// prints "<no value>").
const valueFunc = "_value"

// funcMap returns the functions action templates may call besides
// text/template's own; the package documentation lists them.
func funcMap() template.FuncMap {
	return template.FuncMap{
		"json":       toJSON,
		"toJson":     toJSON,
		"toString":   toString,
		"default":    defaultValue,
		"coalesce":   coalesce,
		"empty":      empty,
		"upper":      func(s any) string { return strings.ToUpper(toString(s)) },
		"lower":      func(s any) string { return strings.ToLower(toString(s)) },
		"title":      title,
		"trim":       func(s any) string { return strings.TrimSpace(toString(s)) },
		"trimPrefix": func(p string, s any) string { return strings.TrimPrefix(toString(s), p) },
		"trimSuffix": func(p string, s any) string { return strings.TrimSuffix(toString(s), p) },
		"trunc":      trunc,
		"replace":    func(old, new string, s any) string { return strings.ReplaceAll(toString(s), old, new) },
		"contains":   func(sub string, s any) bool { return strings.Contains(toString(s), sub) },
		"hasPrefix":  func(p string, s any) bool { return strings.HasPrefix(toString(s), p) },
		"hasSuffix":  func(p string, s any) bool { return strings.HasSuffix(toString(s), p) },
		"join":       join,
		"splitList":  func(sep string, s any) []string { return strings.Split(toString(s), sep) },
		"quote":      func(s any) string { return strconv.Quote(toString(s)) },
		"squote":     func(s any) string { return "'" + toString(s) + "'" },
		"date":       date,
		valueFunc:    printable,
	}
}

// parseTemplate parses one action field as a template named name.
func parseTemplate(name, text string) (*templateField, error) {
	t, err := template.New(name).Option("missingkey=default").Funcs(funcMap()).Parse(text)
	if err != nil {
		return nil, err
	}
	f := &templateField{t: t, path: name, src: text}
	if len(t.Templates()) == 1 {
		f.fast = fastSegments(t.Root)
	}
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			patchPrints(tt.Tree, tt.Root)
		}
	}
	return f, nil
}

// segment is a piece of a simple template: text, or a field path
// ({{ .data.x }}) to print.
type segment struct {
	text string
	path []string
}

// fastSegments returns the pieces of a template made only of text and
// plain field paths, which render without text/template; nil otherwise.
func fastSegments(root *parse.ListNode) []segment {
	var segs []segment
	for _, n := range root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			segs = append(segs, segment{text: string(n.Text)})
		case *parse.ActionNode:
			p := n.Pipe
			if len(p.Decl) > 0 || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
				return nil
			}
			fn, ok := p.Cmds[0].Args[0].(*parse.FieldNode)
			if !ok {
				return nil
			}
			segs = append(segs, segment{path: fn.Ident})
		default:
			return nil
		}
	}
	return segs
}

// patchPrints appends `| _value` to every action of list that prints, so a
// missing key or a nil prints as "" and a time in RFC 3339.
func patchPrints(tree *parse.Tree, list *parse.ListNode) {
	if list == nil {
		return
	}
	for _, n := range list.Nodes {
		switch n := n.(type) {
		case *parse.ActionNode:
			if len(n.Pipe.Decl) > 0 || n.Pipe.IsAssign {
				continue // {{ $x := ... }} prints nothing
			}
			ident := parse.NewIdentifier(valueFunc).SetTree(tree).SetPos(n.Pos)
			n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{
				NodeType: parse.NodeCommand, Pos: n.Pos, Args: []parse.Node{ident},
			})
		case *parse.IfNode:
			patchPrints(tree, n.List)
			patchPrints(tree, n.ElseList)
		case *parse.RangeNode:
			patchPrints(tree, n.List)
			patchPrints(tree, n.ElseList)
		case *parse.WithNode:
			patchPrints(tree, n.List)
			patchPrints(tree, n.ElseList)
		case *parse.ListNode:
			patchPrints(tree, n)
		}
	}
}

// printable is what a printing action ends with.
func printable(v any) any {
	switch x := v.(type) {
	case nil:
		return ""
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return v
}

// toString writes v as text: "" for nil, times in RFC 3339, numbers
// without exponent where they are whole.
func toString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case error:
		return x.Error()
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("json: %w", err)
	}
	return string(b), nil
}

// empty reports whether v is nil, "", 0, false or an empty list or map, as
// sprig's empty does.
func empty(v any) bool {
	if v == nil {
		return true
	}
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return r.Len() == 0
	case reflect.Bool:
		return !r.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return r.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return r.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return r.Float() == 0
	case reflect.Pointer, reflect.Interface:
		return r.IsNil()
	}
	return false
}

// defaultValue is sprig's default: `.x | default "d"`.
func defaultValue(d any, v ...any) any {
	if len(v) == 0 || empty(v[0]) {
		return d
	}
	return v[0]
}

func coalesce(vs ...any) any {
	for _, v := range vs {
		if !empty(v) {
			return v
		}
	}
	return nil
}

// title upper-cases the first letter of every word.
func title(s any) string {
	var b strings.Builder
	start := true
	for _, r := range toString(s) {
		if start {
			r = unicode.ToTitle(r)
		}
		start = unicode.IsSpace(r) || r == '-' || r == '_'
		b.WriteRune(r)
	}
	return b.String()
}

// trunc keeps the first n characters (runes) of s, or the last -n.
func trunc(n any, s any) (string, error) {
	c, err := toInt(n)
	if err != nil {
		return "", fmt.Errorf("trunc: %w", err)
	}
	str := toString(s)
	l := utf8.RuneCountInString(str)
	switch {
	case c >= 0 && l > c:
		return string([]rune(str)[:c]), nil
	case c < 0 && l+c > 0:
		return string([]rune(str)[l+c:]), nil
	}
	return str, nil
}

func toInt(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case float64:
		if x != math.Trunc(x) {
			return 0, fmt.Errorf("%v is not a whole number", x)
		}
		return int(x), nil
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", x)
		}
		return i, nil
	}
	return 0, fmt.Errorf("%v (%T) is not a number", v, v)
}

// join writes the elements of list as text, joined by sep. A single value
// is written alone; nil elements are left out.
func join(sep string, list any) string {
	if list == nil {
		return ""
	}
	r := reflect.ValueOf(list)
	if r.Kind() != reflect.Slice && r.Kind() != reflect.Array {
		return toString(list)
	}
	parts := make([]string, 0, r.Len())
	for i := 0; i < r.Len(); i++ {
		e := r.Index(i).Interface()
		if e == nil {
			continue
		}
		parts = append(parts, toString(e))
	}
	return strings.Join(parts, sep)
}

// date formats t in UTC with a Go layout. t may be a time, RFC 3339 text
// or Unix seconds; nil gives "".
func date(layout string, t any) (string, error) {
	var tm time.Time
	switch x := t.(type) {
	case nil:
		return "", nil
	case time.Time:
		tm = x
	case *time.Time:
		if x == nil {
			return "", nil
		}
		tm = *x
	case string:
		if x == "" {
			return "", nil
		}
		p, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return "", fmt.Errorf("date: %q is not an RFC 3339 time", x)
		}
		tm = p
	case int64:
		tm = time.Unix(x, 0)
	case int:
		tm = time.Unix(int64(x), 0)
	case float64:
		sec, frac := math.Modf(x)
		tm = time.Unix(int64(sec), int64(frac*1e9))
	default:
		return "", fmt.Errorf("date: cannot format %T as a time", t)
	}
	return tm.UTC().Format(layout), nil
}

// field is one compiled action field value: a template, a constant, or a
// list or mapping of fields. It renders either as a Go value or, without
// the intermediate values, straight into JSON.
type field interface {
	render(data map[string]any) (any, error)
	appendJSON(b []byte, data map[string]any) ([]byte, error)
}

// constField is a value without a template, encoded once.
type constField struct {
	v  any
	js []byte
}

func newConst(v any) constField {
	js, err := encodeJSON(v)
	if err != nil {
		js = []byte("null") // YAML scalars always encode; not reached
	}
	return constField{v: v, js: js}
}

func (c constField) render(map[string]any) (any, error) { return c.v, nil }

func (c constField) appendJSON(b []byte, _ map[string]any) ([]byte, error) {
	return append(b, c.js...), nil
}

// encodeJSON encodes v as JSON, leaving <, > and & as they are (they are
// text for Jira or Slack, not HTML).
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// appendString appends s as a JSON string, as encodeJSON writes it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			js, _ := encodeJSON(s) // a string always encodes
			return append(b, js...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// templateField is a string field holding a template.
type templateField struct {
	t    *template.Template
	fast []segment // set when the template is only text and field paths
	path string    // the field's path in the action ("text", "fields.team")
	src  string    // the template's text
}

func (f *templateField) render(data map[string]any) (any, error) {
	return f.renderString(data)
}

func (f *templateField) appendJSON(b []byte, data map[string]any) ([]byte, error) {
	s, err := f.renderString(data)
	if err != nil {
		return nil, err
	}
	return appendString(b, s), nil
}

func (f *templateField) renderString(data map[string]any) (string, error) {
	if f.fast != nil {
		if s, ok := f.renderFast(data); ok {
			return s, nil
		}
	}
	var b strings.Builder
	if err := f.t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// renderFast prints a simple template as text/template would. It gives up
// (ok false) where text/template would fail, so the error is its own.
func (f *templateField) renderFast(data map[string]any) (string, bool) {
	var b strings.Builder
	for _, seg := range f.fast {
		if seg.path == nil {
			b.WriteString(seg.text)
			continue
		}
		var cur any = data
		for _, k := range seg.path {
			m, ok := cur.(map[string]any)
			if !ok {
				return "", false // a field of a non-map (or of a null): an error, or a method
			}
			v, found := m[k]
			if !found {
				cur = nil // a missing key: it and anything below it print ""
				break
			}
			cur = v
		}
		switch v := printable(cur).(type) {
		case string:
			b.WriteString(v)
		case fmt.Stringer, error:
			return "", false // printed through their methods; leave it to text/template
		default:
			fmt.Fprint(&b, v)
		}
	}
	return b.String(), true
}

type listField []field

func (l listField) appendJSON(b []byte, data map[string]any) ([]byte, error) {
	b = append(b, '[')
	for i, f := range l {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = f.appendJSON(b, data); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

func (l listField) render(data map[string]any) (any, error) {
	out := make([]any, len(l))
	for i, f := range l {
		v, err := f.render(data)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// mapField is a mapping; its keys are kept sorted, the order JSON objects
// are written in.
type mapField struct {
	keys   []string
	values []field
}

// set adds or replaces a key, keeping keys sorted.
func (m *mapField) set(k string, v field) {
	i := sort.SearchStrings(m.keys, k)
	if i < len(m.keys) && m.keys[i] == k {
		m.values[i] = v
		return
	}
	m.keys = append(m.keys, "")
	m.values = append(m.values, nil)
	copy(m.keys[i+1:], m.keys[i:])
	copy(m.values[i+1:], m.values[i:])
	m.keys[i], m.values[i] = k, v
}

func (m *mapField) has(k string) bool {
	i := sort.SearchStrings(m.keys, k)
	return i < len(m.keys) && m.keys[i] == k
}

func (m *mapField) appendJSON(b []byte, data map[string]any) ([]byte, error) {
	b = append(b, '{')
	for i, k := range m.keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		var err error
		if b, err = m.values[i].appendJSON(b, data); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func (m *mapField) render(data map[string]any) (any, error) {
	return m.renderMap(data)
}

func (m *mapField) renderMap(data map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(m.keys))
	for i, k := range m.keys {
		v, err := m.values[i].render(data)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// fieldProblem is a template that does not parse, at a line of the file.
type fieldProblem struct {
	line int
	msg  string
}

// compileAction compiles the fields of an action mapping (all keys but
// `sink`): every string is a template, other scalars stay as they are,
// lists and mappings are walked (their keys are not templates).
func compileAction(n *yaml.Node) (*mapField, []fieldProblem) {
	var probs []fieldProblem
	f := compileMapping(n, "", &probs, "sink", "id", "after")
	return f, probs
}

func compileMapping(n *yaml.Node, path string, probs *[]fieldProblem, skip ...string) *mapField {
	m := &mapField{}
	var merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if path == "" && slices.Contains(skip, k.Value) {
			continue
		}
		if k.Value == "<<" && k.Tag == "!!merge" {
			// A merge key: its mapping's keys join this one, unless
			// written here too.
			merged = append(merged, resolve(v))
			continue
		}
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		m.set(k.Value, compileNode(v, p, probs))
	}
	for i := 0; i < len(merged); i++ {
		src := merged[i]
		if src != nil && src.Kind == yaml.SequenceNode {
			for _, c := range src.Content {
				merged = append(merged, resolve(c))
			}
			continue
		}
		if src == nil || src.Kind != yaml.MappingNode {
			continue
		}
		sub := compileMapping(src, path, probs)
		for i, k := range sub.keys {
			if !m.has(k) {
				m.set(k, sub.values[i])
			}
		}
	}
	return m
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func compileNode(n *yaml.Node, path string, probs *[]fieldProblem) field {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		return compileMapping(n, path, probs)
	case yaml.SequenceNode:
		l := make(listField, len(n.Content))
		for i, c := range n.Content {
			l[i] = compileNode(c, fmt.Sprintf("%s[%d]", path, i), probs)
		}
		return l
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float", "!!bool", "!!null":
			var v any
			if err := n.Decode(&v); err == nil {
				return newConst(v)
			}
		}
		if !strings.Contains(n.Value, "{{") {
			return newConst(n.Value)
		}
		t, err := parseTemplate(path, n.Value)
		if err != nil {
			*probs = append(*probs, templateProblem(n, path, err))
			return newConst(n.Value)
		}
		return t
	}
	return newConst(nil)
}

// templateProblem places a parse error on the file line of the template's
// faulty line and drops text/template's own "template: NAME:LINE:" prefix.
func templateProblem(n *yaml.Node, path string, err error) fieldProblem {
	msg := err.Error()
	line := n.Line
	if rest, ok := strings.CutPrefix(msg, "template: "+path+":"); ok {
		num, tail, found := strings.Cut(rest, ": ")
		if l, convErr := strconv.Atoi(num); found && convErr == nil {
			msg = tail
			if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
				line = n.Line + l // block scalars start on the next line
			} else {
				line = n.Line + l - 1
			}
		}
	}
	return fieldProblem{line: line, msg: fmt.Sprintf("field %s: template: %s", path, msg)}
}
