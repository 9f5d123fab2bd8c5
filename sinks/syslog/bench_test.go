package syslog

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"

	"bridge/bridge"
)

// discardReceiver accepts TCP connections or UDP datagrams on a free port
// and throws the bytes away, so a benchmark measures the sender.
func discardReceiver(b *testing.B, network string) string {
	b.Helper()
	if network == NetworkUDP {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 65536)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		return pc.LocalAddr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkSend measures events per second through Send (one write per
// event) and SendBatch (one write per 100 events), as JSON and CEF.
func BenchmarkSend(b *testing.B) {
	for _, tc := range []struct {
		network, format string
		batch           int
	}{
		{NetworkTCP, FormatJSON, 1},
		{NetworkTCP, FormatJSON, 100},
		{NetworkTCP, FormatCEF, 100},
		{NetworkUDP, FormatJSON, 1},
		{NetworkUDP, FormatJSON, 100},
	} {
		b.Run(fmt.Sprintf("%s/%s/batch=%d", tc.network, tc.format, tc.batch), func(b *testing.B) {
			cfg := NewConfig()
			cfg.Network, cfg.Format, cfg.Hostname = tc.network, tc.format, "bench"
			cfg.Address = discardReceiver(b, tc.network)
			s, err := New(cfg, bridge.SinkEnv{Version: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			ds := make([]*bridge.Delivery, tc.batch)
			for i := range ds {
				ds[i] = delivery(int64(i), testEvent(fmt.Sprint("evt_", i)), "")
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += tc.batch {
				n := min(tc.batch, b.N-i)
				for j, err := range s.SendBatch(ctx, ds[:n]) {
					if err != nil {
						b.Fatalf("delivery %d: %v", j, err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
