// Package splunk is the splunk_hec sink: it sends events to a Splunk HTTP
// Event Collector, many events per request.
package splunk

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"bridge/bridge"
)

// Defaults of a splunk_hec sink, in one place.
const (
	DefaultSourcetype = "_json"
	DefaultBatchSize  = 500
	DefaultBatchWait  = 500 * time.Millisecond
	DefaultBatchBytes = 1 << 20
	DefaultFormat     = FormatJSON

	// FormatJSON sends the event's JSON object as the envelope's "event".
	FormatJSON = "json"

	// maxBatchSize bounds batch_size: beyond it a batch only adds latency.
	maxBatchSize = 10000
	// minBatchBytes bounds batch_bytes from below: one event must fit.
	minBatchBytes = 4 << 10
)

// Config is a splunk_hec sink's own config: where the collector is, the HEC
// token, the envelope's metadata and how events are batched.
type Config struct {
	// URL is the collector's base URL (https://splunk.example:8088); events
	// go to {url}/services/collector/event. A URL whose path already names
	// a collector endpoint (/services/collector...) is used as given.
	URL string `yaml:"url"`
	// Token is the HEC token, sent as "Authorization: Splunk <token>".
	Token bridge.Secret `yaml:"token"`
	// Index is the envelope's index; empty leaves it to the token's default.
	Index string `yaml:"index"`
	// Sourcetype is the envelope's sourcetype (default _json).
	Sourcetype string `yaml:"sourcetype"`
	// Host is the envelope's host; empty sends this machine's host name.
	Host string `yaml:"host"`
	// Format is what the envelope's event carries; only json (the event's
	// JSON object) today.
	Format string `yaml:"format"`
	// TLS says how to verify the collector's certificate.
	TLS TLSConfig `yaml:"tls"`
	// BatchSize is the most events one batch carries (default 500).
	BatchSize int `yaml:"batch_size"`
	// BatchWait is how long the pipeline may wait for a batch to fill
	// (default 500ms).
	BatchWait bridge.Duration `yaml:"batch_wait"`
	// BatchBytes is the largest request body; a larger batch is split into
	// several requests (default 1 MiB).
	BatchBytes int `yaml:"batch_bytes"`
}

// DefaultConfig returns a config with every default filled in.
func DefaultConfig() *Config {
	return &Config{
		Sourcetype: DefaultSourcetype,
		Format:     DefaultFormat,
		BatchSize:  DefaultBatchSize,
		BatchWait:  bridge.Duration(DefaultBatchWait),
		BatchBytes: DefaultBatchBytes,
	}
}

// Validate reports every problem with the config, each pointing at its key.
func (c *Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, bridge.FieldError("url", "is required (the collector's base URL, e.g. https://splunk.example:8088)"))
	} else if err := checkURL(c.URL); err != nil {
		errs = append(errs, bridge.FieldError("url", err.Error()))
	}
	if c.Token == "" {
		errs = append(errs, bridge.FieldError("token", "is required (the HEC token)"))
	}
	if c.Format != FormatJSON {
		errs = append(errs, bridge.FieldErrorf("format", "%q is not a format of splunk_hec (only json)", c.Format))
	}
	if c.BatchSize < 1 || c.BatchSize > maxBatchSize {
		errs = append(errs, bridge.FieldErrorf("batch_size", "must be between 1 and %d", maxBatchSize))
	}
	if c.BatchBytes < minBatchBytes {
		errs = append(errs, bridge.FieldErrorf("batch_bytes", "must be at least %d", minBatchBytes))
	}
	errs = append(errs, c.TLS.validate("tls")...)
	return errors.Join(errs...)
}

// endpoint returns the URL events are posted to.
func (c *Config) endpoint() string {
	u, err := url.Parse(c.URL)
	if err != nil {
		return c.URL
	}
	if strings.Contains(u.Path, "/services/collector") {
		return u.String()
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/services/collector/event"
	u.RawPath = ""
	return u.String()
}

// checkURL checks that s is an absolute http or https URL.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("is not a URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("must start with https:// or http://")
	}
	if u.Host == "" {
		return fmt.Errorf("has no host")
	}
	return nil
}

// Action is what a rule may set on a splunk_hec action. No field is
// required; each overrides the sink's setting for that action's events.
type Action struct {
	// Index overrides the sink's index.
	Index string `yaml:"index" json:"index,omitempty"`
	// Sourcetype overrides the sink's sourcetype.
	Sourcetype string `yaml:"sourcetype" json:"sourcetype,omitempty"`
	// Format overrides the sink's format (only json today).
	Format string `yaml:"format" json:"format,omitempty"`
}

// Validate checks the action's format unless it is a template.
func (a *Action) Validate(bridge.SinkConfig) error {
	if a.Format != "" && !isTemplate(a.Format) && a.Format != FormatJSON {
		return bridge.FieldErrorf("format", "%q is not a format of splunk_hec (only json)", a.Format)
	}
	return nil
}

func isTemplate(s string) bool { return strings.Contains(s, "{{") }

// Type returns the splunk_hec sink type, for the map of sink types.
func Type() bridge.SinkType {
	return bridge.SinkType{
		NewConfig: func() bridge.SinkConfig { return DefaultConfig() },
		NewAction: func() bridge.Action { return &Action{} },
		New: func(cfg bridge.SinkConfig, env bridge.SinkEnv) (bridge.Sink, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("splunk_hec: config is %T, not *splunk.Config", cfg)
			}
			return New(c, env)
		},
	}
}

// TLSConfig is the `tls:` section: how to verify the collector and, with a
// client certificate, how to prove who the bridge is. Relative paths are
// relative to the config file.
type TLSConfig struct {
	// CAFile is a PEM bundle of the CAs to trust instead of the system's.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate and its key, PEM.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name the certificate must carry.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify turns certificate checks off (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

func (t TLSConfig) validate(prefix string) []error {
	var errs []error
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, bridge.FieldError(prefix+".cert_file", "cert_file and key_file go together: set both or neither"))
	}
	return errs
}

// build returns the tls.Config the options describe, or nil for Go's
// defaults. Relative paths are resolved with path.
func (t TLSConfig) build(path func(string) string) (*tls.Config, error) {
	if t == (TLSConfig{}) {
		return nil, nil
	}
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // the operator asked for it, and is warned
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(path(t.CAFile))
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(path(t.CertFile), path(t.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
