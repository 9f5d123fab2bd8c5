package syslog

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"bridge/bridge"
	"bridge/sinks/syslog/syslogfake"

	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

const testVersion = "1.2.3"

// receiver is a fake syslog receiver and a sink config pointing at it.
type receiver struct {
	*syslogfake.Server
	cfg *Config
	env bridge.SinkEnv
}

// startReceiver starts a receiver on network; for tls with a CA and server
// certificate made here, and with requireClient a client certificate the
// receiver requires.
func startReceiver(t *testing.T, network string, requireClient bool) *receiver {
	t.Helper()
	cfg := NewConfig()
	cfg.Network = network
	cfg.Hostname = "bridge-test"
	env := bridge.SinkEnv{Name: "siem", Logger: slog.New(slog.DiscardHandler), Version: testVersion, BaseDir: t.TempDir()}
	var tc *tls.Config
	if network == NetworkTLS {
		ca, err := syslogfake.NewCA("bridge test CA")
		if err != nil {
			t.Fatal(err)
		}
		server, err := ca.Issue("siem.test", []string{"siem.test", "127.0.0.1"}, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(env.BaseDir, "ca.pem"), ca.PEM, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.TLS.CAFile = "ca.pem" // relative to the config's directory
		cfg.TLS.ServerName = "siem.test"
		tc = &tls.Config{Certificates: []tls.Certificate{server.TLS}, MinVersion: tls.VersionTLS12}
		if requireClient {
			client, err := ca.Issue("bridge-client", nil, true)
			if err != nil {
				t.Fatal(err)
			}
			cert, key, err := client.WriteFiles(env.BaseDir, "client-")
			if err != nil {
				t.Fatal(err)
			}
			cfg.TLS.CertFile, cfg.TLS.KeyFile = cert, key
			tc.ClientAuth = tls.RequireAndVerifyClientCert
			tc.ClientCAs = ca.Pool()
		}
	}
	srv, err := syslogfake.Start(network, tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg.Address = srv.Addr()
	return &receiver{Server: srv, cfg: cfg, env: env}
}

func (r *receiver) sink(t *testing.T) *Sink {
	t.Helper()
	s, err := New(r.cfg, r.env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// wait waits for n messages.
func (r *receiver) wait(t *testing.T, n int) []syslogfake.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Wait(ctx, n); err != nil {
		t.Fatalf("%v; parse errors: %v", err, r.Errors())
	}
	return r.Messages()
}

func delivery(id int64, ev *bridge.Event, action string) *bridge.Delivery {
	if action == "" {
		action = "{}"
	}
	return &bridge.Delivery{ID: id, Event: ev, Rule: "r", Sink: "siem", Action: []byte(action), Attempt: 1}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestDeliver sends plain and nasty events, as JSON and CEF, over every
// transport, and checks what the receiver parsed.
func TestDeliver(t *testing.T) {
	for _, network := range []string{NetworkUDP, NetworkTCP, NetworkTLS} {
		t.Run(network, func(t *testing.T) {
			r := startReceiver(t, network, false)
			s := r.sink(t)
			events := []*bridge.Event{testEvent("evt_1"), nastyEvent("evt_2"), nastyEvent("evt_3")}
			actions := []string{"", "", `{"format":"cef"}`}
			for i, ev := range events {
				if _, err := s.Send(ctxTimeout(t, 5*time.Second), delivery(int64(i), ev, actions[i])); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			msgs := r.wait(t, 3)
			byID := map[string]syslogfake.Message{}
			for _, m := range msgs {
				byID[(*m.StructuredData)[SDID]["id"]] = m
			}
			for i, ev := range events {
				m, ok := byID[ev.ID]
				if !ok {
					t.Fatalf("event %q not received", ev.ID)
				}
				format := FormatJSON
				if strings.Contains(actions[i], "cef") {
					format = FormatCEF
				}
				checkMessage(t, m.SyslogMessage, ev, format, testVersion, false) // the default: no BOM
				if *m.Hostname != "bridge-test" || *m.ProcID != strconv.Itoa(os.Getpid()) || *m.Facility != 16 {
					t.Errorf("hostname %q procid %q facility %d", *m.Hostname, *m.ProcID, *m.Facility)
				}
			}
			if errs := r.Errors(); len(errs) > 0 {
				t.Errorf("parse errors: %v", errs)
			}
		})
	}
}

// TestFraming checks the octet counts on the wire of a TCP batch, with
// go-syslog's octet-counting parser and by hand.
func TestFraming(t *testing.T) {
	r := startReceiver(t, NetworkTCP, false)
	s := r.sink(t)
	var ds []*bridge.Delivery
	for i := range 20 {
		ev := nastyEvent(fmt.Sprintf("evt_%d", i))
		ev.Title = strings.Repeat("é日🚨", i*40) // sizes from small to several KB
		ds = append(ds, delivery(int64(i), ev, ""))
	}
	for i, err := range s.SendBatch(ctxTimeout(t, 5*time.Second), ds) {
		if err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	r.wait(t, len(ds))
	stream := r.Stream(1) // complete: the receiver parsed every frame

	var results []*syslog.Result
	octetcounting.NewParser(
		syslog.WithMaxMessageLength(1<<20),
		syslog.WithMachineOptions(rfc5424.WithCompliantMsg()),
		syslog.WithListener(func(res *syslog.Result) { results = append(results, res) }),
	).Parse(bytes.NewReader(stream))
	if len(results) != len(ds) {
		t.Fatalf("octet-counting parser found %d results, want %d", len(results), len(ds))
	}
	rest := stream
	for i, res := range results {
		if res.Error != nil {
			t.Fatalf("frame %d: %v", i, res.Error)
		}
		n, after, ok := bytes.Cut(rest, []byte(" "))
		length, err := strconv.Atoi(string(n))
		if !ok || err != nil || n[0] == '0' || length > len(after) {
			t.Fatalf("frame %d: bad MSG-LEN %q", i, n)
		}
		want, _ := s.DryRun(context.Background(), ds[i])
		if string(rest[:len(n)+1+length]) != want {
			t.Fatalf("frame %d differs from DryRun", i)
		}
		if !utf8.Valid(after[:length]) {
			t.Fatalf("frame %d: not UTF-8", i)
		}
		rest = after[length:]
	}
	if len(rest) != 0 {
		t.Errorf("%d bytes after the last frame", len(rest))
	}
}

func TestTLSClientCertificate(t *testing.T) {
	r := startReceiver(t, NetworkTLS, true)
	s := r.sink(t)
	if _, err := s.Send(ctxTimeout(t, 5*time.Second), delivery(1, testEvent("evt_mtls"), "")); err != nil {
		t.Fatal(err)
	}
	msgs := r.wait(t, 1)
	if got := (*msgs[0].StructuredData)[SDID]["id"]; got != "evt_mtls" {
		t.Errorf("received %q", got)
	}
	if got := r.ClientCertificates(); len(got) != 1 || got[0] != "CN=bridge-client" {
		t.Errorf("client certificates %v", got)
	}

	// Without the client certificate the receiver refuses the handshake,
	// and the delivery fails (to be retried).
	r.cfg.TLS.CertFile, r.cfg.TLS.KeyFile = "", ""
	s2 := r.sink(t)
	// In TLS 1.3 the receiver refuses it after the client's handshake
	// ended: the sink waits for that before writing.
	_, err := s2.Send(ctxTimeout(t, 5*time.Second), delivery(2, testEvent("evt_nocert"), ""))
	if err == nil || bridge.IsPermanent(err) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("send without a client certificate: %v, want a retryable error", err)
	}
}

func TestTLSUnknownCA(t *testing.T) {
	r := startReceiver(t, NetworkTLS, false)
	other, _ := syslogfake.NewCA("other")
	os.WriteFile(filepath.Join(r.env.BaseDir, "other.pem"), other.PEM, 0o600)
	r.cfg.TLS.CAFile = "other.pem"
	s := r.sink(t)
	_, err := s.Send(ctxTimeout(t, 5*time.Second), delivery(1, testEvent("e"), ""))
	var uerr x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &uerr) {
		t.Errorf("send to a receiver signed by another CA: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	env := bridge.SinkEnv{BaseDir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(env.BaseDir, "bad.pem"), []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(c *Config){
		"missing ca":   func(c *Config) { c.TLS.CAFile = "nope.pem" },
		"ca not pem":   func(c *Config) { c.TLS.CAFile = "bad.pem" },
		"missing cert": func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = "c.pem", "k.pem" },
		"invalid":      func(c *Config) { c.Address = "" },
	} {
		t.Run(name, func(t *testing.T) {
			c := NewConfig()
			c.Network, c.Address = NetworkTLS, "127.0.0.1:6514"
			edit(c)
			if _, err := New(c, env); err == nil {
				t.Error("New succeeded")
			}
		})
	}
}

// TestInsecureWarns checks that skipping certificate checks is logged.
func TestInsecureWarns(t *testing.T) {
	var buf bytes.Buffer
	c := NewConfig()
	c.Network, c.Address, c.TLS.InsecureSkipVerify = NetworkTLS, "127.0.0.1:6514", true
	if _, err := New(c, bridge.SinkEnv{Logger: slog.New(slog.NewTextHandler(&buf, nil))}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "insecure_skip_verify") {
		t.Errorf("log: %s", buf.String())
	}
}

// TestUDPTruncation sends events larger than max_message_size over UDP.
func TestUDPTruncation(t *testing.T) {
	for _, limit := range []int{0, 480, 1000, 1001, 1002} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			r := startReceiver(t, NetworkUDP, false)
			r.cfg.MaxMessageSize = limit
			s := r.sink(t)
			ev := testEvent("evt_big")
			ev.Title = strings.Repeat("a日本🚨é", 500)
			if _, err := s.Send(ctxTimeout(t, 5*time.Second), delivery(1, ev, "")); err != nil {
				t.Fatal(err)
			}
			m := r.wait(t, 1)[0]
			want := limit
			if want == 0 {
				want = DefaultUDPMaxMessageSize
			}
			if len(m.Raw) > want || len(m.Raw) < want-3 || !utf8.Valid(m.Raw) {
				t.Errorf("datagram of %d bytes (limit %d), valid UTF-8 %v", len(m.Raw), want, utf8.Valid(m.Raw))
			}
			if got := (*m.StructuredData)[SDID]["id"]; got != "evt_big" {
				t.Errorf("id %q", got)
			}
			if !strings.HasPrefix(*m.Message, `{"id":"evt_big"`) {
				t.Errorf("MSG %q", (*m.Message)[:40])
			}
		})
	}
}

// TestReconnectAfterIdleClose: the receiver closes the connection while the
// sink is idle. Without noticing, the next message would be written into
// the dead connection, reported sent, and lost.
func TestReconnectAfterIdleClose(t *testing.T) {
	for _, network := range []string{NetworkTCP, NetworkTLS} {
		t.Run(network, func(t *testing.T) {
			r := startReceiver(t, network, false)
			s := r.sink(t)
			send := func(from, to int) {
				for i := from; i < to; i++ {
					if _, err := s.Send(ctxTimeout(t, 5*time.Second), delivery(int64(i), testEvent(fmt.Sprint("evt_", i)), "")); err != nil {
						t.Fatalf("send %d: %v", i, err)
					}
				}
			}
			send(0, 3)
			r.wait(t, 3)
			c := currentConn(s)
			r.CloseConnections()
			<-c.done // the sink has seen the close
			send(3, 6)
			msgs := r.wait(t, 6)
			if len(msgs) != 6 || r.Connections() != 2 {
				t.Errorf("%d messages on %d connections", len(msgs), r.Connections())
			}
		})
	}
}

// TestReceiverDropsMidStream: the receiver closes every connection after a
// few messages while deliveries keep coming from several goroutines. Failed
// deliveries are retried as the pipeline would; every delivery that was
// reported sent must have been received.
func TestReceiverDropsMidStream(t *testing.T) {
	for _, network := range []string{NetworkTCP, NetworkTLS} {
		t.Run(network, func(t *testing.T) {
			r := startReceiver(t, network, false)
			r.DropEvery(7)
			s := r.sink(t)
			s.settle = 5 * time.Millisecond // many connections: keep the test quick
			sent, failures := sendAll(t, s, r, true)
			// The last connection may still hold messages in flight; the
			// receiver reads them until the sink closes.
			s.Close(context.Background())
			deadline := time.Now().Add(5 * time.Second)
			for lost := unreceived(r, sent); len(lost) > 0; lost = unreceived(r, sent) {
				if time.Now().After(deadline) {
					t.Fatalf("%d events reported sent but never received: %v", len(lost), lost)
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("%d events, %d messages received, %d connections, %d failed attempts",
				len(sent), len(r.Messages()), r.Connections(), failures)
			if r.Connections() < 2 {
				t.Errorf("the receiver dropped connections but the sink used %d", r.Connections())
			}
		})
	}
}

// TestReceiverResetsMidStream: the receiver closes its connections at once,
// with messages in flight, several times. Writes fail, the sink reconnects,
// and every delivery is eventually reported sent. Messages the receiver had
// not read when it closed are lost although reported sent: syslog has no
// acknowledgements. The test reports how many.
func TestReceiverResetsMidStream(t *testing.T) {
	r := startReceiver(t, NetworkTCP, false)
	s := r.sink(t)
	done := make(chan struct{})
	go func() {
		for i := 1; i <= 5; i++ {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			r.CloseConnections()
		}
	}()
	sent, failures := sendAll(t, s, r, false)
	close(done)
	s.Close(context.Background())
	time.Sleep(50 * time.Millisecond)
	t.Logf("%d events, %d messages received, %d connections, %d failed attempts, %d reported sent but not received",
		len(sent), len(r.Messages()), r.Connections(), failures, len(unreceived(r, sent)))
}

// sendAll sends 240 events from 4 goroutines in batches of 4, retrying
// failed deliveries as the pipeline would, until each was reported sent.
// With pace, each goroutine waits for the receiver to have every message
// reported sent before sending more. It returns how often each event was
// reported sent, and how many attempts failed.
func sendAll(t *testing.T, s *Sink, r *receiver, pace bool) (map[string]int, int) {
	t.Helper()
	const workers, perWorker, batch = 4, 60, 4
	var (
		mu        sync.Mutex
		sent      = map[string]int{}
		totalSent int
		failures  int
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(20 * time.Second)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pending []*bridge.Delivery
			for i := range perWorker {
				pending = append(pending, delivery(int64(w*1000+i), testEvent(fmt.Sprintf("evt_%d_%d", w, i)), ""))
			}
			for len(pending) > 0 {
				if time.Now().After(deadline) {
					t.Errorf("worker %d: %d deliveries never sent", w, len(pending))
					return
				}
				n := min(batch, len(pending))
				var errs []error
				if n == 1 {
					_, err := s.Send(ctxTimeout(t, 5*time.Second), pending[0])
					errs = []error{err}
				} else {
					errs = s.SendBatch(ctxTimeout(t, 5*time.Second), pending[:n])
				}
				var retry []*bridge.Delivery
				mu.Lock()
				for i, err := range errs {
					if err == nil {
						sent[pending[i].Event.ID]++
						totalSent++
						continue
					}
					failures++
					if bridge.IsPermanent(err) {
						t.Errorf("permanent error: %v", err)
					}
					retry = append(retry, pending[i])
				}
				target := totalSent
				mu.Unlock()
				if pace {
					// Stay close to the receiver, so that it drops
					// connections while the workers are writing.
					if err := r.Wait(ctxTimeout(t, 10*time.Second), target); err != nil {
						t.Errorf("worker %d: %v", w, err)
						return
					}
				}
				pending = append(retry, pending[n:]...)
				if len(retry) > 0 {
					time.Sleep(time.Millisecond) // the pipeline's backoff
				}
			}
		}()
	}
	wg.Wait()
	if len(sent) != workers*perWorker {
		t.Fatalf("%d of %d events reported sent", len(sent), workers*perWorker)
	}
	return sent, failures
}

// unreceived lists the events reported sent that the receiver has not got.
func unreceived(r *receiver, sent map[string]int) []string {
	received := map[string]bool{}
	for _, m := range r.Messages() {
		received[(*m.StructuredData)[SDID]["id"]] = true
	}
	var lost []string
	for id := range sent {
		if !received[id] {
			lost = append(lost, id)
		}
	}
	return lost
}

// brokenConn accepts limit bytes, then fails every write.
type brokenConn struct {
	net.Conn // the other end of a pipe, for reads and deadlines
	mu       sync.Mutex
	written  bytes.Buffer
	limit    int
}

func (c *brokenConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.limit - c.written.Len()
	if room >= len(p) {
		c.written.Write(p)
		return len(p), nil
	}
	c.written.Write(p[:max(room, 0)])
	return max(room, 0), errors.New("connection reset by peer")
}

// TestBrokenMidBatch: a write that fails part way through a batch fails
// exactly the deliveries not fully written, and the next attempt dials a
// new connection.
func TestBrokenMidBatch(t *testing.T) {
	s := offlineSink(t)
	var ds []*bridge.Delivery
	var frames []string
	for i := range 5 {
		d := delivery(int64(i), testEvent(fmt.Sprint("evt_", i)), "")
		ds = append(ds, d)
		f, _ := s.DryRun(context.Background(), d)
		frames = append(frames, f)
	}
	// Room for frames 0 and 1 and part of 2.
	limit := len(frames[0]) + len(frames[1]) + 10
	var dials []*brokenConn
	s.dial = func(ctx context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		go io.Copy(io.Discard, b)
		c := &brokenConn{Conn: a, limit: limit}
		dials = append(dials, c)
		return c, nil
	}
	errs := s.SendBatch(context.Background(), ds)
	for i, err := range errs {
		if (err == nil) != (i < 2) {
			t.Errorf("delivery %d: %v", i, err)
		}
		if err != nil && bridge.IsPermanent(err) {
			t.Errorf("delivery %d: permanent %v", i, err)
		}
	}
	if got := dials[0].written.String(); got != frames[0]+frames[1]+frames[2][:10] {
		t.Errorf("written %q", got)
	}
	// The retry of the rest goes on a new connection.
	limit = 1 << 20
	errs = s.SendBatch(context.Background(), ds[2:])
	for i, err := range errs {
		if err != nil {
			t.Errorf("retry %d: %v", i, err)
		}
	}
	if len(dials) != 2 || dials[1].written.String() != frames[2]+frames[3]+frames[4] {
		t.Errorf("%d dials; second connection got %q", len(dials), dials[len(dials)-1].written.String())
	}
}

// TestDialBackoff: while dials fail, attempts between them fail at once
// without dialing; after the backoff the sink dials again.
func TestDialBackoff(t *testing.T) {
	s := offlineSink(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	dials := 0
	refused := errors.New("connection refused")
	s.dial = func(ctx context.Context) (net.Conn, error) {
		dials++
		if dials < 3 {
			return nil, refused
		}
		a, b := net.Pipe()
		go io.Copy(io.Discard, b)
		return a, nil
	}
	send := func() error {
		_, err := s.Send(context.Background(), delivery(1, testEvent("e"), ""))
		return err
	}
	if err := send(); !errors.Is(err, refused) || dials != 1 {
		t.Fatalf("first send: %v, %d dials", err, dials)
	}
	if err := send(); !errors.Is(err, refused) || !strings.Contains(err.Error(), "next dial in") || dials != 1 {
		t.Fatalf("send during backoff: %v, %d dials", err, dials)
	}
	now = now.Add(reconnectInitial)
	if err := send(); !errors.Is(err, refused) || dials != 2 {
		t.Fatalf("send after the first backoff: %v, %d dials", err, dials)
	}
	now = now.Add(reconnectInitial) // the backoff has doubled
	if err := send(); err == nil || dials != 2 {
		t.Fatalf("send during the second backoff: %v, %d dials", err, dials)
	}
	now = now.Add(reconnectInitial)
	if err := send(); err != nil || dials != 3 {
		t.Fatalf("send after the second backoff: %v, %d dials", err, dials)
	}
	for n := 1; n < 20; n++ {
		if d := reconnectDelay(n); d <= 0 || d > reconnectMax {
			t.Errorf("reconnectDelay(%d) = %s", n, d)
		}
	}
}

// TestWriteHonoursContext: a write the receiver does not read ends when the
// context does, fails, and drops the connection.
func TestWriteHonoursContext(t *testing.T) {
	s := offlineSink(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	dials := 0
	s.dial = func(ctx context.Context) (net.Conn, error) {
		dials++
		a, _ := net.Pipe() // nobody reads the other end
		return a, nil
	}
	for _, mk := range []func() (context.Context, context.CancelFunc){
		func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		},
		func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		},
	} {
		ctx, cancel := mk()
		start := time.Now()
		_, err := s.Send(ctx, delivery(1, testEvent("e"), ""))
		cancel()
		if err == nil || time.Since(start) > 5*time.Second {
			t.Errorf("send: %v after %s", err, time.Since(start))
		}
		if currentConn(s) != nil {
			t.Error("connection kept after a failed write")
		}
		// A connection that never took a message is backed off.
		if _, err := s.Send(context.Background(), delivery(1, testEvent("e"), "")); err == nil || !strings.Contains(err.Error(), "next dial in") {
			t.Errorf("send right after: %v", err)
		}
		now = now.Add(reconnectMax)
	}
	if dials != 2 {
		t.Errorf("%d dials, want 2", dials)
	}
	// Waiting for a busy connection honours the context too.
	s.sem <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Send(ctx, delivery(1, testEvent("e"), "")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("send while busy: %v", err)
	}
	<-s.sem
}

func TestDryRunAndBadActions(t *testing.T) {
	for _, network := range []string{NetworkUDP, NetworkTCP, NetworkTLS} {
		cfg := NewConfig()
		cfg.Network, cfg.Address, cfg.Hostname = network, "127.0.0.1:1", "h"
		cfg.BOM = false
		s, err := New(cfg, bridge.SinkEnv{Version: "9"})
		if err != nil {
			t.Fatal(err)
		}
		ev := testEvent("evt_dry")
		got, err := s.DryRun(context.Background(), delivery(1, ev, `{"format":"cef"}`))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := s.format.message(ev, FormatCEF)
		want := string(msg)
		if network != NetworkUDP {
			want = strconv.Itoa(len(msg)) + " " + want
		}
		if got != want || !strings.Contains(got, "] CEF:0|Bridge|bridge|9|alert.triggered|") {
			t.Errorf("%s: DryRun = %q, want %q", network, got, want)
		}
		errs := s.SendBatch(context.Background(), []*bridge.Delivery{
			delivery(1, ev, `{"format":"leef"}`),
			delivery(2, ev, `{"format":`),
			{ID: 3, Action: []byte("{}")},
		})
		for i, err := range errs {
			if !bridge.IsPermanent(err) {
				t.Errorf("%s: bad delivery %d: %v, want a permanent error", network, i, err)
			}
		}
	}
}

func TestClose(t *testing.T) {
	r := startReceiver(t, NetworkTLS, false)
	s := r.sink(t)
	if _, err := s.Send(ctxTimeout(t, 5*time.Second), delivery(1, testEvent("e"), "")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(context.Background(), delivery(1, testEvent("e"), "")); !errors.Is(err, ErrClosed) {
		t.Errorf("send after close: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestType(t *testing.T) {
	st := Type()
	cfg := st.NewConfig().(*Config)
	cfg.Address = "127.0.0.1:514"
	if err := st.NewAction().Validate(cfg); err != nil {
		t.Fatal(err)
	}
	sink, err := st.New(cfg, bridge.SinkEnv{})
	if err != nil {
		t.Fatal(err)
	}
	var _ bridge.BatchSink = sink.(*Sink)
	var _ bridge.DryRunner = sink.(*Sink)
	if max, wait := sink.(*Sink).BatchLimits(); max != DefaultBatchSize || wait != 0 {
		t.Errorf("BatchLimits = %d, %s", max, wait)
	}
}

// currentConn reads the sink's connection as a delivery would.
// offlineSink is a sink with the default config whose address nothing
// listens on, for tests that replace its dial.
func offlineSink(t *testing.T) *Sink {
	t.Helper()
	cfg := NewConfig()
	cfg.Address = "127.0.0.1:1"
	s, err := New(cfg, bridge.SinkEnv{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func currentConn(s *Sink) *conn {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	return s.conn
}
