package syslog

import (
	"testing"

	"bridge/sinks/internal/sinktest"
	"bridge/sinks/internal/tlsconf"
)

// TestCheckFiles checks that the loader can find a TLS file the sink could
// not be built with (bridge.FileChecker), at its key, with network tls.
func TestCheckFiles(t *testing.T) {
	cfg := NewConfig()
	cfg.Network, cfg.Address, cfg.TLS = NetworkTLS, "siem.example:6514", tlsconf.Config{CAFile: "missing-ca.pem"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sinktest.CheckMissingCAFile(t, cfg, t.TempDir())
	cfg.Network, cfg.TLS = NetworkTCP, tlsconf.Config{}
	if err := cfg.CheckFiles(t.TempDir()); err != nil {
		t.Errorf("network tcp: CheckFiles = %v", err)
	}
}
