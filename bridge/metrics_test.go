package bridge

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsZeroBeforeTraffic checks that every configured source ×
// outcome and sink × outcome is exported at 0 before the first webhook or
// delivery, so that a rate or an alert on it works from the start.
func TestMetricsZeroBeforeTraffic(t *testing.T) {
	m := NewMetrics(nil)
	m.SetSources([]string{"sa", "ag"})
	m.SetSinks([]string{"out"})
	if n := testutil.CollectAndCount(m.Webhooks); n != 2*len(webhookOutcomes) {
		t.Errorf("bridge_webhooks_total has %d series, want %d", n, 2*len(webhookOutcomes))
	}
	if n := testutil.CollectAndCount(m.Deliveries); n != len(deliveryOutcomes) {
		t.Errorf("bridge_deliveries_total has %d series, want %d", n, len(deliveryOutcomes))
	}
	want := `
# HELP bridge_webhooks_total Webhook requests by source and outcome.
# TYPE bridge_webhooks_total counter
bridge_webhooks_total{outcome="accepted",source="ag"} 0
bridge_webhooks_total{outcome="accepted",source="sa"} 0
bridge_webhooks_total{outcome="duplicate",source="ag"} 0
bridge_webhooks_total{outcome="duplicate",source="sa"} 0
bridge_webhooks_total{outcome="error",source="ag"} 0
bridge_webhooks_total{outcome="error",source="sa"} 0
bridge_webhooks_total{outcome="invalid",source="ag"} 0
bridge_webhooks_total{outcome="invalid",source="sa"} 0
bridge_webhooks_total{outcome="rate_limited",source="ag"} 0
bridge_webhooks_total{outcome="rate_limited",source="sa"} 0
bridge_webhooks_total{outcome="too_large",source="ag"} 0
bridge_webhooks_total{outcome="too_large",source="sa"} 0
bridge_webhooks_total{outcome="unauthorized",source="ag"} 0
bridge_webhooks_total{outcome="unauthorized",source="sa"} 0
`
	if err := testutil.CollectAndCompare(m.Webhooks, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	for _, h := range []string{"bridge_webhook_duration_seconds", "bridge_delivery_duration_seconds", "bridge_delivery_attempts"} {
		if n, err := testutil.GatherAndCount(m.Registry, h); err != nil || n == 0 {
			t.Errorf("%s: %d series, %v; want one per source or sink", h, n, err)
		}
	}
}

// TestWebhookDurationObserved checks that each acknowledgement (accepted
// or duplicate) is observed in bridge_webhook_duration_seconds by source,
// and that refusals are not.
func TestWebhookDurationObserved(t *testing.T) {
	ts := newTestServer(t)
	sig := map[string]string{"X-Secureagentics-Signature": sign(alertBody)}
	for range 2 {
		if a := ts.post(t, "POST", "/webhooks/sa", alertBody, sig); a.status != 200 {
			t.Fatalf("post: %d %v", a.status, a.body)
		}
	}
	ts.post(t, "POST", "/webhooks/sa", alertBody, nil) // 401
	n, sum := histogram(t, ts.metrics, "sa")
	if n != 2 || sum <= 0 || sum > 10 {
		t.Errorf("bridge_webhook_duration_seconds{source=\"sa\"}: count %d, sum %v; want 2 acks in a plausible time", n, sum)
	}
	if got := webhookBuckets; got[0] != 0.0005 || got[len(got)-1] != 2.5 || !slices.Contains(got, 0.01) {
		t.Errorf("buckets %v: want 0.5 ms to 2.5 s, with 10 ms (the p99 target) a bound", got)
	}
}

// histogram reads the count and sum of the webhook duration of source.
func histogram(t *testing.T, m *Metrics, source string) (uint64, float64) {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "bridge_webhook_duration_seconds" {
			continue
		}
		for _, pm := range mf.GetMetric() {
			for _, lp := range pm.GetLabel() {
				if lp.GetName() == "source" && lp.GetValue() == source {
					return pm.GetHistogram().GetSampleCount(), pm.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	return 0, 0
}
