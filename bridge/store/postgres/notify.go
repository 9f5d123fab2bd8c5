package postgres

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// The listener's reconnect backoff, and how long it waits for a
// notification before checking that its connection still answers (a
// connection cut without a reset would otherwise wait for TCP keepalive).
const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second
	listenIdleCheck  = 30 * time.Second
)

// listen keeps a connection LISTENing on the channel, reconnecting with
// backoff, and hands the sinks notified by other stores to dispatch.
func (s *Store) listen() {
	defer s.bg.Done()
	wait := listenBackoffMin
	down := false
	for {
		err := s.listenConn(func() {
			wait = listenBackoffMin
			if down {
				s.log.Info("postgres store: notification listener reconnected")
				down = false
			}
		})
		if s.ctx.Err() != nil {
			return
		}
		if !down {
			s.log.Warn("postgres store: notification listener lost its connection; reconnecting (deliveries are found by polling meanwhile)",
				"err", redact(err, s.secret))
			down = true
		}
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, listenBackoffMax)
	}
}

// listenConn runs one listener connection until it fails or the store
// closes; connected is called once it listens.
func (s *Store) listenConn(connected func()) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	conn, err := pgx.ConnectConfig(ctx, s.connCfg)
	if err == nil {
		_, err = conn.Exec(ctx, sessionKeepalive+`; LISTEN `+channel)
	}
	cancel()
	if conn != nil {
		defer closeConn(conn)
	}
	if err != nil {
		return err
	}
	connected()
	for {
		ctx, cancel := context.WithTimeout(s.ctx, listenIdleCheck)
		n, err := conn.WaitForNotification(ctx)
		cancel()
		if s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed() {
			ctx, cancel := context.WithTimeout(s.ctx, min(s.cfg.Timeout, 5*time.Second))
			err = conn.Ping(ctx)
			cancel()
			if err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if _, mine := s.own.Load(n.PID); mine {
			continue // this store's own commit: its callback already ran
		}
		s.wokenMu.Lock()
		s.woken[n.Payload] = true
		s.wokenMu.Unlock()
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// dispatch calls the commit callback with the sinks notified since its last
// call, so a burst of notifications makes few calls.
func (s *Store) dispatch() {
	defer s.bg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		}
		s.wokenMu.Lock()
		woken := s.woken
		s.woken = map[string]bool{}
		s.wokenMu.Unlock()
		if fn := s.onCommit.Load(); fn != nil && len(woken) > 0 {
			(*fn)(woken)
		}
	}
}
