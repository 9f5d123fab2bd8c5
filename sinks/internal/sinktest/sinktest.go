// Package sinktest holds what the sinks' tests and benchmarks share.
package sinktest

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"bridge/bridge"
)

// DriveBatches sends b.N events through s in batches of at most size, from
// conc goroutines at once (each a share of b.N), reusing ds (len(ds) >= size)
// for every batch. It stops the timer and reports events/s; the caller adds
// its own metrics (requests, fsyncs) per b.N.
func DriveBatches(b *testing.B, s bridge.BatchSink, ds []*bridge.Delivery, size, conc int) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range conc {
		share := b.N / conc
		if w == 0 {
			share += b.N % conc
		}
		wg.Go(func() {
			for share > 0 {
				n := min(size, share)
				for _, err := range s.SendBatch(context.Background(), ds[:n]) {
					if err != nil {
						b.Error(err)
						return
					}
				}
				share -= n
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// Fields lists the config keys err's problems point at, in the order
// reported; a problem that is not a bridge.FieldError is listed as "?" and
// its message, so that a test expecting fields sees it.
func Fields(err error) []string {
	var out []string
	for _, e := range bridge.SplitErrors(err) {
		f, _, ok := bridge.AsFieldError(e)
		if !ok {
			f = "?" + e.Error()
		}
		out = append(out, f)
	}
	return out
}

// SendAll sends ds in batches of the sink's BatchLimits, as the pipeline
// does when deliveries pile up, and fails on any delivery's error.
func SendAll(tb testing.TB, s bridge.BatchSink, ds []*bridge.Delivery) {
	tb.Helper()
	max, _ := s.BatchLimits()
	for len(ds) > 0 {
		n := min(max, len(ds))
		for i, err := range s.SendBatch(context.Background(), ds[:n]) {
			if err != nil {
				tb.Fatalf("delivery %d: %v", i, err)
			}
		}
		ds = ds[n:]
	}
}

// JSON decodes b, one JSON value, keeping numbers as written, for
// comparing what a sink sent.
func JSON(tb testing.TB, b []byte) any {
	tb.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		tb.Fatalf("decode %q: %v", b, err)
	}
	if d.More() {
		tb.Fatalf("more than one value in %q", b)
	}
	return v
}

// SortedFields is Fields sorted, for configs whose problems come from map
// keys (headers), in no fixed order.
func SortedFields(err error) []string {
	out := Fields(err)
	slices.Sort(out)
	return out
}

// CheckErr checks a sink's error: nil when want is "", else its text is
// want, it is permanent or not, and it asks for a retry after wait (0: no
// Retry-After).
func CheckErr(tb testing.TB, err error, want string, permanent bool, wait time.Duration) {
	tb.Helper()
	if want == "" {
		if err != nil {
			tb.Fatalf("err = %v, want nil", err)
		}
		return
	}
	if err == nil || err.Error() != want {
		tb.Fatalf("err = %v, want %q", err, want)
	}
	if got := bridge.IsPermanent(err); got != permanent {
		tb.Errorf("permanent = %v, want %v", got, permanent)
	}
	d, ok := bridge.RetryDelay(err)
	if ok != (wait > 0) || d != wait {
		tb.Errorf("retry delay = %v, %v; want %v", d, ok, wait)
	}
}

// CheckBatch checks the errors of one SendBatch: the first permanent
// deliveries failed permanently, and every later one succeeded.
func CheckBatch(tb testing.TB, errs []error, permanent int) {
	tb.Helper()
	for i, err := range errs {
		switch {
		case i < permanent && (err == nil || !bridge.IsPermanent(err)):
			tb.Errorf("delivery %d: err = %v, want permanent", i, err)
		case i >= permanent && err != nil:
			tb.Errorf("delivery %d: %v", i, err)
		}
	}
}

// YAMLNode parses src into a YAML node.
func YAMLNode(tb testing.TB, src string) *yaml.Node {
	tb.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		tb.Fatal(err)
	}
	return &n
}

// DecodeConfig decodes the YAML src into cfg (which holds the defaults) as
// the config loader does: an unknown key fails, then cfg must validate.
func DecodeConfig(tb testing.TB, src string, cfg bridge.SinkConfig) {
	tb.Helper()
	n := YAMLNode(tb, src)
	if ps := bridge.CheckKeys(n, cfg); len(ps) > 0 {
		tb.Fatalf("unknown keys: %v", ps)
	}
	if err := n.Decode(cfg); err != nil {
		tb.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
}

// CheckMissingCAFile fails tb unless fc's CheckFiles, with dir as the
// config's directory, reports its tls.ca_file missing-ca.pem as unreadable,
// at that key (bridge.FileChecker).
func CheckMissingCAFile(tb testing.TB, fc bridge.FileChecker, dir string) {
	tb.Helper()
	field, msg, ok := bridge.AsFieldError(fc.CheckFiles(dir))
	if !ok || field != "tls.ca_file" || !strings.Contains(msg, "missing-ca.pem: no such file or directory") {
		tb.Errorf("CheckFiles = %q %q, want tls.ca_file: cannot read .../missing-ca.pem", field, msg)
	}
}
