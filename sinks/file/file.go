package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"bridge/bridge"
)

// errClosed is returned for deliveries handed to a closed sink.
var errClosed = errors.New("file: sink is closed")

// Sink appends events to a file, one JSON object per line. It implements
// bridge.Sink, bridge.BatchSink and bridge.DryRunner.
//
// A batch is written with one write, under a lock, so lines never
// interleave; then it waits for an fsync that covers it. One fsync runs at a
// time and covers every line written before it began, so concurrent batches
// share it (group commit) and the pipeline need not wait for a batch to
// fill. A write that fails is cut back out of the file; an fsync that fails
// cuts the file back to the last durable point and fails every batch
// written since, for the pipeline to retry. When the file is moved away
// (log rotation), the next batch opens a new one at the configured path.
type Sink struct {
	path  string
	batch int
	log   *slog.Logger
	// sync makes the written lines durable; tests count calls through it.
	sync func(*os.File) error

	mu      sync.Mutex // guards f, end, durable and closed
	f       *os.File
	end     int64 // where the next write goes
	durable int64 // how much of f is known to be on disk
	closed  bool

	syncMu   sync.Mutex // one fsync at a time
	lastSync time.Time  // when the last fsync began; guarded by syncMu
	interval time.Duration
}

var _ bridge.BatchSink = (*Sink)(nil)
var _ bridge.DryRunner = (*Sink)(nil)

// New builds a file sink from its validated config. The file is opened by
// the first batch, so a dry run creates nothing.
func New(cfg *Config, env bridge.SinkEnv) (*Sink, error) {
	log := env.Log()
	p, err := filepath.Abs(env.Path(cfg.Path))
	if err != nil {
		return nil, fmt.Errorf("file: path: %w", err)
	}
	return &Sink{path: p, batch: cfg.BatchSize, log: log, sync: (*os.File).Sync, interval: cfg.SyncInterval.D()}, nil
}

// BatchLimits returns batch_size, and no wait: a quiet bridge is not taxed.
func (s *Sink) BatchLimits() (int, time.Duration) { return s.batch, 0 }

// Send appends one event. Its result is empty.
func (s *Sink) Send(ctx context.Context, d *bridge.Delivery) (string, error) {
	return "", s.SendBatch(ctx, []*bridge.Delivery{d})[0]
}

// SendBatch appends one line per delivery with a single write, then syncs
// the file once. It returns one error per delivery.
func (s *Sink) SendBatch(ctx context.Context, ds []*bridge.Delivery) []error {
	errs := make([]error, len(ds))
	var buf []byte
	written := 0
	for i, d := range ds {
		var err error
		if buf, err = appendLine(buf, d); err != nil {
			errs[i] = err
			continue
		}
		written++
	}
	if written == 0 {
		return errs
	}
	if err := ctx.Err(); err != nil {
		return failAll(errs, fmt.Errorf("file: %w", err))
	}
	s.mu.Lock()
	f, end, err := s.write(buf)
	s.mu.Unlock()
	if err == nil {
		err = s.syncThrough(f, end)
	}
	if err != nil {
		return failAll(errs, err)
	}
	return errs
}

// failAll sets err for every delivery that has no error yet.
func failAll(errs []error, err error) []error {
	for i := range errs {
		if errs[i] == nil {
			errs[i] = err
		}
	}
	return errs
}

// write appends buf to the file and returns the file and where the batch
// ends. A failed write is cut back out. The caller holds s.mu.
func (s *Sink) write(buf []byte) (*os.File, int64, error) {
	if s.closed {
		return nil, 0, errClosed
	}
	f, err := s.file()
	if err != nil {
		return nil, 0, err
	}
	if _, err := f.Write(buf); err != nil {
		if terr := f.Truncate(s.end); terr != nil {
			s.log.Warn("file: could not remove a partly written batch; the file may hold a broken line", "path", s.path, "err", terr)
		}
		s.drop()
		return nil, 0, fmt.Errorf("file: %w", err)
	}
	s.end += int64(len(buf))
	return f, s.end, nil
}

// syncThrough returns once f is durable up to end: an fsync that began after
// the batch was written covers it.
func (s *Sink) syncThrough(f *os.File, end int64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	if s.f != f {
		// The file was cut back or replaced before this batch was synced.
		s.mu.Unlock()
		return errors.New("file: the batch was written but could not be synced; it will be written again")
	}
	if s.durable >= end {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	// Space fsyncs out: batches written meanwhile share the next one, so a
	// busy sink makes fewer, larger fsyncs and leaves the disk to the store.
	if wait := s.interval - time.Since(s.lastSync); wait > 0 {
		time.Sleep(wait)
	}
	s.mu.Lock()
	if s.f != f {
		s.mu.Unlock()
		return errors.New("file: the batch was written but could not be synced; it will be written again")
	}
	target := s.end
	s.mu.Unlock()
	s.lastSync = time.Now()

	err := s.sync(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.f == f {
			// Nothing past the last durable point can be trusted: cut it
			// and fail every batch written since, so each is written again.
			if terr := f.Truncate(s.durable); terr != nil {
				s.log.Warn("file: could not cut back batches whose sync failed; they may be written twice", "path", s.path, "err", terr)
			}
			s.drop()
		}
		return fmt.Errorf("file: %w", err)
	}
	if s.f == f && target > s.durable {
		s.durable = target
	}
	return nil
}

// drop closes the file, for the next batch to open it again.
func (s *Sink) drop() {
	_ = s.f.Close()
	s.f = nil
}

// file returns the open file, opening it when it is not open or when the
// file at the path is no longer the one open (it was rotated or removed).
// The caller holds s.mu.
func (s *Sink) file() (*os.File, error) {
	if s.f != nil {
		cur, err := s.f.Stat()
		at, err2 := os.Stat(s.path)
		if err == nil && err2 == nil && os.SameFile(cur, at) {
			return s.f, nil
		}
		s.drop()
	}
	if err := os.MkdirAll(filepath.Dir(s.path), dirMode); err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	_, statErr := os.Stat(s.path)
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		// A new file survives a power loss only once its directory entry
		// is synced too.
		if err := syncDir(filepath.Dir(s.path)); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("file: %w", err)
		}
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("file: %w", err)
	}
	s.f, s.end, s.durable = f, end, end
	return f, nil
}

// syncDir makes the entries of directory dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// encode returns the JSON object of one delivery's event.
func encode(d *bridge.Delivery) ([]byte, error) { return appendEvent(nil, d) }

// appendLine appends the line of one delivery: its event's JSON object and
// a newline. On an error buf is returned as it was.
func appendLine(buf []byte, d *bridge.Delivery) ([]byte, error) {
	out, err := appendEvent(buf, d)
	if err != nil {
		return buf, err
	}
	return append(out, '\n'), nil
}

// appendEvent appends the JSON object of one delivery's event to buf, in
// place (what json.Marshal(d.Event) gives, without its second pass or a
// copy per line).
func appendEvent(buf []byte, d *bridge.Delivery) ([]byte, error) {
	if d == nil || d.Event == nil {
		return buf, bridge.Permanent(errors.New("file: delivery has no event"))
	}
	var a Action
	if err := d.DecodeAction(&a); err != nil {
		return buf, fmt.Errorf("file: action: %w", err)
	}
	if a.Format != "" && a.Format != FormatJSON {
		return buf, bridge.Permanent(fmt.Errorf("file: format %q is not supported (only json)", a.Format))
	}
	out, err := d.Event.AppendJSON(buf)
	if err != nil {
		return buf, bridge.Permanent(fmt.Errorf("file: encode event %s: %w", d.Event.ID, err))
	}
	return out, nil
}

// DryRun returns the line Send would append, and where.
func (s *Sink) DryRun(_ context.Context, d *bridge.Delivery) (string, error) {
	line, err := encode(d)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("append to %s: %s", s.path, line), nil
}

// Close closes the file. Later batches fail with a retryable error.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("file: close: %w", err)
	}
	return nil
}
