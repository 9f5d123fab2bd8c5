package bridge

import (
	"context"
	"errors"
	"sync"
	"time"
)

// fakeConfig is the config of the fake sink type used in this package's tests.
type fakeConfig struct {
	URL   string `yaml:"url"`
	Token Secret `yaml:"token"`
	TLS   struct {
		CAFile string `yaml:"ca_file"`
	} `yaml:"tls"`
}

func (c *fakeConfig) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, FieldError("url", "is required"))
	}
	if c.TLS.CAFile == "missing.pem" {
		errs = append(errs, FieldError("tls.ca_file", "cannot read missing.pem"))
	}
	return errors.Join(errs...)
}

type fakeAction struct {
	Text string `yaml:"text" json:"text"`
}

func (a *fakeAction) Validate(SinkConfig) error { return nil }

func fakeTypes() map[string]SinkType {
	return map[string]SinkType{"fake": {
		NewConfig: func() SinkConfig { return &fakeConfig{} },
		NewAction: func() Action { return &fakeAction{} },
		New:       func(SinkConfig, SinkEnv) (Sink, error) { return newFakeSink(), nil },
	}}
}

// fakeSink records deliveries and answers with scripted errors.
type fakeSink struct {
	mu      sync.Mutex
	got     []*Delivery
	script  []error // errors for the next attempts, in order; nil entries succeed
	hang    bool    // block until the context ends
	closed  bool
	results map[int64]int // attempts per delivery id
	sent    chan int64
}

func newFakeSink() *fakeSink {
	return &fakeSink{results: map[int64]int{}, sent: make(chan int64, 10000)}
}

func (s *fakeSink) Send(ctx context.Context, d *Delivery) (string, error) {
	s.mu.Lock()
	s.results[d.ID]++
	hang := s.hang
	var err error
	if len(s.script) > 0 {
		err, s.script = s.script[0], s.script[1:]
	}
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return "", ctx.Err()
	}
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.got = append(s.got, d)
	s.mu.Unlock()
	s.sent <- d.ID
	return "ok-" + d.Event.ID, nil
}

func (s *fakeSink) Close(context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func (s *fakeSink) delivered() []*Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Delivery(nil), s.got...)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
