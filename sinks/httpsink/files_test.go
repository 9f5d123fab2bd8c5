package httpsink

import (
	"strings"
	"testing"

	"bridge/bridge"
	"bridge/sinks/internal/sinktest"
)

// TestCheckFiles checks that the loader can find a TLS file the sink could
// not be built with (bridge.FileChecker), at its key.
func TestCheckFiles(t *testing.T) {
	cfg := DefaultConfig()
	sinktest.DecodeConfig(t, `
url: https://collector.example/ingest
tls: {ca_file: missing-ca.pem}
`, cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var fc bridge.FileChecker = cfg
	field, msg, ok := bridge.AsFieldError(fc.CheckFiles(t.TempDir()))
	if !ok || field != "tls.ca_file" || !strings.Contains(msg, "missing-ca.pem: no such file or directory") {
		t.Errorf("CheckFiles = %q %q, want tls.ca_file: cannot read .../missing-ca.pem", field, msg)
	}
	if err := DefaultConfig().CheckFiles(t.TempDir()); err != nil {
		t.Errorf("no tls section: CheckFiles = %v", err)
	}
}
