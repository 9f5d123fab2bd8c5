package console

import (
	"context"
	"sync"
	"time"

	"bridge/bridge"
)

// maxStatsAge bounds how long the overview reuses the sinks' counts.
const maxStatsAge = 30 * time.Second

// sinkStats caches Store.SinkStats for the overview. Counting every
// delivery by status is a scan of the deliveries table: a millisecond on a
// small store, about a second with a million deliveries. The counts are
// kept ten times as long as they took to read (at most maxStatsAge), so a
// small store's overview is always current and a large one's costs the
// scan once per many loads; one read runs at a time however many people
// load the page. A replay forgets them.
type sinkStats struct {
	mu      sync.Mutex
	stats   map[string]bridge.SinkStats
	at      time.Time     // when they were read
	took    time.Duration // how long that took
	reading chan struct{} // closed when the read in flight ends; nil when none
	err     error
}

// get returns the counts and when they were read.
func (s *sinkStats) get(ctx context.Context, st bridge.Store, now func() time.Time) (map[string]bridge.SinkStats, time.Time, error) {
	for {
		s.mu.Lock()
		if s.stats != nil && now().Sub(s.at) < min(10*s.took, maxStatsAge) {
			stats, at := s.stats, s.at
			s.mu.Unlock()
			return stats, at, nil
		}
		if wait := s.reading; wait != nil {
			s.mu.Unlock()
			select {
			case <-wait:
				s.mu.Lock()
				stats, at, err := s.stats, s.at, s.err
				s.mu.Unlock()
				if err == nil && stats != nil {
					return stats, at, nil
				}
				continue // that read failed or was forgotten: read again
			case <-ctx.Done():
				return nil, time.Time{}, ctx.Err()
			}
		}
		done := make(chan struct{})
		s.reading = done
		s.mu.Unlock()

		start := now()
		stats, err := st.SinkStats(ctx)
		s.mu.Lock()
		s.reading, s.err = nil, err
		if err == nil {
			s.stats, s.at, s.took = stats, start, now().Sub(start)
		}
		s.mu.Unlock()
		close(done)
		return stats, start, err
	}
}

// forget drops the counts, so the next overview reads them again.
func (s *sinkStats) forget() {
	s.mu.Lock()
	s.stats = nil
	s.mu.Unlock()
}
