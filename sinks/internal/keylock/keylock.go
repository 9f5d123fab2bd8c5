// Package keylock serializes work per key within one sink: one create per
// Jira dedupe key, one first message per Slack thread key.
package keylock

import (
	"context"
	"sync"
)

// Locks is a set of mutexes by key, made on first use and forgotten when
// nobody holds or waits for them. The zero value is ready to use.
type Locks struct {
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	ch    chan struct{} // holds one token while locked
	users int           // holders and waiters
}

// Lock takes key's lock, or gives up when ctx ends. The returned function
// releases it.
func (l *Locks) Lock(ctx context.Context, key string) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*entry{}
	}
	e := l.m[key]
	if e == nil {
		e = &entry{ch: make(chan struct{}, 1)}
		l.m[key] = e
	}
	e.users++
	l.mu.Unlock()
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; l.release(key, e) }, nil
	case <-ctx.Done():
		l.release(key, e)
		return nil, ctx.Err()
	}
}

func (l *Locks) release(key string, e *entry) {
	l.mu.Lock()
	if e.users--; e.users == 0 {
		delete(l.m, key)
	}
	l.mu.Unlock()
}

// size returns how many keys are known, for tests.
func (l *Locks) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
