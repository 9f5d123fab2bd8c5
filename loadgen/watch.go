package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// watcher tails a file sink's output and notes when each of this run's
// events first appears in it.
type watcher struct {
	path   string
	prefix string // the run's event ids start with it

	mu   sync.Mutex
	seen map[int]time.Time // event index → when its line appeared
	quit chan struct{}
	done chan struct{}
}

// watchPoll is how often the file is read for new lines.
const watchPoll = time.Millisecond

func newWatcher(path, prefix string) (*watcher, error) {
	f, err := os.Open(path)
	var offset int64
	if err == nil {
		// Start at the end: earlier lines are not this run's.
		offset, err = f.Seek(0, io.SeekEnd)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("loadgen: watch %s: %w", path, err)
		}
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("loadgen: watch %s: %w", path, err)
	}
	w := &watcher{path: path, prefix: prefix, seen: map[int]time.Time{}, quit: make(chan struct{}), done: make(chan struct{})}
	go w.tail(offset)
	return w, nil
}

func (w *watcher) tail(offset int64) {
	defer close(w.done)
	var partial []byte
	buf := make([]byte, 1<<20)
	t := time.NewTicker(watchPoll)
	defer t.Stop()
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		if f == nil {
			if nf, err := os.Open(w.path); err == nil {
				f = nf
			}
		}
		for f != nil {
			n, err := f.ReadAt(buf, offset)
			if n > 0 {
				now := time.Now()
				offset += int64(n)
				data := append(partial, buf[:n]...)
				lines := bytes.Split(data, []byte("\n"))
				partial = append([]byte(nil), lines[len(lines)-1]...)
				w.note(lines[:len(lines)-1], now)
			}
			if err != nil || n < len(buf) {
				break
			}
		}
		select {
		case <-w.quit:
			return
		case <-t.C:
		}
	}
}

// note records the lines of this run's events.
func (w *watcher) note(lines [][]byte, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, line := range lines {
		var ev struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(line, &ev) != nil || !strings.HasPrefix(ev.ID, w.prefix) {
			continue
		}
		i, err := strconv.Atoi(strings.TrimPrefix(ev.ID, w.prefix))
		if err != nil {
			continue
		}
		if _, ok := w.seen[i-1]; !ok {
			w.seen[i-1] = at
		}
	}
}

// finish waits until every acknowledged event has appeared (or wait ends)
// and puts the end-to-end figures into rep.
func (w *watcher) finish(ctx context.Context, rep *Report, results []result, wait time.Duration) {
	if wait <= 0 {
		wait = 30 * time.Second
	}
	deadline := time.Now().Add(wait)
	acked := func(r result) bool { return r.status >= 200 && r.status <= 299 }
	for {
		w.mu.Lock()
		missing := 0
		for i, r := range results {
			if _, ok := w.seen[i]; acked(r) && !ok {
				missing++
			}
		}
		w.mu.Unlock()
		if missing == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var lat []time.Duration
	for i, r := range results {
		if at, ok := w.seen[i]; ok && acked(r) {
			lat = append(lat, at.Sub(r.since))
		}
	}
	rep.Watched = true
	rep.Delivered = len(lat)
	if len(lat) > 0 {
		sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
		rep.E2EP50, rep.E2EP99, rep.E2EMax = percentile(lat, 0.50), percentile(lat, 0.99), lat[len(lat)-1]
	}
}

func (w *watcher) stop() {
	close(w.quit)
	<-w.done
}
