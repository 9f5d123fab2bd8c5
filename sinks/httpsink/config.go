// Package httpsink is the http sink: it POSTs each event's JSON object to a
// URL, or with batching on, several in one request.
package httpsink

import (
	"errors"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"bridge/bridge"
	"bridge/sinks/internal/httpclient"
	"bridge/sinks/internal/tlsconf"
)

// Defaults of an http sink, in one place.
const (
	DefaultFormat     = FormatJSON
	DefaultBatchSize  = httpclient.DefaultBatchSize
	DefaultBatchWait  = httpclient.DefaultBatchWait
	DefaultBatchBytes = httpclient.DefaultBatchBytes

	// FormatJSON sends the event's JSON object, or with batch on a JSON
	// array of them (Content-Type application/json).
	FormatJSON = "json"
	// FormatNDJSON sends one JSON object per line, each ending in a newline
	// (Content-Type application/x-ndjson).
	FormatNDJSON = "ndjson"

	minBatchBytes = httpclient.MinBatchBytes
)

// headerName matches an HTTP header name (an RFC 9110 token).
var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// reserved reports whether the HTTP client sets header name itself.
func reserved(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Content-Length", "Host", "Transfer-Encoding", "Connection":
		return true
	}
	return false
}

// Config is an http sink's own config.
type Config struct {
	// URL is where events are POSTed.
	URL string `yaml:"url"`
	// Headers are sent with every request. Their values are treated as
	// secrets: they are never logged or shown in a dry run.
	Headers map[string]bridge.Secret `yaml:"headers"`
	// Format is json (default) or ndjson.
	Format string `yaml:"format"`
	// Batch sends several events per request: a JSON array, or with ndjson
	// several lines. Off, every event is its own request.
	Batch bool `yaml:"batch"`
	// Batching: batch_size, batch_wait and batch_bytes.
	httpclient.Batching `yaml:",inline"`
	// TLS says how to verify the server's certificate and, with a client
	// certificate, how the bridge proves who it is.
	TLS tlsconf.Config `yaml:"tls"`
}

// DefaultConfig returns a config with every default filled in.
func DefaultConfig() *Config {
	return &Config{
		Format:   DefaultFormat,
		Batching: httpclient.DefaultBatching(),
	}
}

// Validate reports every problem with the config, each pointing at its key.
func (c *Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, bridge.FieldError("url", "is required"))
	} else if err := httpclient.CheckURL(c.URL); err != nil {
		errs = append(errs, bridge.FieldError("url", err.Error()))
	}
	names := make([]string, 0, len(c.Headers))
	for k := range c.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		switch v := c.Headers[k].Value(); {
		case !headerName.MatchString(k):
			errs = append(errs, bridge.FieldErrorf("headers."+k, "%q is not a valid header name", k))
		case reserved(k):
			errs = append(errs, bridge.FieldErrorf("headers."+k, "%s is set by the bridge and cannot be configured", k))
		case strings.ContainsAny(v, "\r\n\x00"):
			errs = append(errs, bridge.FieldErrorf("headers."+k, "the value holds a line break or NUL"))
		}
	}
	if !validFormat(c.Format) {
		errs = append(errs, bridge.FieldErrorf("format", "%q is not a format of the http sink (json or ndjson)", c.Format))
	}
	errs = append(errs, c.Batching.Validate())
	errs = append(errs, c.TLS.Validate())
	return errors.Join(errs...)
}

func validFormat(f string) bool { return f == FormatJSON || f == FormatNDJSON }

// CheckFiles reads the TLS files (bridge.FileChecker): a missing CA bundle
// or client certificate is a validate problem at its key, not a sink that
// serve cannot build.
func (c *Config) CheckFiles(baseDir string) error { return c.TLS.CheckFiles(baseDir) }

// Action is what a rule may set on an http action. No field is required.
type Action struct {
	// Format overrides the sink's format: json or ndjson.
	Format string `yaml:"format" json:"format,omitempty"`
}

// Validate checks the action's format unless it is a template.
func (a *Action) Validate(bridge.SinkConfig) error {
	if a.Format != "" && !strings.Contains(a.Format, "{{") && !validFormat(a.Format) {
		return bridge.FieldErrorf("format", "%q is not a format of the http sink (json or ndjson)", a.Format)
	}
	return nil
}

// Type returns the http sink type, for the map of sink types.
func Type() bridge.SinkType {
	return bridge.NewSinkType(DefaultConfig, func() *Action { return &Action{} }, New)
}
