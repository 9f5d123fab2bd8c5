package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/template/parse"

	"gopkg.in/yaml.v3"

	"bridge/bridge"
)

// actionID is what an action's id must look like: templates read it as a
// field name, .results.NAME.
var actionID = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// linkChain reads the `id` and `after` of a rule's actions (acs, compiled
// as acts), links each dependent to the earlier action it runs after, and
// checks what the templates read of .results and .links. It sets the
// dependents' deferred fields.
func linkChain(label string, acs []bridge.ActionConfig, acts []*action) []fieldProblem {
	var probs []fieldProblem
	add := func(line int, format string, args ...any) {
		probs = append(probs, fieldProblem{line: line, msg: fmt.Sprintf(format, args...)})
	}
	ids := map[string]int{}
	var names []string
	afterNodes := make([]*yaml.Node, len(acs))
	afters := make([]string, len(acs)) // as written, for the cycle check
	for j, ac := range acs {
		n := resolve(ac.Node)
		if v := bridge.MapValue(n, "after"); v != nil {
			afterNodes[j], afters[j] = v, v.Value
		}
		v := bridge.MapValue(n, "id")
		if v == nil {
			continue
		}
		alabel := fmt.Sprintf("%s: action %d", label, j+1)
		switch prev, dup := ids[v.Value]; {
		case v.Kind != yaml.ScalarNode || !actionID.MatchString(v.Value):
			add(v.Line, "%s: id: must be a name of letters, digits and _, not starting with a digit (templates read it as .results.NAME), got %q", alabel, v.Value)
		case dup:
			add(v.Line, "%s: id %q is the id of action %d already", alabel, v.Value, prev+1)
		default:
			ids[v.Value] = j
			names = append(names, v.Value)
			acts[j].id = v.Value
		}
	}
	for j, v := range afterNodes {
		if v == nil {
			continue
		}
		alabel := fmt.Sprintf("%s: action %d", label, j+1)
		k, ok := ids[v.Value]
		switch {
		case v.Kind != yaml.ScalarNode || v.Value == "":
			add(v.Line, "%s: after: must be the id of an earlier action of the rule", alabel)
		case !ok:
			known := "no action of the rule has an id"
			if len(names) > 0 {
				known = "ids: " + strings.Join(names, ", ")
			}
			mean := ""
			if s := bridge.Suggest(v.Value, names); s != "" {
				mean = "; did you mean " + s + "?"
			}
			add(v.Line, "%s: after: %q names no earlier action of the rule (%s%s)", alabel, v.Value, known, mean)
		case k == j:
			add(v.Line, "%s: after: %q is this action's own id: an action cannot run after itself", alabel, v.Value)
		case k > j:
			if path := cycle(j, k, afters, ids); path != "" {
				add(v.Line, "%s: after: %q makes a cycle (%s): an action runs after an earlier one", alabel, v.Value, path)
			} else {
				add(v.Line, "%s: after: %q is action %d, which comes later: an action runs after an earlier one", alabel, v.Value, k+1)
			}
		default:
			acts[j].after, acts[j].afterIndex = v.Value, k
		}
	}
	if len(probs) > 0 {
		return probs
	}
	for j, a := range acts {
		anc := ancestors(acts, a)
		n := resolve(acs[j].Node)
		alabel := fmt.Sprintf("%s: action %d (sink %s)", label, j+1, a.sink)
		for _, ref := range chainRefs(a.fields) {
			line := bridge.FindKey(n, topKey(ref.path))
			switch {
			case a.after == "":
				add(line, "%s: field %s: .%s.%s: only an action with after: can read .%s (it is known once the action it runs after is delivered)",
					alabel, ref.path, ref.kind, ref.name, ref.kind)
			case !slices.Contains(anc, ref.name):
				add(line, "%s: field %s: .%s.%s: %q is not an action this one runs after (it runs after %s)",
					alabel, ref.path, ref.kind, ref.name, ref.name, strings.Join(anc, ", "))
			}
		}
		if a.after != "" {
			a.deferred = appendSource(nil, a.fields)
		}
	}
	return probs
}

// cycle returns the path "action 1 → action 3 → action 1" when following
// the afters from action k (which action j names) leads back to j; "" when
// it does not.
func cycle(j, k int, afters []string, ids map[string]int) string {
	path := []string{fmt.Sprintf("action %d", j+1)}
	seen := map[int]bool{j: true}
	for cur := k; ; {
		path = append(path, fmt.Sprintf("action %d", cur+1))
		if cur == j {
			return strings.Join(path, " → ")
		}
		if seen[cur] {
			return ""
		}
		seen[cur] = true
		next, ok := ids[afters[cur]]
		if !ok || afters[cur] == "" {
			return ""
		}
		cur = next
	}
}

// topKey is the action key a field path starts with: "fields" of
// "fields.team[0]".
func topKey(path string) string {
	k, _, _ := strings.Cut(path, ".")
	k, _, _ = strings.Cut(k, "[")
	return k
}

// ancestors returns the ids of the actions a runs after, nearest first.
func ancestors(acts []*action, a *action) []string {
	var out []string
	for cur := a; cur.after != ""; cur = acts[cur.afterIndex] {
		out = append(out, cur.after)
	}
	return out
}

// into sets data's "results" and "links", which a chained action's
// templates read, to c's, and returns data.
func (c Chain) into(data map[string]any) map[string]any {
	results, links := make(map[string]any, len(c.Results)), make(map[string]any, len(c.Links))
	for k, v := range c.Results {
		results[k] = v
	}
	for k, v := range c.Links {
		links[k] = v
	}
	data["results"], data["links"] = results, links
	return data
}

// filled returns c with every one of ids given a result and a link: c's,
// or the placeholders "<results.ID>" and "<links.ID>".
func (c Chain) filled(ids []string) Chain {
	out := Chain{Results: map[string]string{}, Links: map[string]string{}}
	for _, id := range ids {
		out.Results[id], out.Links[id] = "<results."+id+">", "<links."+id+">"
		if v, ok := c.Results[id]; ok {
			out.Results[id] = v
		}
		if v, ok := c.Links[id]; ok {
			out.Links[id] = v
		}
	}
	return out
}

// ancestorsOf returns the ids of the actions planned action p runs after.
func (s *Set) ancestorsOf(p bridge.Planned) []string {
	for _, r := range s.rules {
		if r.name == p.Rule && p.Index < len(r.actions) {
			return ancestors(r.actions, r.actions[p.Index])
		}
	}
	return nil
}

// chainRef is a template's read of .results.NAME or .links.NAME.
type chainRef struct {
	path string // the field holding the template
	kind string // "results" or "links"
	name string
}

// chainRefs lists the reads of .results.NAME and .links.NAME in the
// templates of f, by field path. Only plain field chains are seen
// (`index .results "x"` is not).
func chainRefs(f field) []chainRef {
	var out []chainRef
	var walkField func(f field)
	walkField = func(f field) {
		switch f := f.(type) {
		case *templateField:
			for _, t := range f.t.Templates() {
				if t.Tree != nil {
					walkNode(t.Tree.Root, func(ident []string) {
						if len(ident) >= 2 && (ident[0] == "results" || ident[0] == "links") {
							out = append(out, chainRef{path: f.path, kind: ident[0], name: ident[1]})
						}
					})
				}
			}
		case listField:
			for _, c := range f {
				walkField(c)
			}
		case *mapField:
			for _, c := range f.values {
				walkField(c)
			}
		}
	}
	walkField(f)
	return out
}

// walkNode calls fn with the identifiers of every field chain (.a.b) in n.
func walkNode(n parse.Node, fn func(ident []string)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walkNode(c, fn)
		}
	case *parse.ActionNode:
		walkNode(n.Pipe, fn)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			walkNode(c, fn)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			walkNode(a, fn)
		}
	case *parse.FieldNode:
		fn(n.Ident)
	case *parse.IfNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.RangeNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.WithNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.TemplateNode:
		walkNode(n.Pipe, fn)
	}
}

func walkBranch(b *parse.BranchNode, fn func(ident []string)) {
	walkNode(b.Pipe, fn)
	walkNode(b.List, fn)
	if b.ElseList != nil {
		walkNode(b.ElseList, fn)
	}
}

// appendSource appends f as JSON with every template as its text: a
// dependent's fields as stored, for RenderDeferred.
func appendSource(b []byte, f field) []byte {
	switch f := f.(type) {
	case constField:
		return append(b, f.js...)
	case *templateField:
		return appendString(b, f.src)
	case listField:
		b = append(b, '[')
		for i, c := range f {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSource(b, c)
		}
		return append(b, ']')
	case *mapField:
		b = append(b, '{')
		for i, k := range f.keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendSource(b, f.values[i])
		}
		return append(b, '}')
	}
	return append(b, "null"...)
}

// compileSource compiles fields stored by appendSource: every string with
// "{{" is a template again, as compileNode made it.
func compileSource(v any, path string) (field, error) {
	switch v := v.(type) {
	case map[string]any:
		m := &mapField{}
		keys := slices.Collect(maps.Keys(v))
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			f, err := compileSource(v[k], p)
			if err != nil {
				return nil, err
			}
			m.set(k, f)
		}
		return m, nil
	case []any:
		l := make(listField, len(v))
		for i, c := range v {
			f, err := compileSource(c, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			l[i] = f
		}
		return l, nil
	case string:
		if !strings.Contains(v, "{{") {
			return newConst(v), nil
		}
		t, err := parseTemplate(path, v)
		if err != nil {
			return nil, fmt.Errorf("field %s: template: %w", path, err)
		}
		return t, nil
	}
	return newConst(v), nil
}

// deferredCache keeps the fields RenderDeferred compiled, by their stored
// text: a rule's dependents share one text, so each is parsed once. It is
// emptied when full (rules change rarely; a reload's new texts fill it
// again).
var deferredCache struct {
	sync.Mutex
	m map[string]*mapField
}

const deferredCacheMax = 1024

// deferredFields compiles stored fields, or returns them compiled already.
func deferredFields(stored json.RawMessage) (*mapField, error) {
	deferredCache.Lock()
	f := deferredCache.m[string(stored)]
	deferredCache.Unlock()
	if f != nil {
		return f, nil
	}
	dec := json.NewDecoder(bytes.NewReader(stored))
	dec.UseNumber() // numbers stay as written
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("stored action: %w", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, errors.New("stored action: not a JSON object")
	}
	c, err := compileSource(v, "")
	if err != nil {
		return nil, err
	}
	f = c.(*mapField)
	deferredCache.Lock()
	if deferredCache.m == nil || len(deferredCache.m) >= deferredCacheMax {
		deferredCache.m = map[string]*mapField{}
	}
	deferredCache.m[string(stored)] = f
	deferredCache.Unlock()
	return f, nil
}

// RenderDeferred renders a chained action's fields, stored unrendered at
// ingest, for ev, now that the actions it runs after are delivered: its
// templates read their results and links (c) as .results.NAME and
// .links.NAME. The pipeline calls it (PipelineOptions.Render) when it
// delivers the action.
func RenderDeferred(stored json.RawMessage, ev *bridge.Event, c Chain) (js json.RawMessage, err error) {
	f, err := deferredFields(stored)
	if err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			js, err = nil, fmt.Errorf("template: panic: %v", p)
		}
	}()
	return f.appendJSON(make([]byte, 0, 256), c.into(ev.Map()))
}

// RenderChained is RenderDeferred in the shape of
// bridge.PipelineOptions.Render.
func RenderChained(stored json.RawMessage, ev *bridge.Event, results, links map[string]string) (json.RawMessage, error) {
	return RenderDeferred(stored, ev, Chain{Results: results, Links: links})
}
