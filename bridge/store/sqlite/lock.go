package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockServe takes the database's serve lock, an OS file lock on PATH.lock
// held until the returned function is called (or the process ends, however
// it ends). One `bridge serve` per SQLite file: two would both attempt the
// same deliveries. The commands that only read or replay (events,
// deliveries, replay) do not take it and work beside a serve.
func LockServe(path string) (unlock func(), err error) {
	name := path + ".lock"
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("store: create directory: %w", err)
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("store: lock %s: %w", name, err)
	}
	if err := lockFile(f); err != nil {
		owner := ""
		if b, rerr := os.ReadFile(name); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				owner = fmt.Sprintf(" (pid %d)", pid)
			}
		}
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("store: %s is in use by another bridge serve%s, which holds %s: stop it first, or give this one another store.path (bridge events, deliveries and replay work beside it): %w",
				path, owner, name, ErrInUse)
		}
		return nil, fmt.Errorf("store: lock %s: %w", name, err)
	}
	// The holder's pid, for the message a second serve prints.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
