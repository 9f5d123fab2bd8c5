// Package pgtest gives tests a PostgreSQL database of their own, and a TCP
// proxy to cut the connection to it. The server comes from the environment
// variable BRIDGE_TEST_POSTGRES (a URL such as
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable, for a role that
// may create databases); without it the tests that need one are skipped.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the environment variable with the test server's URL.
const EnvVar = "BRIDGE_TEST_POSTGRES"

// TestDatabase creates an empty database for t (bridge_test_<random>) on
// the server of BRIDGE_TEST_POSTGRES and returns its URL; the database is
// dropped, even while connections remain, when t ends. It skips t when the
// variable is unset.
func TestDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvVar)
	if base == "" {
		t.Skip(EnvVar + " is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable): skipping the PostgreSQL tests")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL", EnvVar)
	}
	b := make([]byte, 8)
	rand.Read(b)
	name := "bridge_test_" + hex.EncodeToString(b)
	admin(t, base, "CREATE DATABASE "+name)
	t.Cleanup(func() { admin(t, base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u.Path = "/" + name
	return u.String()
}

// admin runs one statement on the server's base database.
func admin(t testing.TB, base, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The URL may carry pgxpool's settings, which a plain connection refuses.
	u, _ := url.Parse(base)
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("pgtest: connect to the %s server: %v", EnvVar, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// WithHost returns the URL rawURL with its host and port replaced by
// hostport (a Proxy's Addr).
func WithHost(t testing.TB, rawURL, hostport string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u.Host = hostport
	return u.String()
}

// Proxy forwards TCP connections from a local port to a target address.
// It can be cut (every connection dropped, new ones refused: a database
// that went down) or hung (nothing forwarded and nothing refused: a network
// that silently drops packets), and restored.
type Proxy struct {
	target string
	ln     net.Listener

	mu     sync.Mutex
	cut    bool
	hung   bool
	resume chan struct{} // closed by Restore after Hang
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

// NewProxy starts a proxy to target (host:port) on a free port of
// 127.0.0.1; it stops when t ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: proxy: %v", err)
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut drops every connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Hang stops forwarding: bytes in flight and new connections wait, neither
// delivered nor refused, until Restore or Cut.
func (p *Proxy) Hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.hung {
		p.hung = true
		p.resume = make(chan struct{})
	}
}

// Restore forwards again, new connections and, after Hang, the bytes that
// waited.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	if p.hung {
		p.hung = false
		close(p.resume)
	}
}

// wait returns once the proxy is not hung; false when it was cut meanwhile
// (or c closed).
func (p *Proxy) wait(c net.Conn) bool {
	for {
		p.mu.Lock()
		hung, cut, resume := p.hung, p.cut, p.resume
		_, open := p.conns[c]
		p.mu.Unlock()
		if cut || !open {
			return false
		}
		if !hung {
			return true
		}
		select {
		case <-resume:
		case <-time.After(50 * time.Millisecond): // to notice a Cut
		}
	}
}

// pipe copies src to dst, holding the bytes while the proxy is hung.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait(src) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(c)
		}()
	}
}

// track registers c as open, unless the proxy is cut.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) forget(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) forward(c net.Conn) {
	if !p.track(c) {
		c.Close()
		return
	}
	defer p.forget(c)
	if !p.wait(c) {
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.forget(up)
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done // either side ending ends both
}
