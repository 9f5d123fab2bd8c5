package console

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bridge/bridge"
)

// slowStats is a store whose SinkStats takes a while on a fake clock.
type slowStats struct {
	bridge.Store
	calls atomic.Int64
	clock *fakeClock
	took  time.Duration
}

func (s *slowStats) SinkStats(ctx context.Context) (map[string]bridge.SinkStats, error) {
	s.calls.Add(1)
	s.clock.advance(s.took)
	return map[string]bridge.SinkStats{"a": {Failed: int(s.calls.Load())}}, nil
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestSinkStatsCache(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	ctx := context.Background()
	t.Run("a fast count is always fresh", func(t *testing.T) {
		st := &slowStats{clock: clock, took: time.Millisecond}
		var c sinkStats
		c.get(ctx, st, clock.now)
		clock.advance(20 * time.Millisecond)
		c.get(ctx, st, clock.now)
		if n := st.calls.Load(); n != 2 {
			t.Errorf("%d counts, want 2", n)
		}
	})
	t.Run("a slow count is kept ten times as long", func(t *testing.T) {
		st := &slowStats{clock: clock, took: time.Second}
		var c sinkStats
		first, at, _ := c.get(ctx, st, clock.now)
		clock.advance(5 * time.Second)
		again, at2, _ := c.get(ctx, st, clock.now)
		if st.calls.Load() != 1 || again["a"] != first["a"] || !at2.Equal(at) {
			t.Errorf("within 10 s: %d counts", st.calls.Load())
		}
		clock.advance(6 * time.Second)
		c.get(ctx, st, clock.now)
		if st.calls.Load() != 2 {
			t.Errorf("after 11 s: %d counts, want 2", st.calls.Load())
		}
		c.forget()
		c.get(ctx, st, clock.now)
		if st.calls.Load() != 3 {
			t.Errorf("after forget: %d counts, want 3", st.calls.Load())
		}
	})
	t.Run("at most maxStatsAge", func(t *testing.T) {
		st := &slowStats{clock: clock, took: 10 * time.Second}
		var c sinkStats
		c.get(ctx, st, clock.now)
		clock.advance(maxStatsAge)
		c.get(ctx, st, clock.now)
		if st.calls.Load() != 2 {
			t.Errorf("%d counts, want 2", st.calls.Load())
		}
	})
	t.Run("one count at a time", func(t *testing.T) {
		block := make(chan struct{})
		st := &blockingStats{release: block}
		var c sinkStats
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() { c.get(ctx, st, time.Now) })
		}
		time.Sleep(50 * time.Millisecond)
		close(block)
		wg.Wait()
		if n := st.calls.Load(); n != 1 {
			t.Errorf("%d counts at once, want 1", n)
		}
	})
}

type blockingStats struct {
	bridge.Store
	calls   atomic.Int64
	release chan struct{}
}

func (s *blockingStats) SinkStats(ctx context.Context) (map[string]bridge.SinkStats, error) {
	s.calls.Add(1)
	<-s.release
	time.Sleep(10 * time.Millisecond) // slow enough to be kept for the others
	return map[string]bridge.SinkStats{}, nil
}
