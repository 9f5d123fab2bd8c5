package httpsink

import (
	"testing"

	"gopkg.in/yaml.v3"

	"bridge/bridge"
)

func TestConfigFromYAML(t *testing.T) {
	src := `
url: https://collector.example/ingest
headers: {Authorization: 'Bearer xyz', X-Tenant: acme}
batch: true
format: ndjson
tls: {ca_file: ca.pem}
`
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
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
	if cfg.URL != "https://collector.example/ingest" || cfg.Headers["Authorization"].Value() != "Bearer xyz" ||
		cfg.Headers["X-Tenant"].Value() != "acme" || !cfg.Batch || cfg.Format != "ndjson" || cfg.TLS.CAFile != "ca.pem" ||
		cfg.BatchSize != DefaultBatchSize {
		t.Errorf("config = %+v", cfg)
	}
}
