package httpclient

import (
	"errors"
	"time"

	"bridge/bridge"
)

// Batching defaults and bounds, shared by the sinks that post batches.
const (
	DefaultBatchSize  = 500
	DefaultBatchWait  = 500 * time.Millisecond
	DefaultBatchBytes = 1 << 20

	// MaxBatchSize bounds batch_size: beyond it a batch only adds latency.
	MaxBatchSize = 10000
	// MinBatchBytes bounds batch_bytes from below: one event must fit.
	MinBatchBytes = 4 << 10
)

// Batching is how a sink groups events into requests. Sinks embed it with
// `yaml:",inline"`, so its keys sit beside the sink's own.
type Batching struct {
	// BatchSize is the most events one batch carries (default 500).
	BatchSize int `yaml:"batch_size"`
	// BatchWait is how long the pipeline may wait for a batch to fill
	// (default 500ms).
	BatchWait bridge.Duration `yaml:"batch_wait"`
	// BatchBytes is the largest request body; a larger batch is split into
	// several requests (default 1 MiB).
	BatchBytes int `yaml:"batch_bytes"`
}

// DefaultBatching returns the default batch settings.
func DefaultBatching() Batching {
	return Batching{BatchSize: DefaultBatchSize, BatchWait: bridge.Duration(DefaultBatchWait), BatchBytes: DefaultBatchBytes}
}

// Validate reports batch settings out of bounds, each at its key.
func (b Batching) Validate() error {
	var errs []error
	if b.BatchSize < 1 || b.BatchSize > MaxBatchSize {
		errs = append(errs, bridge.FieldErrorf("batch_size", "must be between 1 and %d", MaxBatchSize))
	}
	if b.BatchBytes < MinBatchBytes {
		errs = append(errs, bridge.FieldErrorf("batch_bytes", "must be at least %d", MinBatchBytes))
	}
	return errors.Join(errs...)
}
