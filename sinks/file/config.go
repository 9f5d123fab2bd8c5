// Package file is the file sink: it appends each event's JSON object, one
// per line, to a file.
package file

import (
	"errors"
	"strings"
	"time"

	"bridge/bridge"
)

// Defaults of a file sink, in one place.
const (
	DefaultFormat    = FormatJSON
	DefaultBatchSize = 1000
	// DefaultSyncInterval spaces fsyncs out: on a disk shared with the
	// store, frequent appends-and-fsyncs slow the store's own syncs, and so
	// the webhook acknowledgements.
	DefaultSyncInterval = 20 * time.Millisecond

	// FormatJSON writes the event's JSON object on one line.
	FormatJSON = "json"

	maxBatchSize = 100000

	// fileMode is the mode a new file is created with: events carry vendor
	// data, so only the bridge's user may read them. An existing file keeps
	// its mode, so an operator may widen it (0640 for a shipper's group).
	fileMode = 0o600
	// dirMode is the mode of parent directories the sink creates.
	dirMode = 0o750
)

// Config is a file sink's own config.
type Config struct {
	// Path is the file events are appended to; a relative path is relative
	// to the config file. Missing parent directories are created.
	Path string `yaml:"path"`
	// Format is what each line holds; only json (the event's JSON object).
	Format string `yaml:"format"`
	// BatchSize is the most events written with one fsync (default 1000).
	BatchSize int `yaml:"batch_size"`
	// SyncInterval is the least time between two fsyncs (default 20ms);
	// batches written meanwhile share the next one. 0: sync at once.
	SyncInterval bridge.Duration `yaml:"sync_interval"`
}

// DefaultConfig returns a config with every default filled in.
func DefaultConfig() *Config {
	return &Config{Format: DefaultFormat, BatchSize: DefaultBatchSize, SyncInterval: bridge.Duration(DefaultSyncInterval)}
}

// Validate reports every problem with the config, each pointing at its key.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.Path == "":
		errs = append(errs, bridge.FieldError("path", "is required (the file to append events to)"))
	case strings.HasSuffix(c.Path, "/"):
		errs = append(errs, bridge.FieldError("path", "names a directory; name a file in it"))
	}
	if c.Format != FormatJSON {
		errs = append(errs, bridge.FieldErrorf("format", "%q is not a format of the file sink (only json)", c.Format))
	}
	if c.BatchSize < 1 || c.BatchSize > maxBatchSize {
		errs = append(errs, bridge.FieldErrorf("batch_size", "must be between 1 and %d", maxBatchSize))
	}
	if c.SyncInterval.D() > time.Second {
		errs = append(errs, bridge.FieldErrorf("sync_interval", "%s is too long: every delivery waits for its fsync (at most 1s)", c.SyncInterval))
	}
	return errors.Join(errs...)
}

// Action is what a rule may set on a file action. No field is required.
type Action struct {
	// Format overrides the sink's format (only json today).
	Format string `yaml:"format" json:"format,omitempty"`
}

// Validate checks the action's format unless it is a template.
func (a *Action) Validate(bridge.SinkConfig) error {
	if a.Format != "" && !strings.Contains(a.Format, "{{") && a.Format != FormatJSON {
		return bridge.FieldErrorf("format", "%q is not a format of the file sink (only json)", a.Format)
	}
	return nil
}

// Type returns the file sink type, for the map of sink types.
func Type() bridge.SinkType {
	return bridge.NewSinkType(DefaultConfig, func() *Action { return &Action{} }, New)
}
