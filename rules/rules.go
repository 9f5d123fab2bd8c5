package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"bridge/bridge"
)

// yamlErrLine splits one message of a yaml.TypeError into its line and text.
var yamlErrLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// SinkInfo is what Compile needs to know of a configured sink.
type SinkInfo struct {
	Type   *bridge.SinkType
	Config bridge.SinkConfig
}

// Set is a compiled, checked rules section. It is safe for concurrent use.
type Set struct {
	rules []*rule
	index index
	pool  sync.Pool // *evaluator, reused between evaluations
}

// evaluator is what one evaluation needs, kept for the next one: a VM and
// an environment whose values are replaced per event.
type evaluator struct {
	vm  vm.VM
	env map[string]any
}

// evaluator returns a pooled evaluator set up for ev.
func (s *Set) evaluator(ev *bridge.Event) *evaluator {
	e, _ := s.pool.Get().(*evaluator)
	if e == nil {
		e = &evaluator{env: exprEnv()}
	}
	setEvent(e.env, ev)
	return e
}

// release returns e to the pool without references to the event's text
// and data (the times it keeps hold none).
func (s *Set) release(e *evaluator) {
	for _, k := range []string{"id", "source", "vendor", "type", "severity", "title", "subject"} {
		e.env[k] = ""
	}
	e.env["data"] = map[string]any(nil)
	s.pool.Put(e)
}

// rule is one compiled rule.
type rule struct {
	name    string
	stop    bool
	program *vm.Program
	paths   [][]string // the constant data paths `when` reads
	key     indexKey
	indexed bool
	actions []*action
}

// action is one compiled action of a rule.
type action struct {
	sink    string
	fields  *mapField
	decoded bridge.Action // the action struct, unrendered

	id         string // its `id`, "" for none
	after      string // the `id` of the action it runs after, "" for none
	afterIndex int    // that action's index in the rule
	// deferred is a dependent's fields unrendered, as stored: the pipeline
	// renders them when it delivers the dependent (RenderDeferred).
	deferred json.RawMessage
}

// Compile checks and compiles every rule; problems carry file and line.
// It returns a nil Set when there is any problem, and then lists them all.
// A `when` problem is placed from RuleConfig.WhenLine and WhenCol, which
// must be where the expression text starts (inside a quote; for a block
// scalar, its first content line and indentation), and ends with the
// file column: `rule "x": when: unknown name sevrity (column 27)`.
func Compile(file string, rules []bridge.RuleConfig, sinks map[string]SinkInfo) (*Set, bridge.Problems) {
	var probs bridge.Problems
	add := func(line int, format string, args ...any) {
		probs = append(probs, bridge.Problem{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	s := &Set{}
	seen := map[string]int{}
	for i, rc := range rules {
		label := fmt.Sprintf("rule %q", rc.Name)
		switch prev, dup := seen[rc.Name]; {
		case strings.TrimSpace(rc.Name) == "":
			label = fmt.Sprintf("rule %d", i+1)
			add(rc.Line, "%s: name is required", label)
		case dup:
			add(rc.Line, "%s: duplicate rule name (first used at line %d)", label, prev)
		default:
			seen[rc.Name] = rc.Line
		}
		r := &rule{name: rc.Name, stop: rc.Stop}

		if strings.TrimSpace(rc.When) == "" {
			if !rc.Unread("when") { // else the loader said what is wrong with it
				add(rc.Line, "%s: when is required", label)
			}
		} else {
			line, col := rc.WhenLine, rc.WhenCol
			if line == 0 {
				line = rc.Line
			}
			if col == 0 {
				col = 1
			}
			prog, err := compileWhen(rc.When)
			if err != nil {
				l, msg := whenError(err, line, col)
				add(l, "%s: when: %s", label, msg)
			} else {
				r.program = prog
				r.key, r.indexed = extractIndex(rc.When)
				r.paths = dataPaths(rc.When)
			}
		}

		if len(rc.Actions) == 0 && !rc.Unread("actions") {
			add(rc.Line, "%s: actions: at least one action is required", label)
		}
		for j, ac := range rc.Actions {
			a, aprobs := compileActionConfig(fmt.Sprintf("%s: action %d", label, j+1), ac, sinks)
			for _, p := range aprobs {
				add(p.line, "%s", p.msg)
			}
			if a != nil {
				r.actions = append(r.actions, a)
			}
		}
		if len(r.actions) == len(rc.Actions) {
			for _, p := range linkChain(label, rc.Actions, r.actions) {
				add(p.line, "%s", p.msg)
			}
		}
		s.rules = append(s.rules, r)
	}
	if len(probs) > 0 {
		return nil, probs
	}
	s.index = buildIndex(s.rules)
	return s, nil
}

// compileActionConfig checks one action against its sink type and compiles
// its templates.
func compileActionConfig(label string, ac bridge.ActionConfig, sinks map[string]SinkInfo) (*action, []fieldProblem) {
	var probs []fieldProblem
	add := func(line int, format string, args ...any) {
		probs = append(probs, fieldProblem{line: line, msg: label + ": " + fmt.Sprintf(format, args...)})
	}
	n := resolve(ac.Node)
	line := ac.Line
	if line == 0 && n != nil {
		line = n.Line
	}
	if n == nil || n.Kind != yaml.MappingNode {
		add(line, "an action must be a mapping with a sink and its fields")
		return nil, probs
	}
	if ac.Sink == "" {
		if s := bridge.MapValue(n, "sink"); s != nil && s.Kind != yaml.ScalarNode {
			add(s.Line, "sink: must be the name of a sink, got %s", bridge.KindName(s))
		} else {
			add(line, "sink is required")
		}
		return nil, probs
	}
	info, ok := sinks[ac.Sink]
	if !ok {
		mean := ""
		if s := bridge.Suggest(ac.Sink, sortedNames(sinks)); s != "" {
			mean = ": did you mean " + s + "?"
		}
		add(bridge.FindKey(n, "sink"), "unknown sink %q%s (configured: %s)", ac.Sink, mean, sinkList(sinks))
		return nil, probs
	}
	label += fmt.Sprintf(" (sink %s)", ac.Sink)
	a := &action{sink: ac.Sink}
	if info.Type != nil && info.Type.NewAction != nil {
		for _, m := range withMerged(n) {
			for _, kp := range bridge.CheckKeys(m, info.Type.NewAction(), "sink", "id", "after", "<<") {
				add(kp.Line, "%s", kp.Msg)
			}
		}
		dec := info.Type.NewAction()
		if tps := bridge.DecodeNode(n, dec, ac.FromEnv); len(tps) > 0 {
			for _, p := range tps {
				add(p.Line, "%s", p.String())
			}
		} else if err := dec.Validate(info.Config); err != nil {
			for _, e := range bridge.SplitErrors(err) {
				if f, msg, ok := bridge.AsFieldError(e); ok {
					add(bridge.FindKey(n, f), "%s: %s", f, msg)
				} else {
					add(line, "%s", e.Error())
				}
			}
		}
		a.decoded = dec
	}
	fields, fprobs := compileAction(n)
	for _, p := range fprobs {
		add(p.line, "%s", p.msg)
	}
	a.fields = fields
	return a, probs
}

// withMerged returns mapping n and the mappings it merges with `<<`.
func withMerged(n *yaml.Node) []*yaml.Node {
	out := []*yaml.Node{n}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Value == "<<" && k.Tag == "!!merge" {
			v := resolve(n.Content[i+1])
			switch v.Kind {
			case yaml.MappingNode:
				out = append(out, withMerged(v)...)
			case yaml.SequenceNode:
				for _, c := range v.Content {
					if c = resolve(c); c.Kind == yaml.MappingNode {
						out = append(out, withMerged(c)...)
					}
				}
			}
		}
	}
	return out
}

// yamlProblems turns a decode error into problems at the lines yaml names.
func yamlProblems(err error, line int) []fieldProblem {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []fieldProblem{{line: line, msg: err.Error()}}
	}
	var out []fieldProblem
	for _, e := range te.Errors {
		p := fieldProblem{line: line, msg: e}
		if m := yamlErrLine.FindStringSubmatch(e); m != nil {
			p.line, _ = strconv.Atoi(m[1])
			p.msg = m[2]
		}
		out = append(out, p)
	}
	return out
}

func sinkList(sinks map[string]SinkInfo) string {
	if len(sinks) == 0 {
		return "none"
	}
	return strings.Join(sortedNames(sinks), ", ")
}

// sortedNames returns the sink names, sorted.
func sortedNames(sinks map[string]SinkInfo) []string {
	names := make([]string, 0, len(sinks))
	for n := range sinks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Rules returns the rule names in file order.
func (s *Set) Rules() []string {
	names := make([]string, len(s.rules))
	for i, r := range s.rules {
		names[i] = r.name
	}
	return names
}

// Actions returns the decoded, unrendered action structs of every action
// that goes to sink, in file order, so a sink can check what the rules use
// (`bridge jira check`). Their string fields may still hold templates.
func (s *Set) Actions(sink string) []bridge.Action {
	var out []bridge.Action
	for _, r := range s.rules {
		for _, a := range r.actions {
			if a.sink == sink && a.decoded != nil {
				out = append(out, a.decoded)
			}
		}
	}
	return out
}

// Evaluate runs the rules on ev in file order (only those the index leaves
// as candidates) and renders the actions of every rule that matches, until
// a matching rule with stop: true. A rule that fails at run time is listed
// in Errors and counts as not matching; a template that fails fails only
// its own action (Planned.Err).
func (s *Set) Evaluate(ev *bridge.Event) bridge.Evaluation {
	var out bridge.Evaluation
	var e *evaluator
	var data map[string]any // built when first needed
	it := s.index.candidates(ev)
	for i, ok := it.next(); ok; i, ok = it.next() {
		r := s.rules[i]
		if e == nil {
			e = s.evaluator(ev)
		}
		matched, err := r.eval(&e.vm, e.env, ev)
		if err != nil {
			out.Errors = append(out.Errors, bridge.RuleError{Rule: r.name, Err: err})
			continue
		}
		if !matched {
			continue
		}
		out.Matched = append(out.Matched, r.name)
		if data == nil {
			data = ev.Map()
		}
		first := len(out.Planned)
		for j, a := range r.actions {
			p := bridge.Planned{Rule: r.name, Index: j, Sink: a.sink, ID: a.id}
			if a.after == "" {
				p.Action, p.Err = a.renderJSON(data)
			} else {
				// Rendered when delivered; it fails now if the action it
				// runs after failed to render.
				p.Action, p.After, p.AfterIndex = a.deferred, a.after, a.afterIndex
				if perr := out.Planned[first+a.afterIndex].Err; perr != nil {
					p.Err = fmt.Errorf("not sent: it runs after action %q, which failed: %w", a.after, perr)
				}
			}
			out.Planned = append(out.Planned, p)
		}
		if r.stop {
			break
		}
	}
	if e != nil {
		s.release(e) // eval and render recover from panics: this is reached
	}
	return out
}

// Verdict is what one rule made of an event, for `bridge test --source`.
type Verdict struct {
	Rule    string
	Matched bool
	Skipped bool  // not evaluated: an earlier matching rule has stop: true
	Err     error // the rule failed to evaluate (it counts as not matching)
	Actions []RenderedAction
}

// RenderedAction is one action of a matching rule, rendered.
type RenderedAction struct {
	Sink   string
	Fields map[string]any // the rendered fields (without sink); nil when Err is set
	Err    error          // the template error
}

// Explain reports every rule's verdict on ev, in file order, with the
// rendered actions of those that match. It agrees with Evaluate: a rule
// the index rules out is simply not matching. A chained action is rendered
// as if every action it runs after had been delivered, its `.results.NAME`
// and `.links.NAME` reading "<results.NAME>" and "<links.NAME>".
func (s *Set) Explain(ev *bridge.Event) []Verdict { return s.ExplainWith(ev, Chain{}) }

// Chain is what a chained action's templates read of the actions it runs
// after: their results and links, by id.
type Chain struct {
	Results map[string]string
	Links   map[string]string
}

// ExplainWith is Explain with the results and links of c where it gives
// them (rule tests' `results:` and `links:`).
func (s *Set) ExplainWith(ev *bridge.Event, c Chain) []Verdict {
	e := s.evaluator(ev)
	defer s.release(e)
	data := ev.Map()
	out := make([]Verdict, len(s.rules))
	stopped := false
	for i, r := range s.rules {
		v := Verdict{Rule: r.name}
		switch {
		case stopped:
			v.Skipped = true
		case !r.candidate(ev):
		default:
			v.Matched, v.Err = r.eval(&e.vm, e.env, ev)
		}
		if v.Matched {
			for _, a := range r.actions {
				env := data
				if a.after != "" {
					env = c.filled(ancestors(r.actions, a)).into(maps.Clone(data))
				}
				fields, err := a.render(env)
				v.Actions = append(v.Actions, RenderedAction{Sink: a.sink, Fields: fields, Err: err})
			}
			stopped = r.stop
		}
		out[i] = v
	}
	return out
}

// eval runs the rule's condition on env.
func (r *rule) eval(m *vm.VM, env map[string]any, ev *bridge.Event) (matched bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			matched, err = false, fmt.Errorf("when: panic: %v", p)
		}
	}()
	out, err := m.Run(r.program, env)
	if err != nil {
		if nilFailure(err) && missingPath(ev.Data, r.paths) {
			return false, nil // a data key the rule reads is missing
		}
		return false, fmt.Errorf("when: %s", oneLine(err.Error()))
	}
	b, _ := out.(bool)
	return b, nil
}

// nilFailure reports whether a run-time error is about a nil value.
func nilFailure(err error) bool {
	msg := err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
	}
	return strings.Contains(msg, "nil")
}

// candidate reports whether the index lets ev reach the rule.
func (r *rule) candidate(ev *bridge.Event) bool {
	if !r.indexed {
		return true
	}
	v := fieldValue(ev, r.key.field)
	for _, x := range r.key.values {
		if x == v {
			return true
		}
	}
	return false
}

// renderJSON renders the action's fields for one event as a JSON object.
func (a *action) renderJSON(data map[string]any) (js json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			js, err = nil, fmt.Errorf("template: panic: %v", p)
		}
	}()
	return a.fields.appendJSON(make([]byte, 0, 256), data)
}

// render renders the action's fields for one event.
func (a *action) render(env map[string]any) (fields map[string]any, err error) {
	defer func() {
		if p := recover(); p != nil {
			fields, err = nil, fmt.Errorf("template: panic: %v", p)
		}
	}()
	return a.fields.renderMap(env)
}
