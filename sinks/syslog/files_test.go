package syslog

import (
	"strings"
	"testing"

	"bridge/bridge"
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
	var fc bridge.FileChecker = cfg
	field, msg, ok := bridge.AsFieldError(fc.CheckFiles(t.TempDir()))
	if !ok || field != "tls.ca_file" || !strings.Contains(msg, "missing-ca.pem: no such file or directory") {
		t.Errorf("CheckFiles = %q %q, want tls.ca_file: cannot read .../missing-ca.pem", field, msg)
	}
	cfg.Network, cfg.TLS = NetworkTCP, tlsconf.Config{}
	if err := cfg.CheckFiles(t.TempDir()); err != nil {
		t.Errorf("network tcp: CheckFiles = %v", err)
	}
}
