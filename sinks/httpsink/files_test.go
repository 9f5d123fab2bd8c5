package httpsink

import (
	"testing"

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
	sinktest.CheckMissingCAFile(t, cfg, t.TempDir())
	if err := DefaultConfig().CheckFiles(t.TempDir()); err != nil {
		t.Errorf("no tls section: CheckFiles = %v", err)
	}
}
