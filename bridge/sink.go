package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Sink carries out deliveries to one destination (a Jira site, a Slack
// workspace, a SIEM). Send makes one attempt and reports what kind of failure
// it had by wrapping its error (Permanent, RetryAfter); a plain error is
// retried. The pipeline wraps every sink in its queue, retry, timeout and
// metrics layers, so a sink does none of that itself.
type Sink interface {
	// Send makes one attempt at d. The result is what the destination
	// reported (a Jira issue key, a Slack message ts); it may be empty.
	Send(ctx context.Context, d *Delivery) (result string, err error)
	// Close releases the sink's connections; deliveries in flight have ended.
	Close(ctx context.Context) error
}

// DryRunner is implemented by sinks that can describe the request they would
// send (in --dry-run mode) without sending it. Sinks that do not implement it
// are described by their rendered action.
type DryRunner interface {
	DryRun(ctx context.Context, d *Delivery) (request string, err error)
}

// Delivery is one (event, matching action) pair, as a sink receives it.
type Delivery struct {
	ID      int64
	Event   *Event
	Rule    string          // the rule that matched
	Sink    string          // the sink's configured name
	Action  json.RawMessage // the action's fields, rendered: a JSON object
	Attempt int             // 1 for the first attempt
}

// DecodeAction decodes the delivery's rendered action fields into v (a
// pointer to the sink's action struct, with json tags).
func (d *Delivery) DecodeAction(v any) error {
	if len(d.Action) == 0 {
		return nil
	}
	if err := json.Unmarshal(d.Action, v); err != nil {
		return Permanent(err)
	}
	return nil
}

// Linker is a sink whose results a person can open: Link returns the URL
// of a delivered result (a Jira issue's browse URL), "" for none. A chained
// action reads it as .links.NAME; it is stored with the delivery.
type Linker interface {
	Link(result string) string
}

// SinkConfig is a sink type's own config (the keys of a `sinks:` entry other
// than name, type, timeout, concurrency and retry). Validate reports every
// problem; wrap one in FieldError to point at the key's line.
type SinkConfig interface {
	Validate() error
}

// FileChecker is implemented by sink configs that name files the sink reads
// when it is built (a TLS CA bundle, a client certificate). The loader calls
// CheckFiles after Validate, with the config file's directory to resolve
// relative paths against, so that `validate` reports a file that is
// missing or unreadable at its key's line (wrap each problem in
// FieldError), instead of serve failing to build the sink. It only reads.
type FileChecker interface {
	CheckFiles(baseDir string) error
}

// Action is a sink type's action struct (the keys of an action other than
// `sink`), decoded from the rule's YAML before rendering. Validate checks
// what can be checked at load time: required fields, enums that are not
// templates. cfg is the sink's config, for defaults taken from the sink.
type Action interface {
	Validate(cfg SinkConfig) error
}

// SinkType describes one kind of sink (jira, slack, ...): how to decode its
// config and actions, and how to build it. cmd/bridge holds the map of them.
type SinkType struct {
	// NewConfig returns a pointer to a zero config, with defaults filled in,
	// for the loader to decode the sink's YAML into.
	NewConfig func() SinkConfig
	// NewAction returns a pointer to a zero action struct. Its yaml tags are
	// the action keys this sink type accepts; its json tags are how a
	// rendered action decodes into it (Delivery.DecodeAction).
	NewAction func() Action
	// New builds the sink from its validated config.
	New func(cfg SinkConfig, env SinkEnv) (Sink, error)
}

// SinkEnv is what a sink gets from the bridge besides its own config.
type SinkEnv struct {
	Name   string       // the sink's configured name
	Logger *slog.Logger // already carries the sink's name
	State  State        // durable key/value state, private to this sink
	// Locks serializes work per key across every instance of this sink
	// name (a reload's new one and the old one finishing its sends); nil
	// outside serve, where a sink keeps locks of its own.
	Locks   Locker
	Timeout time.Duration // the per-attempt timeout the pipeline applies
	BaseDir string        // the config file's directory
	Version string        // the bridge's version
	// Fault is a seam for crash tests, nil in production: a sink calls it
	// at its named fault-injection points ("jira.after-remember"), and the
	// binary, only when BRIDGE_TEST_FAULT names that point, kills itself
	// there with SIGKILL.
	Fault func(point string)
}

// Path resolves p against the config file's directory unless it is absolute
// or empty.
func (e SinkEnv) Path(p string) string { return ResolvePath(e.BaseDir, p) }

// Log returns the sink's logger, or one that discards when none was given.
func (e SinkEnv) Log() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

// KeyLocks returns the sink's per-key locks: Locks, or locks of the sink's
// own when none were given.
func (e SinkEnv) KeyLocks() Locker {
	if e.Locks == nil {
		return &KeyLocks{}
	}
	return e.Locks
}

// State is durable key/value storage a sink uses to remember things across
// restarts (a dedupe key's Jira issue, a Slack thread's ts). Keys are private
// to the sink that owns the State.
type State interface {
	Get(ctx context.Context, key string) (value string, ok bool, err error)
	Put(ctx context.Context, key, value string) error
	Delete(ctx context.Context, key string) error
}

// BatchSink is implemented by sinks that carry many deliveries in one
// request or write (Splunk HEC, the http sink with batch on, the file sink,
// syslog). The pipeline hands such a sink up to max due deliveries at once,
// waiting up to wait after the first for more to gather (0: send what is
// there at once, so a quiet bridge is not taxed).
type BatchSink interface {
	Sink
	// BatchLimits says how many deliveries one SendBatch may carry and how
	// long the pipeline may wait for a batch to fill.
	BatchLimits() (max int, wait time.Duration)
	// SendBatch makes one attempt at every delivery of ds and returns one
	// error per delivery, in order (nil: delivered), classified as Send's.
	SendBatch(ctx context.Context, ds []*Delivery) []error
}

// NewSinkType builds a SinkType from a sink package's typed constructors,
// so no sink asserts its own config type: newConfig returns a zero config
// with defaults, newAction a zero action, build the sink.
func NewSinkType[C SinkConfig, A Action, S Sink](newConfig func() C, newAction func() A, build func(C, SinkEnv) (S, error)) SinkType {
	return SinkType{
		NewConfig: func() SinkConfig { return newConfig() },
		NewAction: func() Action { return newAction() },
		New: func(cfg SinkConfig, env SinkEnv) (Sink, error) {
			c, ok := cfg.(C)
			if !ok {
				return nil, fmt.Errorf("sink config is %T, want %T", cfg, *new(C))
			}
			s, err := build(c, env)
			if err != nil {
				return nil, err // not s: a nil *T in a Sink is not a nil Sink
			}
			return s, nil
		},
	}
}
