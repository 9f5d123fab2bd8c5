package file

import (
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"bridge/bridge"
)

func TestConfigFromYAML(t *testing.T) {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("path: data/events.jsonl\nbatch_size: 50\nsync_interval: 5ms\n"), &n); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if ps := bridge.CheckKeys(&n, cfg); len(ps) > 0 {
		t.Fatalf("unknown keys: %v", ps)
	}
	if err := n.Decode(cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if *cfg != (Config{Path: "data/events.jsonl", Format: "json", BatchSize: 50, SyncInterval: bridge.Duration(5 * time.Millisecond)}) {
		t.Errorf("config = %+v", cfg)
	}
}
