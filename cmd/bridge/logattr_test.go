package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"bridge/bridge"
)

// TestDurationsAsText checks that the JSON handler with durationsAsText
// writes durations as text, in groups too, and leaves other values alone.
func TestDurationsAsText(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: durationsAsText}))
	log.Info("m", "grace", 10*time.Second, "retry", bridge.Duration(1500*time.Millisecond),
		slog.Group("g", "wait", 250*time.Microsecond), "n", 5, "s", "x")
	for _, want := range []string{`"grace":"10s"`, `"retry":"1.5s"`, `"g":{"wait":"250µs"}`, `"n":5`, `"s":"x"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log line lacks %s: %s", want, buf.String())
		}
	}
}
