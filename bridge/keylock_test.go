package bridge

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeyLocksOneHolderPerKey(t *testing.T) {
	var l KeyLocks
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			unlock, err := l.Lock(context.Background(), "k")
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			inside.Add(-1)
			unlock()
		})
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Errorf("%d holders at once, want 1", most.Load())
	}
	if l.size() != 0 {
		t.Errorf("%d keys left after every lock was released", l.size())
	}
}

func TestKeyLocksOtherKeysDoNotWait(t *testing.T) {
	var l KeyLocks
	unlock, _ := l.Lock(context.Background(), "a")
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	u2, err := l.Lock(ctx, "b")
	if err != nil {
		t.Fatalf("another key waited: %v", err)
	}
	u2()
}

func TestKeyLocksContextEndsTheWait(t *testing.T) {
	var l KeyLocks
	unlock, _ := l.Lock(context.Background(), "k")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Lock(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's", err)
	}
	unlock()
	if l.size() != 0 {
		t.Errorf("a waiter that gave up left its key behind")
	}
}
