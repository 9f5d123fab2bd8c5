package bridge

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Webhook outcomes, the values of bridge_webhooks_total's outcome label.
const (
	OutcomeAccepted     = "accepted"
	OutcomeDuplicate    = "duplicate"
	OutcomeInvalid      = "invalid"
	OutcomeUnauthorized = "unauthorized"
	OutcomeTooLarge     = "too_large"
	OutcomeRateLimited  = "rate_limited"
	OutcomeError        = "error"
)

// Metrics holds the bridge's Prometheus metrics, on a registry of its own.
type Metrics struct {
	Registry         *prometheus.Registry
	Webhooks         *prometheus.CounterVec
	WebhookDuration  *prometheus.HistogramVec // time to acknowledge a stored webhook (SPEC 3: p99 under 10 ms)
	RuleMatches      *prometheus.CounterVec
	RuleErrors       *prometheus.CounterVec
	Deliveries       *prometheus.CounterVec
	DeliveryDuration *prometheus.HistogramVec
	DeliveryAttempts *prometheus.HistogramVec
	ReloadSuccess    prometheus.Gauge
	ReloadTime       prometheus.Gauge
	Claimed          *prometheus.GaugeVec   // deliveries this process has claimed and not recorded
	LeaseTakeovers   *prometheus.CounterVec // claims this process took over from another whose lease ran out

	pending *pendingCollector
	reload  reloadState // the last (re)load, for the console
}

// webhookOutcomes are the values of bridge_webhooks_total's outcome label.
var webhookOutcomes = []string{OutcomeAccepted, OutcomeDuplicate, OutcomeInvalid, OutcomeUnauthorized, OutcomeTooLarge, OutcomeRateLimited, OutcomeError}

// deliveryOutcomes are the values of bridge_deliveries_total's outcome label.
var deliveryOutcomes = []string{"delivered", "retried", "failed"}

// webhookBuckets are bridge_webhook_duration_seconds' buckets: fine around
// the 10 ms p99 target (SPEC 3), up to the seconds a slow disk can take.
var webhookBuckets = []float64{0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// SetSources names the configured sources, so that every source × outcome
// of bridge_webhooks_total, and each source's webhook duration histogram,
// reads 0 before its first webhook instead of being absent (an alert on a
// rate of errors or 401s then works from the start).
func (m *Metrics) SetSources(names []string) {
	for _, n := range names {
		for _, o := range webhookOutcomes {
			m.Webhooks.WithLabelValues(n, o)
		}
		m.WebhookDuration.WithLabelValues(n)
	}
}

// ObserveAck records the time from start (when the webhook's request came
// in) to its acknowledgement, for source.
func (m *Metrics) ObserveAck(source string, start time.Time) {
	m.WebhookDuration.WithLabelValues(source).Observe(time.Since(start).Seconds())
}

// SetSinks names the configured sinks, so bridge_delivery_pending reads 0
// for a sink with nothing pending instead of being absent, and so does every
// sink × outcome of bridge_deliveries_total and the sink's histograms.
func (m *Metrics) SetSinks(names []string) {
	for _, n := range names { // so a zero shows
		m.Claimed.WithLabelValues(n)
		m.LeaseTakeovers.WithLabelValues(n)
		for _, o := range deliveryOutcomes {
			m.Deliveries.WithLabelValues(n, o)
		}
		m.DeliveryDuration.WithLabelValues(n)
		m.DeliveryAttempts.WithLabelValues(n)
	}
	if m.pending == nil {
		return
	}
	m.pending.mu.Lock()
	m.pending.names = append([]string(nil), names...)
	m.pending.mu.Unlock()
}

// NewMetrics registers the bridge's metrics. pending, when not nil, is
// asked at each scrape for the pending deliveries per sink.
func NewMetrics(pending func(ctx context.Context) (map[string]int, error)) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_webhooks_total", Help: "Webhook requests by source and outcome.",
		}, []string{"source", "outcome"}),
		WebhookDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bridge_webhook_duration_seconds", Help: "Time from a webhook's arrival to its acknowledgement (accepted or duplicate), by source.",
			Buckets: webhookBuckets,
		}, []string{"source"}),
		RuleMatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_rule_matches_total", Help: "New events a rule matched.",
		}, []string{"rule"}),
		RuleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_rule_errors_total", Help: "Rule evaluations that failed at run time.",
		}, []string{"rule"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_deliveries_total", Help: "Delivery attempts by sink and outcome (delivered, retried, failed).",
		}, []string{"sink", "outcome"}),
		DeliveryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bridge_delivery_duration_seconds", Help: "Time of one delivery attempt (a batch counts once).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"sink"}),
		DeliveryAttempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bridge_delivery_attempts", Help: "Attempts a delivery took until it was delivered or failed.",
			Buckets: []float64{1, 2, 3, 5, 8, 13, 21, 34},
		}, []string{"sink"}),
		ReloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bridge_config_last_reload_successful", Help: "1 if the last config (re)load succeeded, else 0.",
		}),
		ReloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bridge_config_last_reload_success_timestamp_seconds", Help: "When the config was last loaded successfully.",
		}),
		Claimed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bridge_deliveries_claimed", Help: "Deliveries this replica has claimed and is sending, by sink.",
		}, []string{"sink"}),
		LeaseTakeovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_lease_takeovers_total", Help: "Deliveries this replica took over from another whose lease ran out, by sink.",
		}, []string{"sink"}),
	}
	reg.MustRegister(m.Webhooks, m.WebhookDuration, m.RuleMatches, m.RuleErrors, m.Deliveries, m.DeliveryDuration, m.DeliveryAttempts,
		m.ReloadSuccess, m.ReloadTime, m.Claimed, m.LeaseTakeovers, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if pending != nil {
		m.CountPending(pending)
	}
	return m
}

// CountPending registers bridge_delivery_pending, read at each scrape from
// pending (the store's pending deliveries per sink), once the store is
// open. Call it once.
func (m *Metrics) CountPending(pending func(ctx context.Context) (map[string]int, error)) {
	m.pending = &pendingCollector{count: pending,
		desc: prometheus.NewDesc("bridge_delivery_pending", "Deliveries waiting to be delivered, by sink.", []string{"sink"}, nil)}
	m.Registry.MustRegister(m.pending)
}

// pendingCollector reads the pending counts from the store at scrape time.
type pendingCollector struct {
	count func(ctx context.Context) (map[string]int, error)
	desc  *prometheus.Desc

	mu    sync.Mutex
	names []string // configured sinks: reported as 0 when none pending
}

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	c.mu.Lock()
	for _, name := range c.names {
		if _, ok := counts[name]; !ok {
			counts[name] = 0
		}
	}
	c.mu.Unlock()
	for sink, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), sink)
	}
}
