//go:build linux

// Command flushfloor is the durable-ack floor for ingest benchmarks: bare's
// handler plus the one thing every durable ack needs, whatever the store.
// Each body is appended to a preallocated file, and its 200 waits for an
// fdatasync that covers it; concurrent requests share one (group commit, as
// the bridge's store does). It verifies, parses, indexes and dedupes
// nothing, so a store can only be slower: when flushfloor's throughput
// ratio to bare is below a target, no store design meets that target on
// the machine measured.
package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"syscall"
	"time"
)

// size is the preallocated file: written once with zeros, then reused as a
// ring, so an append never changes the file's size or block map and a sync
// flushes data only, like the bridge's WAL once it has reached its size.
const size = 64 << 20

type appendOp struct {
	body []byte
	done chan error
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: flushfloor ADDR FILE")
		os.Exit(2)
	}
	f, err := prealloc(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ops := make(chan appendOp, 1024)
	go appender(f, ops)
	srv := &http.Server{
		Addr:              os.Args[1],
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			op := appendOp{body: body, done: make(chan error, 1)}
			ops <- op
			if err := <-op.done; err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"status":"accepted"}`))
		}),
	}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func prealloc(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	zero := make([]byte, 1<<20)
	for off := 0; off < size; off += len(zero) {
		if _, err := f.Write(zero); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// appender writes whatever is queued with one pwrite, syncs it, and then
// answers every request of the group.
func appender(f *os.File, ops <-chan appendOp) {
	var off int
	group := make([]appendOp, 0, 512)
	buf := make([]byte, 0, 1<<20)
	for first := range ops {
		group = append(group[:0], first)
	fill:
		for len(group) < cap(group) {
			select {
			case op := <-ops:
				group = append(group, op)
			default:
				break fill
			}
		}
		buf = buf[:0]
		for _, op := range group {
			buf = append(buf, op.body...)
		}
		if off+len(buf) > size {
			off = 0
		}
		err := write(f, buf, off)
		off += len(buf)
		for _, op := range group {
			op.done <- err
		}
	}
}

func write(f *os.File, buf []byte, off int) error {
	if len(buf) > size {
		return errors.New("group larger than the file")
	}
	if _, err := f.WriteAt(buf, int64(off)); err != nil {
		return err
	}
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
