// Package splunk is the splunk_hec sink: it sends events to a Splunk HTTP
// Event Collector, many events per request.
package splunk

import (
	"errors"
	"net/url"
	"strings"

	"bridge/bridge"
	"bridge/sinks/internal/httpclient"
	"bridge/sinks/internal/tlsconf"
)

// Defaults of a splunk_hec sink, in one place.
const (
	DefaultSourcetype = "_json"
	DefaultBatchSize  = httpclient.DefaultBatchSize
	DefaultBatchWait  = httpclient.DefaultBatchWait
	DefaultBatchBytes = httpclient.DefaultBatchBytes
	DefaultFormat     = FormatJSON

	// FormatJSON sends the event's JSON object as the envelope's "event".
	FormatJSON = "json"

	// minBatchBytes bounds batch_bytes from below: one event must fit.
	minBatchBytes = httpclient.MinBatchBytes
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
	// TLS says how to verify the collector's certificate and, with a client
	// certificate, how the bridge proves who it is.
	TLS tlsconf.Config `yaml:"tls"`
	// Batching: batch_size, batch_wait and batch_bytes.
	httpclient.Batching `yaml:",inline"`
}

// DefaultConfig returns a config with every default filled in.
func DefaultConfig() *Config {
	return &Config{
		Sourcetype: DefaultSourcetype,
		Format:     DefaultFormat,
		Batching:   httpclient.DefaultBatching(),
	}
}

// Validate reports every problem with the config, each pointing at its key.
func (c *Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, bridge.FieldError("url", "is required (the collector's base URL, e.g. https://splunk.example:8088)"))
	} else if err := httpclient.CheckURL(c.URL); err != nil {
		errs = append(errs, bridge.FieldError("url", err.Error()))
	}
	if c.Token == "" {
		errs = append(errs, bridge.FieldError("token", "is required (the HEC token)"))
	}
	if c.Format != FormatJSON {
		errs = append(errs, bridge.FieldErrorf("format", "%q is not a format of splunk_hec (only json)", c.Format))
	}
	errs = append(errs, c.Batching.Validate())
	errs = append(errs, c.TLS.Validate())
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

// CheckFiles reads the TLS files (bridge.FileChecker): a missing CA bundle
// or client certificate is a validate problem at its key, not a sink that
// serve cannot build.
func (c *Config) CheckFiles(baseDir string) error { return c.TLS.CheckFiles(baseDir) }

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
	return bridge.NewSinkType(DefaultConfig, func() *Action { return &Action{} }, New)
}
