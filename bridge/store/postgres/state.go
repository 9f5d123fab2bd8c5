package postgres

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"bridge/bridge"
)

// SinkState returns the durable key/value state of one sink: rows of the
// state table, shared by every replica.
func (s *Store) SinkState(sink string) bridge.State { return &sinkState{s: s, sink: sink} }

type sinkState struct {
	s    *Store
	sink string
}

func (st *sinkState) Get(ctx context.Context, key string) (string, bool, error) {
	ctx, cancel, err := st.s.op(ctx)
	if err != nil {
		return "", false, err
	}
	defer cancel()
	var v string
	err = st.s.pool.QueryRow(ctx, `SELECT value FROM state WHERE sink = $1 AND key = $2`, st.sink, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, st.s.fail(ctx, "state get", err)
	}
	return v, true, nil
}

func (st *sinkState) Put(ctx context.Context, key, value string) (err error) {
	ctx, end, err := st.s.write(ctx)
	if err != nil {
		return err
	}
	defer func() { err = end(err) }()
	if _, err := st.s.pool.Exec(ctx, `INSERT INTO state (sink, key, value, updated) VALUES ($1, $2, $3, $4)
		ON CONFLICT (sink, key) DO UPDATE SET value = excluded.value, updated = excluded.updated`,
		st.sink, key, value, time.Now().UnixNano()); err != nil {
		return st.s.fail(ctx, "state put", err)
	}
	return nil
}

func (st *sinkState) Delete(ctx context.Context, key string) (err error) {
	ctx, end, err := st.s.write(ctx)
	if err != nil {
		return err
	}
	defer func() { err = end(err) }()
	if _, err := st.s.pool.Exec(ctx, `DELETE FROM state WHERE sink = $1 AND key = $2`, st.sink, key); err != nil {
		return st.s.fail(ctx, "state delete", err)
	}
	return nil
}

// SinkLocks returns the per-key locks of one sink name, held across every
// replica on the database: the same Locker for every call with that name.
//
// A key's lock is a session advisory lock (pg_advisory_lock) on a
// connection of a pool of its own (Config.LockConns), keyed by a 64-bit
// FNV-1a hash of the sink name and the key, and held on that connection
// until unlock. Within the process a bridge.KeyLocks is taken first, so a
// process waits with at most one connection per key. The caller's context
// bounds the wait (also for a free connection); cancelling it cancels the
// wait on the server. Unlock runs pg_advisory_unlock and returns the
// connection to the pool.
//
// Should the connection break while the lock is held, the server ends its
// session and so frees the lock: another replica may then take the key
// while this holder still works under it. The holder learns of it only at
// unlock, which logs a warning; the sinks' own re-checks (Jira searches for
// the key's issue before creating one) narrow what that can cost. Two keys
// whose hashes collide merely share a lock.
func (s *Store) SinkLocks(sink string) bridge.Locker {
	s.locksMu.Lock()
	defer s.locksMu.Unlock()
	l := s.locks[sink]
	if l == nil {
		l = &sinkLocks{s: s, sink: sink}
		s.locks[sink] = l
	}
	return l
}

type sinkLocks struct {
	s     *Store
	sink  string
	local bridge.KeyLocks
}

// lockKey is the advisory lock key of a sink's key.
func lockKey(sink, key string) int64 {
	h := fnv.New64a()
	h.Write([]byte(sink))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return int64(h.Sum64())
}

// Lock takes key's lock, or gives up when ctx ends (with ctx's error) or the
// database fails. The returned function releases it.
func (l *sinkLocks) Lock(ctx context.Context, key string) (unlock func(), err error) {
	s := l.s
	if s.closed.Load() {
		return nil, bridge.ErrStoreClosed
	}
	// Close ends lock waits too.
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	defer func() {
		stop()
		cancel()
	}()
	unlockLocal, err := l.local.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	c, err := s.lockPool.Acquire(ctx)
	if err != nil {
		unlockLocal()
		return nil, l.lockErr(ctx, err)
	}
	k := lockKey(l.sink, key)
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock($1)`, k); err != nil {
		// Whether or not the lock was granted as the wait ended, closing
		// the session frees it.
		closeConn(c.Conn())
		c.Release()
		unlockLocal()
		return nil, l.lockErr(ctx, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			uctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
			defer cancel()
			var ok bool
			if err := c.QueryRow(uctx, `SELECT pg_advisory_unlock($1)`, k).Scan(&ok); err != nil || !ok {
				if err == nil {
					err = errors.New("the lock was not held")
				}
				s.log.Warn("postgres store: sink key lock lost with its connection before unlock; another replica may have held the key meanwhile",
					"sink", l.sink, "err", redact(err, s.secret))
				closeConn(c.Conn())
			}
			c.Release()
			unlockLocal()
		})
	}, nil
}

// lockErr is ctx's error when the wait ended with it, else err wrapped.
func (l *sinkLocks) lockErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && l.s.ctx.Err() == nil {
		return ctx.Err()
	}
	if l.s.closed.Load() {
		return bridge.ErrStoreClosed
	}
	return l.s.fail(ctx, "lock "+l.sink+" key", err)
}

// closeConn closes a connection whose state is not known, so that the pool
// drops it (and the server frees its session's locks).
func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.Close(ctx)
}
