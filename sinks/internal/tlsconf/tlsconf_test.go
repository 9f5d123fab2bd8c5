package tlsconf_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bridge/bridge"
	"bridge/sinks/internal/sinktest"
	"bridge/sinks/internal/tlsconf"
	"bridge/sinks/syslog/syslogfake"
)

// pki is a CA, a server certificate for siem.test and a client certificate,
// written as files in dir: ca.pem, server-{cert,key}.pem, client-{cert,key}.pem.
type pki struct {
	dir    string
	ca     *syslogfake.CA
	server *syslogfake.Issued
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	var err error
	if p.ca, err = syslogfake.NewCA("bridge test CA"); err != nil {
		t.Fatal(err)
	}
	if p.server, err = p.ca.Issue("siem", []string{"siem.test"}, false); err != nil {
		t.Fatal(err)
	}
	client, err := p.ca.Issue("bridge", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.server.WriteFiles(p.dir, "server-"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := client.WriteFiles(p.dir, "client-"); err != nil {
		t.Fatal(err)
	}
	p.write(t, "ca.pem", p.ca.PEM)
	p.write(t, "bad.pem", []byte("not pem"))
	return p
}

func (p *pki) write(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// serve accepts TLS connections that present a client certificate signed
// by the CA, completes each handshake and closes it.
func (p *pki) serve(t *testing.T) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{p.server.TLS},
		ClientCAs:    p.ca.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  tlsconf.Config
		want string // a part of the message at tls.cert_file; "" for none
	}{
		{name: "empty", cfg: tlsconf.Config{}},
		{name: "all set", cfg: tlsconf.Config{CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem", ServerName: "siem", InsecureSkipVerify: true}},
		{name: "cert without key", cfg: tlsconf.Config{CertFile: "c.pem"}, want: "is set but key_file is not"},
		{name: "key without cert", cfg: tlsconf.Config{KeyFile: "k.pem"}, want: "is empty but key_file is set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			field, msg, ok := bridge.AsFieldError(err)
			if !ok || field != "tls.cert_file" || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "set both or neither") {
				t.Errorf("Validate = %v, want a field error at tls.cert_file saying %q", err, tc.want)
			}
			if n := len(bridge.SplitErrors(err)); n != 1 {
				t.Errorf("Validate = %v, want one problem", err)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	p := newPKI(t)
	env := bridge.SinkEnv{BaseDir: p.dir}
	peer := slog.String("address", "siem.test:6514")

	t.Run("defaults", func(t *testing.T) {
		tc, err := tlsconf.Config{}.Build(env, "test", peer)
		if err != nil {
			t.Fatal(err)
		}
		if tc.MinVersion != tls.VersionTLS12 || tc.RootCAs != nil || len(tc.Certificates) != 0 || tc.ServerName != "" || tc.InsecureSkipVerify {
			t.Errorf("config = %+v", tc)
		}
	})
	t.Run("files", func(t *testing.T) {
		// Relative paths are relative to the config file's directory;
		// absolute ones are used as they are.
		c := tlsconf.Config{CAFile: "ca.pem", CertFile: filepath.Join(p.dir, "client-cert.pem"), KeyFile: "client-key.pem"}
		tc, err := c.Build(env, "test", peer)
		if err != nil {
			t.Fatal(err)
		}
		if tc.RootCAs == nil || !tc.RootCAs.Equal(p.ca.Pool()) {
			t.Error("RootCAs is not the CA of ca_file")
		}
		if len(tc.Certificates) != 1 {
			t.Error("client certificate not loaded")
		}
	})
	for _, tc := range []struct {
		name  string
		cfg   tlsconf.Config
		want  string
		isErr error
	}{
		{name: "missing ca file", cfg: tlsconf.Config{CAFile: "nope.pem"}, want: "tls.ca_file: open ", isErr: fs.ErrNotExist},
		{name: "ca file not pem", cfg: tlsconf.Config{CAFile: "bad.pem"}, want: "tls.ca_file: bad.pem holds no PEM certificate"},
		{name: "missing cert file", cfg: tlsconf.Config{CertFile: "nope.pem", KeyFile: "client-key.pem"}, want: "tls.cert_file and tls.key_file: ", isErr: fs.ErrNotExist},
		{name: "key not pem", cfg: tlsconf.Config{CertFile: "client-cert.pem", KeyFile: "bad.pem"}, want: "tls.cert_file and tls.key_file: "},
		{name: "key of another certificate", cfg: tlsconf.Config{CertFile: "client-cert.pem", KeyFile: "server-key.pem"}, want: "tls.cert_file and tls.key_file: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.Build(env, "test", peer)
			if err == nil || got != nil {
				t.Fatalf("Build = %v, %v; want an error", got, err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("err = %q, want it to start with %q", err, tc.want)
			}
			if tc.isErr != nil && !errors.Is(err, tc.isErr) {
				t.Errorf("err = %v, want it to wrap %v", err, tc.isErr)
			}
		})
	}
}

// TestCheckFiles checks that every file Build would fail on is found at
// load time, at its key, with relative paths resolved as Build resolves
// them; and that CheckFiles agrees with Build on the good ones.
func TestCheckFiles(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		name string
		cfg  tlsconf.Config
		want []string // "field: part of the message"
	}{
		{name: "empty", cfg: tlsconf.Config{}},
		{name: "good, relative and absolute", cfg: tlsconf.Config{CAFile: "ca.pem", CertFile: filepath.Join(p.dir, "client-cert.pem"), KeyFile: "client-key.pem"}},
		{name: "missing ca file", cfg: tlsconf.Config{CAFile: "nope.pem"}, want: []string{"tls.ca_file: cannot read " + filepath.Join(p.dir, "nope.pem") + ": no such file or directory"}},
		{name: "ca file not pem", cfg: tlsconf.Config{CAFile: "bad.pem"}, want: []string{"tls.ca_file: " + filepath.Join(p.dir, "bad.pem") + " holds no PEM certificate"}},
		{name: "missing cert and key", cfg: tlsconf.Config{CertFile: "nope.pem", KeyFile: "gone.pem"}, want: []string{
			"tls.cert_file: cannot read " + filepath.Join(p.dir, "nope.pem"), "tls.key_file: cannot read " + filepath.Join(p.dir, "gone.pem")}},
		{name: "key of another certificate", cfg: tlsconf.Config{CertFile: "client-cert.pem", KeyFile: "server-key.pem"}, want: []string{"tls.cert_file: ", "are not a PEM certificate and its private key"}},
		{name: "everything missing", cfg: tlsconf.Config{CAFile: "a.pem", CertFile: "b.pem", KeyFile: "c.pem"}, want: []string{"tls.ca_file: ", "tls.cert_file: ", "tls.key_file: "}},
		{name: "invalid: Validate says it, no file is read", cfg: tlsconf.Config{CertFile: "nope.pem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.CheckFiles(p.dir)
			var got []string
			for _, e := range bridge.SplitErrors(err) {
				field, msg, ok := bridge.AsFieldError(e)
				if !ok {
					t.Errorf("%v is not a field error", e)
				}
				got = append(got, field+": "+msg)
			}
			all := strings.Join(got, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("CheckFiles = %q, want a problem containing %q", all, w)
				}
			}
			if len(tc.want) == 0 && err != nil {
				t.Errorf("CheckFiles = %v, want nil", err)
			}
			if tc.cfg.Validate() == nil {
				if _, berr := tc.cfg.Build(bridge.SinkEnv{BaseDir: p.dir}, "test", slog.String("address", "x")); (berr == nil) != (err == nil) {
					t.Errorf("CheckFiles = %v, but Build = %v: they must agree", err, berr)
				}
			}
		})
	}
}

// TestHandshake dials a server whose certificate names siem.test, at
// 127.0.0.1, with the config Build returns.
func TestHandshake(t *testing.T) {
	p := newPKI(t)
	addr := p.serve(t)
	env := bridge.SinkEnv{BaseDir: p.dir}
	full := tlsconf.Config{CAFile: "ca.pem", CertFile: "client-cert.pem", KeyFile: "client-key.pem", ServerName: "siem.test"}
	for _, tc := range []struct {
		name string
		edit func(*tlsconf.Config)
		ok   bool
		want any // the error expected, for errors.As
	}{
		{name: "server_name", edit: func(*tlsconf.Config) {}, ok: true},
		{name: "no server_name", edit: func(c *tlsconf.Config) { c.ServerName = "" }, want: &x509.HostnameError{}},
		{name: "wrong server_name", edit: func(c *tlsconf.Config) { c.ServerName = "other.test" }, want: &x509.HostnameError{}},
		{name: "system roots", edit: func(c *tlsconf.Config) { c.CAFile = "" }, want: &x509.UnknownAuthorityError{}},
		{name: "insecure", edit: func(c *tlsconf.Config) { c.CAFile, c.ServerName, c.InsecureSkipVerify = "", "", true }, ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := full
			tc.edit(&c)
			cfg, err := c.Build(env, "test", slog.String("address", addr))
			if err != nil {
				t.Fatal(err)
			}
			d := &tls.Dialer{Config: cfg}
			conn, err := d.DialContext(t.Context(), "tcp", addr)
			if err == nil {
				conn.Close()
			}
			if tc.ok != (err == nil) {
				t.Fatalf("dial: err = %v, want success %v", err, tc.ok)
			}
			if tc.want != nil && !errors.As(err, tc.want) {
				t.Errorf("dial: err = %v, want %T", err, tc.want)
			}
		})
	}
}

func TestInsecureWarns(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		var buf bytes.Buffer
		env := bridge.SinkEnv{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
		tc, err := tlsconf.Config{InsecureSkipVerify: insecure}.Build(env, "splunk_hec", slog.String("url", "https://splunk.example:8088"))
		if err != nil {
			t.Fatal(err)
		}
		if tc.InsecureSkipVerify != insecure {
			t.Errorf("InsecureSkipVerify = %v, want %v", tc.InsecureSkipVerify, insecure)
		}
		log := buf.String()
		if !insecure {
			if log != "" {
				t.Errorf("logged with verification on: %s", log)
			}
			continue
		}
		for _, want := range []string{"level=WARN", "splunk_hec: ", "tls.insecure_skip_verify", "url=https://splunk.example:8088"} {
			if !strings.Contains(log, want) {
				t.Errorf("log %q lacks %q", log, want)
			}
		}
	}
	// Without a logger the warning has nowhere to go, and Build still works.
	if _, err := (tlsconf.Config{InsecureSkipVerify: true}).Build(bridge.SinkEnv{}, "http", slog.String("url", "x")); err != nil {
		t.Fatal(err)
	}
}

func TestKeys(t *testing.T) {
	n := sinktest.YAMLNode(t, "{ca_file: ca.pem, cert_file: c.pem, key_file: k.pem, server_name: siem, insecure_skip_verify: true}")
	if ps := bridge.CheckKeys(n, &tlsconf.Config{}); len(ps) > 0 {
		t.Fatalf("keys refused: %v", ps)
	}
	var c tlsconf.Config
	if err := n.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := tlsconf.Config{CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem", ServerName: "siem", InsecureSkipVerify: true}
	if c != want {
		t.Errorf("decoded %+v, want %+v", c, want)
	}
	if c.IsZero() || !(tlsconf.Config{}).IsZero() {
		t.Error("IsZero is wrong")
	}
}
