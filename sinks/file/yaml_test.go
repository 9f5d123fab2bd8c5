package file

import (
	"testing"
	"time"

	"bridge/bridge"
	"bridge/sinks/internal/sinktest"
)

func TestConfigFromYAML(t *testing.T) {
	cfg := DefaultConfig()
	sinktest.DecodeConfig(t, "path: data/events.jsonl\nbatch_size: 50\nsync_interval: 5ms\n", cfg)
	if *cfg != (Config{Path: "data/events.jsonl", Format: "json", BatchSize: 50, SyncInterval: bridge.Duration(5 * time.Millisecond)}) {
		t.Errorf("config = %+v", cfg)
	}
}
