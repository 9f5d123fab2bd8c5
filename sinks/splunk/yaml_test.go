package splunk

import (
	"testing"
	"time"

	"bridge/bridge"
	"bridge/sinks/internal/httpclient"
	"bridge/sinks/internal/sinktest"
	"bridge/sinks/internal/tlsconf"
)

func TestConfigFromYAML(t *testing.T) {
	src := `
url: https://splunk.example:8088
token: abc-123
index: security
sourcetype: bridge:event
host: bridge-01
batch_size: 200
batch_wait: 250ms
batch_bytes: 524288
tls: {ca_file: ca.pem, insecure_skip_verify: false}
`
	cfg := DefaultConfig()
	sinktest.DecodeConfig(t, src, cfg)
	want := Config{URL: "https://splunk.example:8088", Token: "abc-123", Index: "security", Sourcetype: "bridge:event",
		Host: "bridge-01", Format: "json", TLS: tlsconf.Config{CAFile: "ca.pem"}, Batching: httpclient.Batching{BatchSize: 200,
			BatchWait: bridge.Duration(250 * time.Millisecond), BatchBytes: 512 << 10}}
	if *cfg != want {
		t.Errorf("config = %+v\nwant %+v", *cfg, want)
	}
	if ps := bridge.CheckKeys(sinktest.YAMLNode(t, "{index: x, sourcetype: y, format: json}"), &Action{}); len(ps) > 0 {
		t.Errorf("action keys refused: %v", ps)
	}
}
