package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"bridge/bridge"
)

// benchBody is a webhook body of about 1 KB, as `bridge bench` sends.
var benchBody = []byte(`{"id":"x","type":"alert.triggered","data":{"notes":"` + strings.Repeat("n", 960) + `"}}`)

// BenchmarkIngest measures the write path under 32 concurrent webhooks, as
// scripts/bench-ingest.sh loads `bridge serve`: per event, and how many
// events a commit carried.
func BenchmarkIngest(b *testing.B) {
	for _, sync := range []string{"normal", "full"} {
		for _, sinks := range []int{0, 1} {
			b.Run(fmt.Sprintf("sync=%s/deliveries=%d", sync, sinks), func(b *testing.B) {
				s := openTestStore(b, sync)
				var planned []bridge.Planned
				for i := range sinks {
					planned = append(planned, bridge.Planned{Rule: "all", Index: i, Sink: fmt.Sprint("sink", i), Action: []byte(`{}`)})
				}
				benchIngest(b, s, planned)
			})
		}
	}
}

// BenchmarkIngestRandomIDs is BenchmarkIngest's sync=normal, one delivery,
// with ids in no order, as vendors' UUIDs are: each event's insert into
// the (source, id) index lands on a leaf page of its own, where the
// sequential ids of BenchmarkIngest (and of the load tools) share the
// last one.
func BenchmarkIngestRandomIDs(b *testing.B) {
	for _, order := range []string{"sequential", "random"} {
		b.Run("ids="+order, func(b *testing.B) {
			s := openTestStore(b, "normal")
			planned := []bridge.Planned{{Rule: "all", Sink: "sink0", Action: []byte(`{}`)}}
			if order == "random" {
				benchIngestIDs(b, s, planned, func(i int64) string {
					h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
					return hex.EncodeToString(h[:16])
				})
				return
			}
			benchIngest(b, s, planned)
		})
	}
}

func benchIngest(b *testing.B, s *Store, planned []bridge.Planned) {
	benchIngestIDs(b, s, planned, func(i int64) string { return fmt.Sprintf("evt-%09d", i) })
}

func benchIngestIDs(b *testing.B, s *Store, planned []bridge.Planned, id func(int64) string) {
	gen0 := s.gen
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	ingestConcurrently(b, s, planned, id)
	b.StopTimer()
	reportCPU(b, cpu)
	if commits := s.gen - gen0; commits > 0 {
		b.ReportMetric(float64(b.N)/float64(commits), "events/commit")
	}
}

// ingestConcurrently ingests b.N events, their ids id(1) to id(b.N), from
// 32 goroutines, as 32 concurrent webhooks do.
func ingestConcurrently(b *testing.B, s *Store, planned []bridge.Planned, id func(int64) string) {
	var n atomic.Int64
	now := time.Now()
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := n.Add(1); i <= int64(b.N); i = n.Add(1) {
				if _, err := s.Ingest(context.Background(), testEvent("src", id(i), now), benchBody, planned); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkDeliver measures the delivery path's store work for a batch
// sink: read the due ids, claim them, record them delivered, a batch of
// 100 at a time.
func BenchmarkDeliver(b *testing.B) {
	s := openTestStore(b, "normal")
	planned := []bridge.Planned{{Rule: "all", Sink: "archive", Action: []byte(`{}`)}}
	now := time.Now()
	for i := range b.N {
		ev := testEvent("src", fmt.Sprintf("evt-%09d", i), now)
		if _, err := s.Ingest(context.Background(), ev, benchBody, planned); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for done := 0; done < b.N; {
		at := time.Now()
		ids, _, _, err := s.Due(ctx, "archive", at, 100, nil)
		if err != nil {
			b.Fatal(err)
		}
		ds, _, err := s.Claim(ctx, ids, at)
		if err != nil {
			b.Fatal(err)
		}
		outs := make([]bridge.Outcome, len(ds))
		for i, d := range ds {
			outs[i] = bridge.Outcome{ID: d.ID, Status: bridge.StatusDelivered, NextAt: at, At: at}
		}
		if err := s.Record(ctx, outs); err != nil {
			b.Fatal(err)
		}
		done += len(ds)
	}
	reportCPU(b, cpu)
}

// cpuTime is the CPU time (user + system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per op since start: on a noisy machine it
// moves much less than the time per op.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkRecord measures Store.Record alone: a batch sink's outcomes,
// 100 delivered at once, as the file sink's worker records them.
func BenchmarkRecord(b *testing.B) {
	s := openTestStore(b, "normal")
	planned := []bridge.Planned{{Rule: "all", Sink: "archive", Action: []byte(`{}`)}}
	ctx := context.Background()
	ingestConcurrently(b, s, planned, func(i int64) string { return fmt.Sprintf("evt-%09d", i) })
	ds, err := s.Deliveries(ctx, bridge.DeliveryFilter{Status: bridge.StatusPending})
	if err != nil || len(ds) != b.N {
		b.Fatalf("%d pending deliveries, %v; want %d", len(ds), err, b.N)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	at := time.Now()
	for i := 0; i < len(ds); i += 100 {
		outs := make([]bridge.Outcome, 0, 100)
		for _, d := range ds[i:min(i+100, len(ds))] {
			outs = append(outs, bridge.Outcome{ID: d.ID, Status: bridge.StatusDelivered, NextAt: at, At: at})
		}
		if err := s.Record(ctx, outs); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}
