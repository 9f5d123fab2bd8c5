package splunk

import (
	"fmt"
	"testing"

	"bridge/sinks/internal/sinktest"
	"bridge/sinks/splunk/hecfake"
)

func TestRequestsPer10000Events(t *testing.T) {
	hec := hecfake.New(testToken, hecfake.CountOnly())
	defer hec.Close()
	s := newSink(t, hec.URL, nil)
	sinktest.SendAll(t, s, deliveries(10000))
	if got := hec.Count(); got != 10000 {
		t.Fatalf("collector accepted %d events, want 10000", got)
	}
	t.Logf("requests for 10,000 events: %d", hec.Requests())
	if got := hec.Requests(); got > 100 {
		t.Errorf("requests = %d, want at most 100", got)
	}
}

// BenchmarkSendBatch measures events per second against the stand-in
// collector, one SendBatch at a time (conc=1) and four at once, as the
// pipeline's default concurrency allows (conc=4). One op is one event.
func BenchmarkSendBatch(b *testing.B) {
	for _, size := range []int{1, 100, 500} {
		for _, conc := range []int{1, 4} {
			b.Run(fmt.Sprintf("batch=%d/conc=%d", size, conc), func(b *testing.B) {
				hec := hecfake.New(testToken, hecfake.CountOnly())
				defer hec.Close()
				s := newSink(b, hec.URL, func(c *Config) { c.BatchSize = size })
				ds := deliveries(size)
				sinktest.DriveBatches(b, s, ds, size, conc)
				b.ReportMetric(float64(hec.Requests())*10000/float64(b.N), "requests/10k")
			})
		}
	}
}
