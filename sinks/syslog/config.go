package syslog

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"bridge/bridge"
	"bridge/sinks/internal/tlsconf"
)

// Networks, formats and defaults of the syslog sink.
const (
	NetworkUDP = "udp"
	NetworkTCP = "tcp"
	NetworkTLS = "tls"

	FormatJSON = "json"
	FormatCEF  = "cef"

	// DefaultNetwork is TCP: unlike UDP it tells the sender when a write
	// failed, and unlike TLS it needs no certificates to get started.
	DefaultNetwork = NetworkTCP
	// DefaultFacility is local0, the first facility reserved for local use.
	DefaultFacility = "local0"
	// DefaultUDPMaxMessageSize is the size every RFC 5424 receiver should
	// accept (RFC 5424 section 6.1, RFC 5426 section 3.2).
	DefaultUDPMaxMessageSize = 2048
	// MinMaxMessageSize is the size every receiver must accept.
	MinMaxMessageSize = 480
	// MaxUDPMessageSize is the largest UDP payload over IPv4.
	MaxUDPMessageSize = 65507
	// DefaultBatchSize is how many deliveries one batch write carries.
	DefaultBatchSize = 100
)

// Config is a syslog sink's own config: where the SIEM listens and how each
// message is framed and formatted.
type Config struct {
	// Network is udp, tcp or tls.
	Network string `yaml:"network"`
	// Address is the receiver's host:port.
	Address string `yaml:"address"`
	// Format is the MSG part: json (the event's JSON object) or cef.
	Format string `yaml:"format"`
	// Facility is a facility name (user, daemon, auth, local0 ... local7)
	// or its number (0..23).
	Facility string `yaml:"facility"`
	// Hostname is the HOSTNAME field; empty means the machine's host name.
	Hostname string `yaml:"hostname"`
	// MaxMessageSize cuts longer messages, in bytes, without breaking a
	// UTF-8 character. 0 means the default: 2048 for UDP, no limit for TCP
	// and TLS.
	MaxMessageSize int `yaml:"max_message_size"`
	// BOM starts MSG with the UTF-8 byte order mark, as RFC 5424 asks of a
	// MSG encoded in UTF-8. Off by default: MSG is then exactly the JSON
	// object or the CEF line, which is what JSON parsers (RFC 8259) and CEF
	// collectors expect at its first byte.
	BOM bool `yaml:"bom"`
	// BatchSize is how many deliveries one write may carry.
	BatchSize int `yaml:"batch_size"`
	// TLS configures network tls (RFC 5425): how to verify the receiver
	// and, with a client certificate, how the bridge proves who it is. An
	// empty server_name means the host part of the address.
	TLS tlsconf.Config `yaml:"tls"`
}

// NewConfig returns a config with the defaults filled in.
func NewConfig() *Config {
	return &Config{
		Network:   DefaultNetwork,
		Format:    FormatJSON,
		Facility:  DefaultFacility,
		BOM:       false,
		BatchSize: DefaultBatchSize,
	}
}

// Validate reports every problem with the config.
func (c *Config) Validate() error {
	var errs []error
	switch c.Network {
	case NetworkUDP, NetworkTCP, NetworkTLS:
	default:
		errs = append(errs, bridge.FieldErrorf("network", "%q is not a network (use udp, tcp or tls)", c.Network))
	}
	if c.Address == "" {
		errs = append(errs, bridge.FieldError("address", "is required (host:port of the syslog receiver)"))
	} else if err := checkAddress(c.Address); err != nil {
		errs = append(errs, bridge.FieldErrorf("address", "%v", err))
	}
	if err := checkFormat(c.Format); err != nil {
		errs = append(errs, bridge.FieldErrorf("format", "%v", err))
	}
	if _, err := ParseFacility(c.Facility); err != nil {
		errs = append(errs, bridge.FieldErrorf("facility", "%v", err))
	}
	if c.Hostname != "" {
		if err := checkPrintable(c.Hostname, 255); err != nil {
			errs = append(errs, bridge.FieldErrorf("hostname", "%v", err))
		}
	}
	switch {
	case c.MaxMessageSize < 0:
		errs = append(errs, bridge.FieldError("max_message_size", "must not be negative"))
	case c.MaxMessageSize > 0 && c.MaxMessageSize < MinMaxMessageSize:
		errs = append(errs, bridge.FieldErrorf("max_message_size", "must be at least %d bytes (RFC 5424 section 6.1)", MinMaxMessageSize))
	case c.Network == NetworkUDP && c.MaxMessageSize > MaxUDPMessageSize:
		errs = append(errs, bridge.FieldErrorf("max_message_size", "must be at most %d bytes over udp", MaxUDPMessageSize))
	}
	if c.BatchSize < 1 {
		errs = append(errs, bridge.FieldError("batch_size", "must be at least 1"))
	}
	if c.Network != NetworkTLS && !c.TLS.IsZero() {
		errs = append(errs, bridge.FieldError(tlsconf.Key, "is only used with network: tls"))
	}
	errs = append(errs, c.TLS.Validate())
	return errors.Join(errs...)
}

// CheckFiles reads the TLS files of network tls (bridge.FileChecker): a
// missing CA bundle or client certificate is a validate problem at its
// key, not a sink that serve cannot build.
func (c *Config) CheckFiles(baseDir string) error {
	if c.Network != NetworkTLS {
		return nil
	}
	return c.TLS.CheckFiles(baseDir)
}

// maxMessageSize is the configured size limit with its default applied; 0
// means no limit.
func (c *Config) maxMessageSize() int {
	if c.MaxMessageSize == 0 && c.Network == NetworkUDP {
		return DefaultUDPMaxMessageSize
	}
	return c.MaxMessageSize
}

// Action is a syslog action's fields: all optional.
type Action struct {
	// Format overrides the sink's format for this action: json or cef.
	Format string `yaml:"format" json:"format"`
}

// Validate checks the format, unless it is a template (checked after
// rendering, when the delivery is sent).
func (a *Action) Validate(cfg bridge.SinkConfig) error {
	if strings.Contains(a.Format, "{{") {
		return nil
	}
	if err := checkFormat(a.Format); err != nil {
		return bridge.FieldErrorf("format", "%v", err)
	}
	return nil
}

func checkFormat(f string) error {
	switch f {
	case "", FormatJSON, FormatCEF:
		return nil
	}
	return fmt.Errorf("%q is not a format (use json or cef)", f)
}

func checkAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		if _, lerr := net.LookupPort("tcp", port); lerr != nil {
			return fmt.Errorf("%q has no valid port", addr)
		}
	}
	return nil
}

// checkPrintable reports whether s is 1..max printable US-ASCII characters
// (33..126), as RFC 5424 asks of its header fields.
func checkPrintable(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("is longer than %d characters", max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return fmt.Errorf("%q may hold only printable ASCII characters without spaces", s)
		}
	}
	return nil
}

// ParseFacility reads a syslog facility: a name (kern, user, mail, daemon,
// auth, syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, security,
// console, solaris-cron, local0 ... local7) or a number 0..23.
func ParseFacility(s string) (int, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 23 {
			return 0, fmt.Errorf("facility %d is out of range (0..23)", n)
		}
		return n, nil
	}
	names := []string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
		"uucp", "cron", "authpriv", "ftp", "ntp", "security", "console", "solaris-cron"}
	for i, name := range names {
		if s == name {
			return i, nil
		}
	}
	if rest, ok := strings.CutPrefix(s, "local"); ok && len(rest) == 1 && rest[0] >= '0' && rest[0] <= '7' {
		return 16 + int(rest[0]-'0'), nil
	}
	return 0, fmt.Errorf("%q is not a facility (use a name such as user, daemon, local0 ... local7, or a number 0..23)", s)
}
