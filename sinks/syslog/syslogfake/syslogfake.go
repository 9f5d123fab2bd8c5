// Package syslogfake is a syslog receiver for tests. It listens on UDP, TCP
// or TLS, parses what it receives with go-syslog's strict RFC 5424 parser
// (octet-counted frames, RFC 6587 and RFC 5425, on TCP and TLS) and records
// every message, and it can drop connections the way a restarting SIEM does.
package syslogfake

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

// maxMessage is the largest message the receiver parses.
const maxMessage = 1 << 20

// Message is one message received.
type Message struct {
	*rfc5424.SyslogMessage
	// Conn numbers the connection it came on, from 1 (0 over UDP).
	Conn int
	// Raw is the datagram as received (UDP only).
	Raw []byte
}

// Server is a running receiver. Its methods are safe for concurrent use.
type Server struct {
	network string
	ln      net.Listener   // tcp, tls
	pc      net.PacketConn // udp
	tls     *tls.Config
	wg      sync.WaitGroup

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced whenever something is recorded
	msgs      []Message
	errs      []error
	streams   map[int]*recorder // raw bytes per connection
	conns     map[int]net.Conn
	nconns    int
	clients   []string // client certificate subjects (TLS)
	dropEvery int
	closed    bool
}

// Start starts a receiver on 127.0.0.1 on a free port. network is udp, tcp
// or tls; tls needs tlsConfig (with Certificates, and ClientAuth and
// ClientCAs to require client certificates).
func Start(network string, tlsConfig *tls.Config) (*Server, error) {
	s := &Server{network: network, tls: tlsConfig, changed: make(chan struct{}),
		streams: map[int]*recorder{}, conns: map[int]net.Conn{}}
	var err error
	switch network {
	case "udp":
		if s.pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("syslogfake: listen: %w", err)
		}
		s.wg.Add(1)
		go s.serveUDP()
	case "tcp", "tls":
		if network == "tls" && tlsConfig == nil {
			return nil, errors.New("syslogfake: tls needs a tls.Config")
		}
		if s.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("syslogfake: listen: %w", err)
		}
		s.wg.Add(1)
		go s.serveStream()
	default:
		return nil, fmt.Errorf("syslogfake: %q is not a network (udp, tcp or tls)", network)
	}
	return s, nil
}

// Addr returns the host:port the receiver listens on.
func (s *Server) Addr() string {
	if s.pc != nil {
		return s.pc.LocalAddr().String()
	}
	return s.ln.Addr().String()
}

// Messages returns every message received so far, in order of arrival.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Errors returns the parse errors met so far (a stream stops at its first).
func (s *Server) Errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

// Connections returns how many connections were accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nconns
}

// Stream returns the bytes received on connection n (from 1), as sent.
func (s *Server) Stream(n int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.streams[n]; r != nil {
		return r.bytes()
	}
	return nil
}

// ClientCertificates returns the subject of every client certificate
// presented, one per TLS connection that had one.
func (s *Server) ClientCertificates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.clients...)
}

// DropEvery makes the receiver close each connection after n messages on
// it (0: never). It closes the way a receiver that shuts down cleanly does:
// it stops sending (a FIN, or TLS's close_notify) and keeps reading what the
// sender had already sent until the sender closes its side.
func (s *Server) DropEvery(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropEvery = n
}

// CloseConnections closes every open connection at once, without reading
// what may still be in flight.
func (s *Server) CloseConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// Wait waits until at least n messages were received, or ctx ends.
func (s *Server) Wait(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, ch := len(s.msgs), s.changed
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("syslogfake: %d of %d messages received: %w", got, n, ctx.Err())
		}
	}
}

// Close stops the receiver and waits for its goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	var err error
	if s.pc != nil {
		err = s.pc.Close()
	} else {
		err = s.ln.Close()
	}
	s.wg.Wait()
	return err
}

// record adds a message or an error; the caller holds mu.
func (s *Server) record(m *Message, err error) {
	if m != nil {
		s.msgs = append(s.msgs, *m)
	}
	if err != nil {
		s.errs = append(s.errs, err)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	parser := rfc5424.NewParser(rfc5424.WithCompliantMsg())
	buf := make([]byte, 65536)
	for {
		n, _, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		raw := append([]byte(nil), buf[:n]...)
		msg, err := parser.Parse(raw)
		s.mu.Lock()
		if err != nil {
			s.record(nil, fmt.Errorf("syslogfake: datagram %q: %w", raw, err))
		} else {
			s.record(&Message{SyslogMessage: msg.(*rfc5424.SyslogMessage), Raw: raw}, nil)
		}
		s.mu.Unlock()
	}
}

func (s *Server) serveStream() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.nconns++
		id := s.nconns
		s.conns[id] = c
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serveConn(id, c)
	}
}

// serveConn parses one connection's frames until the sender closes it.
func (s *Server) serveConn(id int, c net.Conn) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, id)
		s.mu.Unlock()
	}()
	var stop func() error // half-closes the connection
	if tc, ok := c.(*net.TCPConn); ok {
		stop = tc.CloseWrite
	}
	if s.network == "tls" {
		tc := tls.Server(c, s.tls)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			s.mu.Lock()
			s.record(nil, fmt.Errorf("syslogfake: tls handshake: %w", err))
			s.mu.Unlock()
			return
		}
		c.SetDeadline(time.Time{})
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			s.mu.Lock()
			s.clients = append(s.clients, certs[0].Subject.String())
			s.mu.Unlock()
		}
		s.mu.Lock()
		s.conns[id] = tc
		s.mu.Unlock()
		c, stop = tc, tc.CloseWrite
	}
	rec := &recorder{}
	s.mu.Lock()
	s.streams[id] = rec
	s.mu.Unlock()

	count, dropping := 0, false
	listener := func(r *syslog.Result) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.Error != nil {
			s.record(nil, fmt.Errorf("syslogfake: connection %d: %w", id, r.Error))
			return
		}
		s.record(&Message{SyslogMessage: r.Message.(*rfc5424.SyslogMessage), Conn: id}, nil)
		count++
		if s.dropEvery > 0 && count >= s.dropEvery && !dropping && stop != nil {
			dropping = true
			stop()
			// Read what the sender had in flight until it closes.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
		}
	}
	octetcounting.NewParser(
		syslog.WithMaxMessageLength(maxMessage),
		syslog.WithMachineOptions(rfc5424.WithCompliantMsg()),
		syslog.WithListener(listener),
	).Parse(io.TeeReader(c, rec))
}

// recorder keeps a copy of a connection's bytes.
type recorder struct {
	mu  sync.Mutex
	buf []byte
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	return len(p), nil
}

func (r *recorder) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.buf...)
}
