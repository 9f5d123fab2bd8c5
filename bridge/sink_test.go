package bridge

import (
	"errors"
	"strings"
	"testing"
)

type otherConfig struct{}

func (*otherConfig) Validate() error { return nil }

func TestNewSinkType(t *testing.T) {
	built := 0
	st := NewSinkType(func() *fakeConfig { return &fakeConfig{URL: "default"} }, func() *fakeAction { return &fakeAction{} },
		func(c *fakeConfig, _ SinkEnv) (*fakeSink, error) {
			built++
			if c.URL == "fail" {
				return nil, errors.New("cannot build")
			}
			return newFakeSink(), nil
		})
	if c, ok := st.NewConfig().(*fakeConfig); !ok || c.URL != "default" {
		t.Fatalf("NewConfig: %#v", st.NewConfig())
	}
	if _, ok := st.NewAction().(*fakeAction); !ok {
		t.Fatal("NewAction")
	}
	if s, err := st.New(&fakeConfig{URL: "x"}, SinkEnv{}); err != nil || s == nil {
		t.Fatalf("New: %v %v", s, err)
	}
	if s, err := st.New(&fakeConfig{URL: "fail"}, SinkEnv{}); err == nil || s != nil {
		t.Fatalf("a failed build must give a nil Sink and the error, got %#v %v", s, err)
	}
	if _, err := st.New(&otherConfig{}, SinkEnv{}); err == nil || !strings.Contains(err.Error(), "otherConfig") || built != 2 {
		t.Fatalf("wrong config type: %v (built %d)", err, built)
	}
}
