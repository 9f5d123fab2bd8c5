// Package syslog is the syslog sink: it sends each event to a SIEM as one
// RFC 5424 message, over UDP (RFC 5426), TCP (RFC 6587) or TLS (RFC 5425),
// with MSG the event's JSON object or a CEF line.
//
// A message looks like this (the BOM, EF BB BF, starts MSG unless `bom:
// false`; TCP and TLS put the length in octets and a space before each
// message):
//
//	<131>1 2026-11-20T10:15:30.123Z bridge-01 bridge 4242 alert.triggered [bridge@32473 id="evt_1" source="secureagentics" severity="high"] {"id":"evt_1",...}
//
// TCP and TLS keep one connection open. When a write fails, the deliveries
// not fully written fail with a retryable error and the connection is
// dropped; the next attempt dials again. While dials fail, or connections
// fail before carrying a message, dials are spaced by a backoff that grows
// from 200ms to 30s, and attempts in between fail at once. A connection the
// receiver closed is noticed before the next write, so a message is not
// written into a dead connection and reported sent. Syslog has no
// acknowledgements: a message is reported sent once the connection accepted
// it, and a receiver that crashes with messages in its buffers loses them.
// Each message carries the event id so the SIEM can drop the duplicates
// retries produce.
package syslog

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"time"

	"bridge/bridge"
)

// Reconnect backoff: the wait after the first failed dial, and the most it
// grows to while dials keep failing.
const (
	reconnectInitial = 200 * time.Millisecond
	reconnectMax     = 30 * time.Second
	// handshakeSettle is how long a new TLS 1.3 connection is watched
	// before the first write. In TLS 1.3 the client's handshake ends before
	// the receiver has checked the client's certificate (or its absence);
	// a receiver that refuses it closes the connection right after, and
	// anything written meanwhile would be reported sent and lost.
	handshakeSettle = 250 * time.Millisecond
)

// ErrClosed is returned by a sink that has been closed.
var ErrClosed = errors.New("syslog: sink closed")

// Type returns the syslog sink type.
func Type() bridge.SinkType {
	return bridge.NewSinkType(NewConfig, func() *Action { return &Action{} }, New)
}

// Sink writes deliveries to one syslog receiver. It is safe for concurrent
// use; writes to the one connection are serialized.
type Sink struct {
	cfg    *Config
	log    *slog.Logger
	format formatter
	stream bool // tcp or tls: octet-counted frames on one connection

	dial   func(ctx context.Context) (net.Conn, error)
	now    func() time.Time
	settle time.Duration // handshakeSettle

	// sem holds the right to use the fields below; a channel rather
	// than a mutex so that waiting for it honours the context.
	sem      chan struct{}
	conn     *conn
	failures int       // connections failed in a row, before carrying data
	nextDial time.Time // no dial before this, after a failure
	dialErr  error     // the last failure
	closed   bool
}

// conn is one connection and what its reader saw.
type conn struct {
	net.Conn
	done chan struct{} // closed when the receiver closed the connection or it broke
	err  error         // why; read only after done is closed
	used bool          // a frame was written whole; guarded by the sink's sem
}

// New builds a syslog sink. It reads the TLS files but does not dial: the
// first delivery does.
func New(cfg *Config, env bridge.SinkEnv) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("syslog: %w", err)
	}
	facility, err := ParseFacility(cfg.Facility)
	if err != nil {
		return nil, fmt.Errorf("syslog: %w", err)
	}
	log := env.Log()
	host := cfg.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	s := &Sink{
		cfg: cfg,
		log: log,
		format: formatter{
			facility: facility,
			hostname: Hostname(host),
			procID:   strconv.Itoa(os.Getpid()),
			version:  env.Version,
			bom:      cfg.BOM,
			max:      cfg.maxMessageSize(),
		},
		stream: cfg.Network != NetworkUDP,
		now:    time.Now,
		settle: handshakeSettle,
		sem:    make(chan struct{}, 1),
	}
	switch cfg.Network {
	case NetworkUDP, NetworkTCP:
		d := &net.Dialer{}
		network := cfg.Network
		s.dial = func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, network, cfg.Address) }
	case NetworkTLS:
		tc, err := tlsConfig(cfg, env)
		if err != nil {
			return nil, err
		}
		d := &tls.Dialer{Config: tc}
		s.dial = func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", cfg.Address) }
	}
	return s, nil
}

// tlsConfig builds the client TLS config from the sink's tls section, with
// the server name defaulting to the host part of the address.
func tlsConfig(cfg *Config, env bridge.SinkEnv) (*tls.Config, error) {
	tc, err := cfg.TLS.Build(env, "syslog", slog.String("address", cfg.Address))
	if err != nil {
		return nil, fmt.Errorf("syslog: %w", err)
	}
	if tc.ServerName == "" {
		host, _, err := net.SplitHostPort(cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("syslog: address: %w", err)
		}
		tc.ServerName = host
	}
	return tc, nil
}

// BatchLimits lets the pipeline hand over up to batch_size deliveries at
// once, without waiting for a batch to fill.
func (s *Sink) BatchLimits() (int, time.Duration) { return s.cfg.BatchSize, 0 }

// Send writes one delivery's message.
func (s *Sink) Send(ctx context.Context, d *bridge.Delivery) (string, error) {
	return "", s.SendBatch(ctx, []*bridge.Delivery{d})[0]
}

// SendBatch writes the messages of ds: over TCP and TLS as one write of
// consecutive frames, over UDP one datagram each. A delivery is reported
// sent only when all of its bytes were accepted by the connection.
func (s *Sink) SendBatch(ctx context.Context, ds []*bridge.Delivery) []error {
	errs := make([]error, len(ds))
	frames := make([][]byte, 0, len(ds))
	idx := make([]int, 0, len(ds)) // the delivery of each frame
	for i, d := range ds {
		f, err := s.frame(d)
		if err != nil {
			errs[i] = err
			continue
		}
		frames = append(frames, f)
		idx = append(idx, i)
	}
	if len(frames) == 0 {
		return errs
	}
	for j, err := range s.write(ctx, frames) {
		errs[idx[j]] = err
	}
	return errs
}

// DryRun returns the exact bytes the sink would write for d: the message,
// with its octet count in front over TCP and TLS.
func (s *Sink) DryRun(ctx context.Context, d *bridge.Delivery) (string, error) {
	f, err := s.frame(d)
	return string(f), err
}

// frame returns the bytes written for one delivery.
func (s *Sink) frame(d *bridge.Delivery) ([]byte, error) {
	if d.Event == nil {
		return nil, bridge.Permanent(errors.New("syslog: delivery has no event"))
	}
	var a Action
	if err := d.DecodeAction(&a); err != nil {
		return nil, fmt.Errorf("syslog: action: %w", err)
	}
	format := a.Format
	if format == "" {
		format = s.cfg.Format
	}
	msg, err := s.format.message(d.Event, format)
	if err != nil {
		return nil, err
	}
	if !s.stream {
		return msg, nil
	}
	// RFC 6587 section 3.4.1, RFC 5425 section 4.3: MSG-LEN SP SYSLOG-MSG.
	f := make([]byte, 0, len(msg)+8)
	f = strconv.AppendInt(f, int64(len(msg)), 10)
	f = append(f, ' ')
	return append(f, msg...), nil
}

// write writes frames to the connection, dialing first if there is none,
// and returns one error per frame.
func (s *Sink) write(ctx context.Context, frames [][]byte) []error {
	errs := make([]error, len(frames))
	fail := func(from int, err error) []error {
		for i := from; i < len(errs); i++ {
			errs[i] = err
		}
		return errs
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fail(0, fmt.Errorf("syslog: wait for the connection: %w", context.Cause(ctx)))
	}
	defer func() { <-s.sem }()

	c, err := s.connect(ctx)
	if err != nil {
		return fail(0, err)
	}

	// Deadlines from ctx; a cancelled ctx interrupts a blocked write.
	if dl, ok := ctx.Deadline(); ok {
		c.SetWriteDeadline(dl)
	} else {
		c.SetWriteDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() && s.conn == c {
			// The interrupt may have fired after the write ended: the
			// connection's deadline can no longer be trusted.
			s.drop(c, "context ended during a write")
		}
	}()

	written, err := s.writeFrames(c, frames)
	if written > 0 {
		c.used = true
		s.reset()
	}
	if err == nil {
		return errs
	}
	s.drop(c, err.Error())
	if !c.used {
		// A receiver that takes connections but no data is backed off
		// like one that refuses them.
		s.backoff(err)
	}
	return fail(written, fmt.Errorf("syslog: write to %s: %w", s.cfg.Address, err))
}

// writeFrames writes frames to c and returns how many were written whole:
// over UDP one datagram each, over TCP and TLS all in one write.
func (s *Sink) writeFrames(c *conn, frames [][]byte) (int, error) {
	if !s.stream {
		for i, f := range frames {
			if _, err := c.Write(f); err != nil {
				return i, err
			}
		}
		return len(frames), nil
	}
	n, err := c.Write(bytes.Join(frames, nil))
	if err == nil {
		return len(frames), nil
	}
	end := 0
	for i, f := range frames {
		if end += len(f); end > n {
			return i, err
		}
	}
	return len(frames), err
}

// connect returns the open connection, or dials a new one unless a recent
// dial failed and its backoff has not passed. The caller holds sem.
func (s *Sink) connect(ctx context.Context) (*conn, error) {
	if s.closed {
		return nil, ErrClosed
	}
	if c := s.conn; c != nil {
		select {
		case <-c.done:
			s.drop(c, c.err.Error())
		default:
			return c, nil
		}
	}
	if now := s.now(); now.Before(s.nextDial) {
		return nil, fmt.Errorf("syslog: not connected to %s (next dial in %s): %w",
			s.cfg.Address, s.nextDial.Sub(now).Round(time.Millisecond), s.dialErr)
	}
	c, err := s.open(ctx)
	if err != nil {
		s.backoff(err)
		return nil, fmt.Errorf("syslog: connect to %s: %w", s.cfg.Address, err)
	}
	s.conn = c
	return c, nil
}

// backoff records a failed connection: the next dial waits longer. The
// caller holds sem.
func (s *Sink) backoff(err error) {
	s.failures++
	s.dialErr = err
	s.nextDial = s.now().Add(reconnectDelay(s.failures))
	if s.failures == 1 {
		s.log.Warn("syslog: cannot deliver to the receiver; backing off between dials",
			"address", s.cfg.Address, "network", s.cfg.Network, "error", err)
	}
}

// reset records a connection that carried data: the backoff starts over.
// The caller holds sem.
func (s *Sink) reset() {
	if s.failures > 0 {
		s.log.Info("syslog: delivering again", "address", s.cfg.Address, "failed_connections", s.failures)
	}
	s.failures, s.dialErr, s.nextDial = 0, nil, time.Time{}
}

// open dials a connection and starts watching it. A new TLS 1.3
// connection is watched for handshakeSettle first, so that a receiver that
// refuses the client (certificate) fails the dial rather than losing the
// first write.
func (s *Sink) open(ctx context.Context) (*conn, error) {
	nc, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, done: make(chan struct{})}
	if !s.stream {
		return c, nil
	}
	go c.watch()
	if tc, ok := nc.(*tls.Conn); ok && tc.ConnectionState().Version >= tls.VersionTLS13 && s.settle > 0 {
		t := time.NewTimer(s.settle)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.done:
			c.Close()
			return nil, fmt.Errorf("closed by the receiver after the TLS handshake: %w", c.err)
		case <-ctx.Done():
			c.Close()
			return nil, context.Cause(ctx)
		}
	}
	return c, nil
}

// watch reads from the connection until it ends. Syslog receivers send
// nothing, so a read returns only when the receiver closed the connection
// or it broke; reading also consumes TLS records such as close_notify.
func (c *conn) watch() {
	_, err := io.Copy(io.Discard, c.Conn)
	if err == nil {
		err = errors.New("closed by the receiver")
	}
	c.err = err
	close(c.done)
}

// drop closes c and forgets it, if it is the current connection. The
// caller holds sem.
func (s *Sink) drop(c *conn, why string) {
	if s.conn != c {
		return
	}
	s.conn = nil
	c.Close()
	if !s.closed {
		s.log.Info("syslog: connection dropped; the next delivery dials again", "address", s.cfg.Address, "reason", why)
	}
}

// reconnectDelay is the wait before the next dial after n failed in a row:
// doubling from reconnectInitial up to reconnectMax, with 20% jitter so that
// many bridges do not dial in step.
func reconnectDelay(n int) time.Duration {
	d := reconnectInitial
	for i := 1; i < n && d < reconnectMax; i++ {
		d *= 2
	}
	d = min(d, reconnectMax)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// Close closes the connection, sending TLS's close_notify first. It waits
// for a write in progress to end, or for ctx.
func (s *Sink) Close(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("syslog: close: %w", context.Cause(ctx))
	}
	defer func() { <-s.sem }()
	s.closed = true
	if c := s.conn; c != nil {
		s.conn = nil
		c.SetDeadline(time.Now().Add(time.Second))
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("syslog: close: %w", err)
		}
	}
	return nil
}
