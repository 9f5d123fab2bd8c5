package bridge

import (
	"context"
	"sync"
)

// Locker serializes a sink's work per key: one create per Jira dedupe key,
// one first message per Slack thread key. SinkEnv.Locks is shared by every
// instance built under one sink name, so a sink rebuilt by a reload and the
// instance it replaces, which may still be sending, never work on one key
// at once.
type Locker interface {
	// Lock takes key's lock, or gives up when ctx ends. The returned
	// function releases it.
	Lock(ctx context.Context, key string) (unlock func(), err error)
}

// KeyLocks is a Locker within one process: a set of mutexes by key, made on
// first use and forgotten when nobody holds or waits for them. The zero
// value is ready to use.
type KeyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch    chan struct{} // holds one token while locked
	users int           // holders and waiters
}

// Lock takes key's lock, or gives up when ctx ends. The returned function
// releases it.
func (l *KeyLocks) Lock(ctx context.Context, key string) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*keyLock{}
	}
	e := l.m[key]
	if e == nil {
		e = &keyLock{ch: make(chan struct{}, 1)}
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

func (l *KeyLocks) release(key string, e *keyLock) {
	l.mu.Lock()
	if e.users--; e.users == 0 {
		delete(l.m, key)
	}
	l.mu.Unlock()
}

// size returns how many keys are known, for tests.
func (l *KeyLocks) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
