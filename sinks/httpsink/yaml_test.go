package httpsink

import (
	"testing"

	"bridge/sinks/internal/sinktest"
)

func TestConfigFromYAML(t *testing.T) {
	src := `
url: https://collector.example/ingest
headers: {Authorization: 'Bearer xyz', X-Tenant: acme}
batch: true
format: ndjson
tls: {ca_file: ca.pem}
`
	cfg := DefaultConfig()
	sinktest.DecodeConfig(t, src, cfg)
	if cfg.URL != "https://collector.example/ingest" || cfg.Headers["Authorization"].Value() != "Bearer xyz" ||
		cfg.Headers["X-Tenant"].Value() != "acme" || !cfg.Batch || cfg.Format != "ndjson" || cfg.TLS.CAFile != "ca.pem" ||
		cfg.BatchSize != DefaultBatchSize {
		t.Errorf("config = %+v", cfg)
	}
}
