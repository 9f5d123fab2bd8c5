package bridge

import "encoding/json"

// RuleSet evaluates an event against the compiled rules. Package rules
// implements it; the pipeline only needs this.
type RuleSet interface {
	Evaluate(ev *Event) Evaluation
}

// Evaluation is what the rules made of one event.
type Evaluation struct {
	Matched []string    // names of the rules whose `when` held, in file order
	Planned []Planned   // one per action of a matched rule, in order
	Errors  []RuleError // rules that failed to evaluate (they count as not matching)
}

// Planned is one action a matched rule selected, rendered and ready to be
// stored as a delivery.
type Planned struct {
	Rule   string
	Index  int             // the action's index within its rule
	Sink   string          // the sink's configured name
	Action json.RawMessage // the rendered action fields (JSON object); nil when Err is set
	Err    error           // a template error: the delivery is stored as failed with its text
}

// RuleError is a rule that could not be evaluated for an event.
type RuleError struct {
	Rule string
	Err  error
}
