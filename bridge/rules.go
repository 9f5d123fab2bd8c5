package bridge

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

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

	// ID is the action's `id` within its rule, "" when it has none.
	ID string
	// After is the `id` of the earlier action of the rule this one waits
	// for, "" when none; AfterIndex is that action's Index. A dependent's
	// Action holds its fields unrendered (their templates read
	// `.results.NAME` and `.links.NAME`): the pipeline renders them when it
	// delivers it, with PipelineOptions.Render. It is stored pending and
	// waiting (NextAt Waiting) until the action it waits for is delivered.
	After      string
	AfterIndex int
}

// Waiting is the next attempt time of a pending delivery that waits for
// the delivery of the action it runs after (an `after:`), so that no
// scheduler finds it due until that delivery releases it.
var Waiting = time.Unix(0, math.MaxInt64).UTC()

// WaitingAt reports whether t (a delivery's NextAt) is Waiting.
func WaitingAt(t time.Time) bool { return t.UnixNano() == math.MaxInt64 }

// ChainFailed is the last error of a dependent whose action to run after
// failed: it is not sent, and fails with this.
func ChainFailed(after string, id int64, err string) string {
	return fmt.Sprintf("not sent: it runs after action %q (delivery %d), which failed: %s", after, id, err)
}

// RuleError is a rule that could not be evaluated for an event.
type RuleError struct {
	Rule string
	Err  error
}
