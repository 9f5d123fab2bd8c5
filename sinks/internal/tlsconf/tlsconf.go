// Package tlsconf is the `tls:` section the network sinks share: which CAs
// to trust, which client certificate to present, which name to check, and
// the *tls.Config built from them.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"bridge/bridge"
)

// Key is the config key the section is found under in every sink; field
// errors are reported below it ("tls.ca_file").
const Key = "tls"

// Config is the `tls:` section of a sink: how to verify the peer and, with a
// client certificate, how the bridge proves who it is. Relative paths are
// relative to the config file's directory.
type Config struct {
	// CAFile is a PEM bundle of the CAs that may sign the peer's
	// certificate, trusted instead of the system's roots; empty means the
	// system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile is the client certificate, PEM, for peers that
	// authenticate the bridge; it goes with KeyFile.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the client certificate's private key, PEM.
	KeyFile string `yaml:"key_file"`
	// ServerName is the name the peer's certificate must carry; empty
	// means the host the sink connects to.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate. For tests only: a
	// warning is logged when it is on.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// IsZero reports whether the section is empty, so that Go's defaults apply.
func (c Config) IsZero() bool { return c == Config{} }

// Validate reports every problem with the section, each a bridge.FieldError
// at its key below Key ("tls.cert_file"). It does not read the files:
// CheckFiles does, at load time, and Build, when the sink is created.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.CertFile != "" && c.KeyFile == "":
		errs = append(errs, bridge.FieldError(Key+".cert_file",
			"is set but key_file is not: cert_file and key_file go together, set both or neither"))
	case c.CertFile == "" && c.KeyFile != "":
		errs = append(errs, bridge.FieldError(Key+".cert_file",
			"is empty but key_file is set: cert_file and key_file go together, set both or neither"))
	}
	return errors.Join(errs...)
}

// CheckFiles reads the files the section names, relative paths resolved
// against baseDir (the config file's directory), as Build will, and reports
// each one that is missing, unreadable or not PEM as a bridge.FieldError at
// its key, so that `validate` finds what would stop the sink from being
// built. It reads nothing when Validate fails (set both or neither says it).
func (c Config) CheckFiles(baseDir string) error {
	if c.IsZero() || c.Validate() != nil {
		return nil
	}
	var errs []error
	if c.CAFile != "" {
		path := bridge.ResolvePath(baseDir, c.CAFile)
		pem, err := os.ReadFile(path)
		switch {
		case err != nil:
			errs = append(errs, bridge.FieldErrorf(Key+".ca_file", "cannot read %s: %v", path, pathErr(err)))
		case !x509.NewCertPool().AppendCertsFromPEM(pem):
			errs = append(errs, bridge.FieldErrorf(Key+".ca_file", "%s holds no PEM certificate", path))
		}
	}
	if c.CertFile != "" {
		cert, key := bridge.ResolvePath(baseDir, c.CertFile), bridge.ResolvePath(baseDir, c.KeyFile)
		readable := true
		for _, f := range []struct{ key, path string }{{"cert_file", cert}, {"key_file", key}} {
			if _, err := os.ReadFile(f.path); err != nil {
				errs = append(errs, bridge.FieldErrorf(Key+"."+f.key, "cannot read %s: %v", f.path, pathErr(err)))
				readable = false
			}
		}
		if readable {
			if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
				errs = append(errs, bridge.FieldErrorf(Key+".cert_file", "%s and %s are not a PEM certificate and its private key: %v", cert, key, err))
			}
		}
	}
	return errors.Join(errs...)
}

// pathErr is the reason of a file error without the path it repeats.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Build returns the client TLS config the section describes, with TLS 1.2
// at the least. It reads the CA bundle and the client certificate now,
// resolving relative paths with env.Path, so that a missing or broken file
// stops the sink from being created rather than failing every delivery.
// ServerName is left empty when not configured: the dialer or the HTTP
// transport fills in the host it connects to. With insecure_skip_verify on,
// a warning is logged on env.Logger, prefixed with sink (the sink type, as
// its other log lines are) and carrying peer (an address or a redacted URL).
func (c Config) Build(env bridge.SinkEnv, sink string, peer slog.Attr) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // the operator asked for it, and is warned
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(env.Path(c.CAFile))
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", Key, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.ca_file: %s holds no PEM certificate", Key, c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(env.Path(c.CertFile), env.Path(c.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("%s.cert_file and %s.key_file: %w", Key, Key, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if c.InsecureSkipVerify && env.Logger != nil {
		env.Logger.Warn(sink+": TLS certificate verification is off (tls.insecure_skip_verify): "+
			"anyone on the path can read and change what is sent, credentials included", peer)
	}
	return tc, nil
}
