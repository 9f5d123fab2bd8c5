package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Store is the durable store: events with their raw bodies, the deliveries
// (the outbox), and the sinks' own state. The server, the pipeline, the CLI
// and the sinks' State use it; bridge/store/sqlite (the embedded default)
// and bridge/store/postgres (several replicas on one database) implement
// it, and bridge/store/storetest runs one suite against both.
//
// Every guarantee of the bridge rests on it: Ingest answers only after the
// event and its deliveries are committed, together; a (source, id) is
// stored once however many replicas receive it; a delivery is claimed by
// one process at a time.
type Store interface {
	// Ingest stores a new event and its planned deliveries in one
	// transaction and returns after the commit. It reports duplicate (and
	// stores nothing) when the source already has an event with that id.
	// A planned delivery whose action failed to render is stored as failed
	// with the template's error; a dependent (Planned.After) is stored
	// pending and Waiting, announced to no sink. ev.Data, when not nil,
	// must be what StoredData(raw) reads (as the server's normalized
	// event's is): a store may give it to the deliveries it claims
	// instead of decoding raw again.
	Ingest(ctx context.Context, ev *Event, raw []byte, planned []Planned) (duplicate bool, err error)
	// Events lists stored events, newest first.
	Events(ctx context.Context, f EventFilter) ([]StoredEvent, error)
	// Deliveries lists deliveries, newest first.
	Deliveries(ctx context.Context, f DeliveryFilter) ([]*DeliveryRecord, error)
	// Event returns the event source stored with id, and its raw body;
	// ErrNotFound when there is none.
	Event(ctx context.Context, source, id string) (*StoredEvent, []byte, error)
	// PendingCounts counts the pending deliveries of each sink.
	PendingCounts(ctx context.Context) (map[string]int, error)
	// SinkStats counts each sink's deliveries by status, with its latest
	// error.
	SinkStats(ctx context.Context) (map[string]SinkStats, error)

	// Due reads, without claiming them, up to limit ids of sink's pending
	// deliveries due at now that no process holds, oldest due first,
	// skipping those in skip (in flight here), and when the oldest of them
	// became due. nextAt is when the next delivery not due yet (or held by
	// another process) may be.
	Due(ctx context.Context, sink string, now time.Time, limit int, skip map[int64]bool) (ids []int64, oldest, nextAt time.Time, err error)
	// Claim takes those of ids that are still pending, due and held by no
	// other process (a claim whose lease ran out is taken over), and
	// returns them with their events, in due order. A claimed delivery is
	// this process's until Record, or until its lease runs out unless
	// Renew extends it.
	Claim(ctx context.Context, ids []int64, now time.Time) ([]*Delivery, []*DeliveryRecord, error)
	// Renew extends this process's claims on ids while their attempt
	// runs, and returns those it no longer holds.
	Renew(ctx context.Context, ids []int64, now time.Time) (lost []int64, err error)
	// Record stores the outcomes of attempts and releases their claims,
	// and releases or fails the dependents of those whose Outcome.Chained
	// is set (their record's ActionID is not empty: callers must set it).
	Record(ctx context.Context, outs []Outcome) error
	// Replay puts failed deliveries back in the queue, due now, with a
	// fresh retry window; with no ids, every failed one. A dependent waits
	// again when the action it runs after is pending or replayed with it,
	// and stays failed when that action stays failed; a replayed action's
	// failed dependents wait for it again, and count as replayed. It
	// returns the ids replayed.
	Replay(ctx context.Context, ids []int64, now time.Time) ([]int64, error)
	// Prune deletes events received before cutoff that have no pending
	// delivery, with their deliveries, and returns how many.
	Prune(ctx context.Context, cutoff time.Time) (int64, error)

	// SinkState is the durable key/value state of one sink name.
	SinkState(sink string) State
	// SinkLocks are the per-key locks of one sink name, shared by every
	// instance of the sink (and, for a shared database, every process).
	SinkLocks(sink string) Locker

	// Ping checks with a real write that the store takes writes now; its
	// outcome counts as the last write's. Callers space their calls.
	Ping(ctx context.Context) error
	// LastWriteError returns the error of the store's most recent write and
	// when it failed, or a nil error when that write succeeded (or none was
	// made yet): readiness follows it.
	LastWriteError() (at time.Time, err error)
	// SetOnCommit sets the function told which sinks have new due
	// deliveries: after this process's commits and, for a shared database,
	// other processes' ingests and replays. Set it before the first write.
	SetOnCommit(fn func(sinks map[string]bool))
	// Close finishes the writes already queued and closes the store.
	Close() error
}

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// ErrStoreClosed is returned by writes after Close.
var ErrStoreClosed = errors.New("store: closed")

// StoredEvent is an event as listed by `bridge events`.
type StoredEvent struct {
	Seq   int64
	Event *Event
}

// EventFilter selects events to list.
type EventFilter struct {
	Source   string
	Type     string
	Severity string
	Text     string // in the title or the subject, case-insensitive
	Before   int64  // only events stored before this one (its Seq): the next page's cursor; 0: from the newest
	Limit    int
}

// DeliveryRecord is a delivery as stored.
type DeliveryRecord struct {
	ID          int64           `json:"id"`
	EventID     string          `json:"event_id"`
	Source      string          `json:"source"`
	Rule        string          `json:"rule"`
	Sink        string          `json:"sink"`
	Status      string          `json:"status"`
	Attempts    int             `json:"attempts"`
	LastError   string          `json:"last_error"`
	Result      string          `json:"result"`
	Created     time.Time       `json:"created"`
	NextAt      time.Time       `json:"next_at"`
	Updated     time.Time       `json:"updated"`
	Action      json.RawMessage `json:"action,omitempty"`
	WindowStart time.Time       `json:"-"` // when the retry window began: when the event was stored, or the last replay

	// ActionID is the action's `id` within its rule ("" for none); After
	// the `id` of the action it runs after, whose Index is AfterIndex (-1
	// when After is ""). Link is a URL a person can open for the result
	// (a Jira issue's browse URL), "" where the sink has none.
	ActionID   string `json:"action_id,omitempty"`
	After      string `json:"after,omitempty"`
	AfterIndex int    `json:"-"`
	Link       string `json:"link,omitempty"`
}

// Waiting reports whether the delivery is pending and waits for the
// delivery of the action it runs after.
func (d *DeliveryRecord) Waiting() bool {
	return d.Status == StatusPending && d.After != "" && WaitingAt(d.NextAt)
}

// MarshalJSON writes the record as `bridge deliveries --json` and the API
// show it: its fields, and "waiting": true while it waits for the action
// it runs after (its next_at is then Waiting, in 2262). <, > and & are
// left to the caller's encoder to escape or not.
func (d DeliveryRecord) MarshalJSON() ([]byte, error) {
	type fields DeliveryRecord // without this method
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(struct {
		fields
		Waiting bool `json:"waiting,omitempty"`
	}{fields(d), d.Waiting()})
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), err
}

// DeliveryFilter selects deliveries to list.
type DeliveryFilter struct {
	Status  string
	EventID string
	Source  string // with EventID: the event's source
	Sink    string
	Rule    string
	Before  int64 // only deliveries with a smaller ID: the next page's cursor; 0: from the newest
	Limit   int
}

// SinkStats are one sink's deliveries by status, and its latest error.
type SinkStats struct {
	Pending, Delivered, Failed int
	LastError                  string    // of the delivery that failed or was retried most recently
	LastErrorAt                time.Time // when
}

// Count adds n deliveries of status to the stats.
func (st *SinkStats) Count(status string, n int) {
	switch status {
	case StatusPending:
		st.Pending += n
	case StatusDelivered:
		st.Delivered += n
	case StatusFailed:
		st.Failed += n
	}
}

// EscapeLike escapes the wildcards of a LIKE pattern (% and _) and its
// escape character, backslash, which both stores name in their queries.
func EscapeLike(s string) string { return likeEscaper.Replace(s) }

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// ErrNotFound is returned for an event or delivery the store does not have.
var ErrNotFound = errors.New("store: not found")

// Outcome is the result of one attempt at a delivery, to record.
type Outcome struct {
	ID     int64
	Status string    // StatusDelivered, StatusFailed, or StatusPending for a retry
	Result string    // what the sink reported, when delivered
	Error  string    // the sink's message, when it failed
	NextAt time.Time // when a retry is due
	At     time.Time
	Link   string // a URL a person can open for the result, when delivered and the sink has one

	// Chained is set for a delivery whose action has an id: deliveries
	// of its rule may run after it. Delivered, the store releases them
	// (due now, a fresh retry window); failed, it fails them (and theirs)
	// with ChainFailed. Others cost nothing more to record.
	Chained bool
}

// StoredData returns the `data` object of a stored raw body ({} when
// absent): a store's Load and Claim give it to the delivery's event.
func StoredData(raw []byte) map[string]any {
	if m, err := DecodeObject(raw); err == nil {
		if d, ok := m["data"].(map[string]any); ok {
			return d
		}
	}
	return map[string]any{}
}
