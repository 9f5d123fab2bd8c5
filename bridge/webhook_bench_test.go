package bridge_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/loadgen"
)

// keepNothing is a store whose Ingest takes every event at once and keeps
// nothing: what the webhook handler costs without a store. Nothing else of
// the Store is called by a webhook.
type keepNothing struct{ bridge.Store }

func (keepNothing) Ingest(context.Context, *bridge.Event, []byte, []bridge.Planned) (bool, error) {
	return false, nil
}

// BenchmarkWebhook measures what the webhook handler itself costs per
// event, beside what scripts/bare's handler (read the body, answer 200)
// costs in the same run, both through ServeHTTP (no connection, no
// net/http server). "bridge" reads, verifies the signature, applies the
// rate limit, normalizes, counts the metrics and writes the ack, with a
// store that keeps nothing and no rules, as scripts/bench-ingest.sh's
// serve configs without a sink: the difference is the handler's work that
// no store design can take away. The events are bridge bench's, ~1 KB
// Secureagentics alerts.
//
//	go test -run XXX -bench BenchmarkWebhook -cpu 1 ./bridge/
func BenchmarkWebhook(b *testing.B) {
	auth := bridge.ClientAuth{Vendor: bridge.VendorSecureagentics, Secret: "bench-secret"}
	bodies, err := loadgen.Bodies(nil, auth.Vendor, 4096)
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]*http.Request, len(bodies))
	for i, body := range bodies {
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/webhooks/sa", nil)
		r.RemoteAddr = "127.0.0.1:40000"
		auth.Apply(r, body)
		reqs[i] = r
	}
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"accepted"}`))
	})
	src, err := bridge.NewSource(bridge.SourceConfig{Name: "sa", Vendor: auth.Vendor, Secret: auth.Secret})
	if err != nil {
		b.Fatal(err)
	}
	srv := bridge.NewServer(keepNothing{}, bridge.NewMetrics(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv.SetRuntime(&bridge.Runtime{
		Config:  &bridge.Config{Server: bridge.ServerConfig{MaxBodyBytes: 1 << 20}},
		Sources: map[string]*bridge.Source{"sa": src},
	})
	for _, h := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"bridge", srv.Handler()}} {
		b.Run(h.name, func(b *testing.B) {
			w := &ackRecorder{header: http.Header{}}
			b.ReportAllocs()
			cpu := cpuTime()
			i := 0
			for b.Loop() {
				r := reqs[i%len(reqs)]
				body := bodies[i%len(bodies)]
				r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
				i++
				w.reset()
				h.h.ServeHTTP(w, r)
				if w.status != http.StatusOK {
					b.Fatalf("%s answered %d: %s", h.name, w.status, w.body.String())
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// ackRecorder is a ResponseWriter that keeps the status and body, reused
// between requests (httptest.ResponseRecorder allocates per request, more
// than net/http's own writer does).
type ackRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *ackRecorder) reset() {
	clear(w.header)
	w.status = 0
	w.body.Reset()
}

func (w *ackRecorder) Header() http.Header { return w.header }

func (w *ackRecorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *ackRecorder) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// cpuTime is the CPU time (user + system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEventJSON measures the encoding of one event as the file sink
// writes it (Event.AppendJSON), for bridge bench's ~1 KB Secureagentics
// alert.
//
//	go test -run XXX -bench BenchmarkEventJSON -cpu 1 ./bridge/
func BenchmarkEventJSON(b *testing.B) {
	bodies, err := loadgen.Bodies(nil, bridge.VendorSecureagentics, 1)
	if err != nil {
		b.Fatal(err)
	}
	src, err := bridge.NewSource(bridge.SourceConfig{Name: "sa", Vendor: bridge.VendorSecureagentics, Secret: "s"})
	if err != nil {
		b.Fatal(err)
	}
	ev, err := src.Normalize(bodies[0], time.Now())
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = ev.AppendJSON(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}
