package httpsink

import (
	"fmt"
	"testing"

	"bridge/sinks/internal/sinktest"
)

func TestRequestsPer10000Events(t *testing.T) {
	c := newCollector(t)
	c.keep = false
	s := newSink(t, c.URL, func(c *Config) { c.Batch = true })
	sinktest.SendAll(t, s, deliveries(10000))
	t.Logf("requests for 10,000 events: %d", c.Count())
	if got := c.Count(); got > 100 {
		t.Errorf("requests = %d, want at most 100", got)
	}
}

// BenchmarkSendBatch measures events per second against the stand-in
// collector: batch off (one request per event) and batch on, one SendBatch
// at a time (conc=1) or four at once (conc=4). One op is one event.
func BenchmarkSendBatch(b *testing.B) {
	for _, size := range []int{1, 100, 500} {
		for _, conc := range []int{1, 4} {
			b.Run(fmt.Sprintf("batch=%d/conc=%d", size, conc), func(b *testing.B) {
				c := newCollector(b)
				c.keep = false
				s := newSink(b, c.URL, func(c *Config) { c.Batch = size > 1; c.BatchSize = size })
				ds := deliveries(size)
				sinktest.DriveBatches(b, s, ds, size, conc)
				b.ReportMetric(float64(c.Count())*10000/float64(b.N), "requests/10k")
			})
		}
	}
}
