package rules

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"

	"bridge/bridge"
)

// getFunc is the function nilSafe reads members of data with. Like the
// comparison functions, it lives in the environment under a name users
// would not write, with a signature expr calls without reflection.
const getFunc = "$get"

// exprEnv is the environment `when` expressions are checked against: every
// Event field, by its SPEC name, holding a value of its real type.
func exprEnv() map[string]any {
	return map[string]any{
		"id":       "",
		"source":   "",
		"vendor":   "",
		"type":     "",
		"time":     time.Time{},
		"received": time.Time{},
		"severity": "",
		"title":    "",
		"subject":  "",
		"data":     map[string]any{},
		getFunc:    get,
		"$lt":      lt,
		"$gt":      gt,
		"$le":      le,
		"$ge":      ge,
	}
}

// setEvent fills an environment made by exprEnv with the values of ev.
func setEvent(env map[string]any, ev *bridge.Event) {
	env["id"] = ev.ID
	env["source"] = ev.Source
	env["vendor"] = ev.Vendor
	env["type"] = ev.Type
	env["time"] = ev.Time
	env["received"] = ev.Received
	env["severity"] = ev.Severity
	env["title"] = ev.Title
	env["subject"] = ev.Subject
	env["data"] = ev.Data
}

// get is member access for values out of data: a map key without
// reflection, nil from nil (so `data.a.b` is nil when a is missing), and
// expr's own rules (and errors) for anything else.
func get(from, key any) any {
	switch m := from.(type) {
	case map[string]any:
		if k, ok := key.(string); ok {
			return m[k]
		}
	case nil:
		return nil
	}
	return runtime.Fetch(from, key)
}

// compileWhen compiles a rule's condition. It must be boolean; the AST is
// patched so that a missing map key (nil) is a value that compares false
// instead of a run-time error (see nilSafe).
func compileWhen(src string) (*vm.Program, error) {
	return expr.Compile(src,
		expr.Env(exprEnv()),
		expr.AsBool(),
		expr.Patch(&nilSafe{}),
	)
}

// whenError maps an expr compile error onto the config file: expr counts
// lines from 1 and columns from 0 within the expression, which starts at
// line, col of the file (for a block scalar: its first content line and
// indentation, which later lines share). It returns the file line and a
// one-line message that ends with the file column.
func whenError(err error, line, col int) (int, string) {
	var fe *file.Error
	if !errors.As(err, &fe) || fe.Line == 0 {
		// Errors without a position (a non-boolean result) point at the
		// start of the expression.
		return line, fmt.Sprintf("%s (column %d)", oneLine(err.Error()), col)
	}
	return line + fe.Line - 1, fmt.Sprintf("%s (column %d)", oneLine(fe.Message), col+fe.Column)
}

// oneLine keeps the first line of a message.
func oneLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// isStringMap reports whether t is the type of data and of the objects in
// it.
func isStringMap(t reflect.Type) bool {
	return t != nil && t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.Interface
}

// isUnknown reports whether expr only knows a node's type at run time (a
// value out of `data`), so the value may be nil.
func isUnknown(t reflect.Type) bool {
	return t == nil || t.Kind() == reflect.Interface
}

// nilSafe is an AST patch that gives nil (a missing key of `data`, or a JSON
// null) the meaning rule authors expect instead of a run-time error:
//   - a member of nil is nil: `data.a.b` is nil when `a` is missing (members
//     of data and of values out of it are read with getFunc, which is also
//     faster than expr's generic fetch);
//   - an ordering comparison (<, >, <=, >=) with a nil side is false;
//   - nil is false where a boolean is needed (!, not, the condition of ?:).
//
// Equality, `in`, `contains`, `startsWith`, `endsWith`, `matches`, `&&` and
// `||` already treat nil that way. Anything else done to nil (arithmetic,
// builtins such as len or lower) still fails at run time; Set.Evaluate then
// treats the rule as not matching when a data path it reads is missing.
type nilSafe struct{}

// Visit patches one node; expr walks the tree children first, with types
// already checked.
func (p *nilSafe) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		if n.Method || !(isUnknown(n.Node.Type()) || isStringMap(n.Node.Type())) {
			return // methods, and fields of typed values, stay expr's
		}
		ast.Patch(node, &ast.CallNode{
			Callee:    &ast.IdentifierNode{Value: getFunc},
			Arguments: []ast.Node{n.Node, n.Property},
		})
	case *ast.BinaryNode:
		switch n.Operator {
		case "<", ">", "<=", ">=":
			if isUnknown(n.Left.Type()) || isUnknown(n.Right.Type()) {
				guardCompare(node, n)
			}
		}
	case *ast.UnaryNode:
		if (n.Operator == "!" || n.Operator == "not") && isUnknown(n.Node.Type()) {
			n.Node = orFalse(n.Node)
		}
	case *ast.ConditionalNode:
		if isUnknown(n.Cond.Type()) {
			n.Cond = orFalse(n.Cond)
		}
	}
}

// orFalse returns `n ?? false`.
func orFalse(n ast.Node) ast.Node {
	b := &ast.BinaryNode{Operator: "??", Left: n, Right: &ast.BoolNode{Value: false}}
	b.SetLocation(n.Location())
	return b
}

// compareFunc names the function nilSafe turns an ordering comparison
// with a side of unknown type into.
func compareFunc(op string) string {
	switch op {
	case "<":
		return "$lt"
	case ">":
		return "$gt"
	case "<=":
		return "$le"
	}
	return "$ge"
}

// guardCompare rewrites `a < b` with a side of unknown type into
// `$lt(a, b)`: false when a side is nil, expr's own comparison (and its
// errors) otherwise.
func guardCompare(node *ast.Node, n *ast.BinaryNode) {
	call := &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: compareFunc(n.Operator)},
		Arguments: []ast.Node{n.Left, n.Right},
	}
	ast.Patch(node, call)
}

// Nil-safe comparisons, typed so that expr calls them without reflection.
func lt(a, b any) bool { return a != nil && b != nil && runtime.Less(a, b) }
func gt(a, b any) bool { return a != nil && b != nil && runtime.More(a, b) }
func le(a, b any) bool { return a != nil && b != nil && runtime.LessOrEqual(a, b) }
func ge(a, b any) bool { return a != nil && b != nil && runtime.MoreOrEqual(a, b) }

// Fields a rule can be indexed on: equality with a constant on one of them
// lets an event skip the rule without running it.
const (
	fieldType = iota
	fieldSource
	fieldVendor
	numFields
)

// indexField maps an Event field name to its index field.
func indexField(name string) (int, bool) {
	switch name {
	case "type":
		return fieldType, true
	case "source":
		return fieldSource, true
	case "vendor":
		return fieldVendor, true
	}
	return 0, false
}

// indexKey is what a rule's `when` requires of one event field: the field
// must equal one of values (an empty list: the rule can never match).
type indexKey struct {
	field  int
	values []string
}

// extractIndex reads from the expression which constant values of type,
// source or vendor it requires: top-level `&&` conjuncts of the forms
// `field == "x"`, `"x" == field` and `field in ["x", "y"]`. Of the fields
// constrained it picks type, else source, else vendor (the most selective
// first). ok is false when no conjunct constrains them.
func extractIndex(src string) (key indexKey, ok bool) {
	tree, err := parser.Parse(src)
	if err != nil {
		return indexKey{}, false
	}
	var conj []ast.Node
	var split func(n ast.Node)
	split = func(n ast.Node) {
		if b, isBin := n.(*ast.BinaryNode); isBin && (b.Operator == "&&" || b.Operator == "and") {
			split(b.Left)
			split(b.Right)
			return
		}
		conj = append(conj, n)
	}
	split(tree.Node)

	var sets [numFields][]string
	var seen [numFields]bool
	for _, c := range conj {
		field, values, isKey := constraint(c)
		if !isKey {
			continue
		}
		if !seen[field] {
			seen[field] = true
			sets[field] = values
			continue
		}
		sets[field] = intersect(sets[field], values)
	}
	for f := 0; f < numFields; f++ {
		if seen[f] {
			return indexKey{field: f, values: sets[f]}, true
		}
	}
	return indexKey{}, false
}

// constraint recognizes `field == "x"`, `"x" == field` and
// `field in ["x", ...]` on an indexable field.
func constraint(n ast.Node) (field int, values []string, ok bool) {
	b, isBin := n.(*ast.BinaryNode)
	if !isBin {
		return 0, nil, false
	}
	switch b.Operator {
	case "==":
		id, str := asIdentString(b.Left, b.Right)
		if id == nil {
			id, str = asIdentString(b.Right, b.Left)
		}
		if id == nil {
			return 0, nil, false
		}
		f, ok := indexField(id.Value)
		return f, []string{str.Value}, ok
	case "in":
		id, isID := b.Left.(*ast.IdentifierNode)
		arr, isArr := b.Right.(*ast.ArrayNode)
		if !isID || !isArr {
			return 0, nil, false
		}
		f, ok := indexField(id.Value)
		if !ok {
			return 0, nil, false
		}
		for _, e := range arr.Nodes {
			s, isStr := e.(*ast.StringNode)
			if !isStr {
				return 0, nil, false
			}
			values = append(values, s.Value)
		}
		return f, values, true
	}
	return 0, nil, false
}

func asIdentString(a, b ast.Node) (*ast.IdentifierNode, *ast.StringNode) {
	id, ok1 := a.(*ast.IdentifierNode)
	s, ok2 := b.(*ast.StringNode)
	if !ok1 || !ok2 {
		return nil, nil
	}
	return id, s
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		for _, y := range b {
			if x == y {
				out = append(out, x)
				break
			}
		}
	}
	return out
}

// dataPaths lists the constant paths below `data` an expression reads
// (`data.a.b`, `data["a"]`), for telling a run-time failure caused by a
// missing key from a real one.
func dataPaths(src string) [][]string {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	var paths [][]string
	v := &pathCollector{out: &paths}
	ast.Walk(&tree.Node, v)
	return paths
}

type pathCollector struct{ out *[][]string }

// Visit records every member chain rooted at the identifier `data`. Walking
// children first means a chain's prefixes are recorded too, which is
// harmless.
func (c *pathCollector) Visit(node *ast.Node) {
	var path []string
	n := *node
	for {
		switch m := n.(type) {
		case *ast.MemberNode:
			s, ok := m.Property.(*ast.StringNode)
			if !ok {
				return
			}
			path = append([]string{s.Value}, path...)
			n = m.Node
			continue
		case *ast.ChainNode:
			n = m.Node
			continue
		case *ast.IdentifierNode:
			if m.Value == "data" && len(path) > 0 {
				*c.out = append(*c.out, path)
			}
		}
		return
	}
}

// missingPath reports whether one of paths reaches a missing key or a null
// in data.
func missingPath(data map[string]any, paths [][]string) bool {
	for _, p := range paths {
		var cur any = data
		for _, k := range p {
			m, ok := cur.(map[string]any)
			if !ok {
				break // a list index or a scalar: not a missing key
			}
			cur = m[k]
			if cur == nil {
				return true
			}
		}
	}
	return false
}
