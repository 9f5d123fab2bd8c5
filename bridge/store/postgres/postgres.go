// Package postgres is the bridge's PostgreSQL store: events, deliveries (the
// outbox) and the sinks' state in one database that any number of `bridge
// serve` replicas share (SPEC section 9). It implements the same contract as
// the embedded SQLite store.
//
// The replicas coordinate through the database alone:
//   - an event is stored once: (source, id) is unique and Ingest inserts
//     with ON CONFLICT DO NOTHING, so of two replicas posting one event at
//     the same instant one stores it and the other reports a duplicate;
//   - a delivery is attempted by one replica at a time: Claim leases it
//     (lease_owner, lease_until) with SELECT ... FOR UPDATE SKIP LOCKED, the
//     holder renews the lease while it works and Record releases it; a lease
//     that runs out (its replica died or lost the network) is taken over by
//     the next Claim of any replica;
//   - a sink's per-key locks are session advisory locks;
//   - new and replayed deliveries, and those a recorded delivery released
//     (chained actions), are announced with NOTIFY on the channel
//     bridge_due, in the transaction that makes them due, so every
//     replica's schedulers wake at once; polling covers a lost notification.
//
// LISTEN and session advisory locks need a session of their own: connect
// directly or through a pooler in session mode, not transaction mode.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"bridge/bridge"
)

// Config configures a Store. Only URL is required.
type Config struct {
	// URL is the connection string, e.g.
	// postgres://bridge:PASSWORD@db:5432/bridge?sslmode=verify-full. It may
	// carry pgx's pool settings (pool_max_conns, default the number of CPUs
	// and at least 4). The password appears in no error and no log.
	URL string
	// Lease is how long a claim on a delivery lasts unless renewed: how long
	// the other replicas wait before taking over the deliveries of one that
	// died. Default 30s.
	Lease time.Duration
	// Replica names this process in leases; it must differ between
	// replicas. Default host-pid-random.
	Replica string
	// Timeout bounds each call's statements, the wait for a connection
	// included, when the caller's context allows longer, so a database that
	// stopped answering fails calls instead of hanging them. Waiting for a
	// sink's key lock is bounded by the caller's context only. Default 10s.
	Timeout time.Duration
	// LockConns caps the connections that hold sink key locks, a pool of
	// their own so that held locks never starve webhooks of connections.
	// Default 32.
	LockConns int
	// Logger receives the store's own warnings (a lost listener, leases
	// taken over, outcomes not applied). Default slog.Default().
	Logger *slog.Logger
	// OnTakeover, when set, is called for every delivery that Claim takes
	// over from a replica whose lease had run out: a metric's hook.
	OnTakeover func(sink string)
}

// Defaults of Config.
const (
	DefaultLease     = 30 * time.Second
	DefaultTimeout   = 10 * time.Second
	DefaultLockConns = 32

	// connectTimeout applies when the URL sets no connect_timeout.
	connectTimeout = 5 * time.Second
	// pingTimeout bounds Ping: readiness must answer quickly.
	pingTimeout = 2 * time.Second
	// channel is the NOTIFY channel of deliveries that became due; each
	// notification's payload is one sink name.
	channel = "bridge_due"
)

// Store is the PostgreSQL store. It is safe for concurrent use, and any
// number of Stores (in one process or many) may share one database.
type Store struct {
	cfg      Config
	pool     *pgxpool.Pool // every statement
	lockPool *pgxpool.Pool // connections holding advisory locks
	connCfg  *pgx.ConnConfig
	log      *slog.Logger
	target   string // host:port/database, for messages
	secret   string // the password, kept out of error text

	ctx       context.Context // ends at Close: stops the listener and lock waits
	cancel    context.CancelFunc
	closed    atomic.Bool
	closeOnce sync.Once
	bg        sync.WaitGroup // the listener's goroutines

	// own holds the backend PIDs of this store's pooled connections: the
	// notifications they send are this store's own commits, whose callback
	// has already run.
	own sync.Map

	// writes numbers the writes; lastWrite is the outcome of the most
	// recent one whose outcome is known.
	writes    atomic.Uint64
	lastWrite atomic.Pointer[writeOutcome]

	onCommit   atomic.Pointer[func(sinks map[string]bool)]
	listenOnce sync.Once
	wokenMu    sync.Mutex
	woken      map[string]bool // notified sinks not yet handed to onCommit
	kick       chan struct{}

	locksMu sync.Mutex
	locks   map[string]*sinkLocks

	ingestQ ingestQueue // Ingest's group commit (ingest.go)
}

// Open connects to the database, creates or migrates its schema (see
// Migrate) and returns the store. It fails when the database cannot be
// reached within the connect timeout.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	pc, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.LockConns <= 0 {
		cfg.LockConns = DefaultLockConns
	}
	if cfg.Replica == "" {
		cfg.Replica = defaultReplica()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Store{cfg: cfg, log: cfg.Logger, target: pc.target, secret: pc.secret, woken: map[string]bool{}, kick: make(chan struct{}, 1),
		locks: map[string]*sinkLocks{}, connCfg: pc.pool.ConnConfig.Copy()}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	pc.pool.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		s.own.Store(c.PgConn().PID(), true)
		return setupSession(ctx, c)
	}
	pc.pool.BeforeClose = func(c *pgx.Conn) { s.own.Delete(c.PgConn().PID()) }
	lockCfg := pc.pool.Copy()
	lockCfg.AfterConnect, lockCfg.BeforeClose = setupSession, nil
	lockCfg.MaxConns = int32(cfg.LockConns)
	lockCfg.MinConns, lockCfg.MinIdleConns = 0, 0
	// A cancelled lock wait is cancelled on the server too, so the backend
	// does not go on queueing for a lock nobody will use.
	lockCfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: time.Second}
	}

	if err := s.start(ctx, pc.pool, lockCfg); err != nil {
		s.cancel()
		return nil, err
	}
	s.startIngest()
	return s, nil
}

// start makes the pools, and migrates through one of its connections.
func (s *Store) start(ctx context.Context, main, locks *pgxpool.Config) (err error) {
	if s.pool, err = pgxpool.NewWithConfig(ctx, main); err != nil {
		return s.connectErr(err)
	}
	if s.lockPool, err = pgxpool.NewWithConfig(ctx, locks); err != nil {
		s.pool.Close()
		return s.connectErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, max(s.cfg.Timeout, 30*time.Second))
	defer cancel()
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		err = s.connectErr(err)
	} else {
		err = migrate(ctx, c.Conn())
		c.Release()
		if err != nil && !errors.Is(err, ErrSchemaNewer) {
			err = fmt.Errorf("postgres store: migrate %s: %w", s.target, redact(err, s.secret))
		}
	}
	if err != nil {
		s.pool.Close()
		s.lockPool.Close()
	}
	return err
}

// sessionKeepalive makes the server probe an idle connection after 10s and
// drop it after three unanswered probes 5s apart, instead of the system's
// default of hours: a replica whose network died mid-session must not keep
// a sink key locked (or a listener slot) long after its lease ran out. It
// is set per session, by SQL, so that a pooler in session mode passes it.
const sessionKeepalive = `SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3`

func setupSession(ctx context.Context, c *pgx.Conn) error {
	_, err := c.Exec(ctx, sessionKeepalive)
	return err
}

// defaultReplica is host-pid-random: unique among replicas, and telling an
// operator which machine holds a lease.
func defaultReplica() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "bridge"
	}
	b := make([]byte, 4)
	rand.Read(b)
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
}

// Replica returns the name this store's leases carry.
func (s *Store) Replica() string { return s.cfg.Replica }

// Close stops the listener, closes the connections and makes every later
// call fail with bridge.ErrStoreClosed. Calls in progress end first (each
// is bounded by Config.Timeout). Key locks still held are waited for a few
// seconds, then abandoned: their connections close when released.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.stopIngest() // stores what was queued
		s.cancel()
		s.bg.Wait()
		s.pool.Close()
		done := make(chan struct{})
		go func() { s.lockPool.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.log.Warn("postgres store: closed with sink key locks still held; their connections close when they are released")
		}
	})
	return nil
}

// Ping checks with a real write, one round trip under a short timeout,
// that the database takes writes now: it inserts and deletes a probe row of
// this replica in one transaction, leaving nothing behind. A standby or a
// read-only database fails it. Its outcome counts as the last write's
// (LastWriteError).
func (s *Store) Ping(ctx context.Context) (err error) {
	ctx, end, err := s.write(ctx)
	if err != nil {
		return err
	}
	defer func() { err = end(err) }()
	ctx, cancel := context.WithTimeoutCause(ctx, pingTimeout, &slowError{target: s.target, timeout: pingTimeout})
	defer cancel()
	b := &pgx.Batch{}
	key := "probe:" + s.cfg.Replica
	b.Queue(`INSERT INTO state (sink, key, value, updated) VALUES ('', $1, '', $2)
		ON CONFLICT (sink, key) DO UPDATE SET updated = excluded.updated`, key, time.Now().UnixNano())
	b.Queue(`DELETE FROM state WHERE sink = '' AND key = $1`, key)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return s.fail(ctx, "probe", err)
	}
	return nil
}

// LastWriteError returns the error of this store's most recent write whose
// outcome is known, and when it failed, or a nil error when that write
// succeeded (or none was made yet): readiness follows it. A write abandoned
// by its caller (its context ended) counts as neither.
func (s *Store) LastWriteError() (at time.Time, err error) {
	if o := s.lastWrite.Load(); o != nil && o.err != nil {
		return o.at, o.err
	}
	return time.Time{}, nil
}

// writeOutcome is how a write ended (err nil: it succeeded), with its number.
type writeOutcome struct {
	gen uint64
	at  time.Time
	err error
}

// write starts a write: op's bounds, and a number for LastWriteError. The
// returned end, called with the write's error, records its outcome unless a
// later write's is known already, and returns that error.
func (s *Store) write(ctx context.Context) (context.Context, func(error) error, error) {
	octx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, nil, err
	}
	gen := s.writes.Add(1)
	return octx, func(err error) error {
		cancel()
		if err != nil && ctx.Err() != nil {
			return err // the caller gave up: that says nothing of the database
		}
		o := &writeOutcome{gen: gen, at: time.Now(), err: err}
		for {
			cur := s.lastWrite.Load()
			if (cur != nil && cur.gen > gen) || s.lastWrite.CompareAndSwap(cur, o) {
				return err
			}
		}
	}, nil
}

// SetOnCommit sets the function called with the names of sinks whose
// deliveries became due: after this store's own Ingest, Replay and Import
// commits, and its Records that release chained actions' dependents (in
// the caller's goroutine), and for those of every other store
// on the database (other replicas, `bridge replay`), from a listener
// connection of its own that LISTENs on bridge_due and reconnects with
// backoff. Notifications sent while the listener is down are lost: the
// pipeline's polling finds those deliveries. The first non-nil fn starts
// the listener.
func (s *Store) SetOnCommit(fn func(sinks map[string]bool)) {
	if fn == nil {
		s.onCommit.Store(nil)
		return
	}
	s.onCommit.Store(&fn)
	if s.closed.Load() {
		return
	}
	s.listenOnce.Do(func() {
		s.bg.Add(2)
		go s.listen()
		go s.dispatch()
	})
}

// committed runs the callback for this store's own commit.
func (s *Store) committed(sinks []string) {
	if len(sinks) == 0 {
		return
	}
	fn := s.onCommit.Load()
	if fn == nil {
		return
	}
	m := make(map[string]bool, len(sinks))
	for _, sk := range sinks {
		m[sk] = true
	}
	(*fn)(m)
}

// op bounds one call by Config.Timeout, and refuses calls after Close.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if s.closed.Load() {
		return nil, nil, bridge.ErrStoreClosed
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.Timeout, &slowError{target: s.target, timeout: s.cfg.Timeout})
	return ctx, cancel, nil
}

// fail wraps err as the error of operation op, without the password, and
// says so when the store's own timeout (op's ctx) ended it.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	err = redact(err, s.secret)
	var slow *slowError
	if errors.Is(err, context.DeadlineExceeded) && errors.As(context.Cause(ctx), &slow) {
		return fmt.Errorf("postgres store: %s: %v: %w", op, slow, err)
	}
	return fmt.Errorf("postgres store: %s: %w", op, err)
}

// slowError is the cause of op's timeout.
type slowError struct {
	target  string
	timeout time.Duration
}

func (e *slowError) Error() string {
	return fmt.Sprintf("%s did not answer within %v", e.target, e.timeout)
}

func (s *Store) connectErr(err error) error {
	return fmt.Errorf("postgres store: connect to %s: %w", s.target, redact(err, s.secret))
}

// parsedURL is a validated Config.URL.
type parsedURL struct {
	pool   *pgxpool.Config
	target string // host:port/database
	secret string
}

// parseURL parses a connection string, and sets the connect timeout when the
// URL has none. Its errors never contain the password.
func parseURL(raw string) (*parsedURL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("postgres store: no URL")
	}
	pc, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("postgres store: invalid URL: %s", parseReason(err, raw))
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = connectTimeout
	}
	cc := pc.ConnConfig
	return &parsedURL{pool: pc, target: fmt.Sprintf("%s:%d/%s", cc.Host, cc.Port, cc.Database), secret: cc.Password}, nil
}

// parseReason is a parse error's message without the connection string that
// pgx quotes in it (with the password masked, as best it can).
func parseReason(err error, raw string) string {
	msg := err.Error()
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		if i := strings.LastIndex(msg, "`: "); i >= 0 {
			msg = msg[i+3:]
		} else {
			msg = "malformed"
		}
	}
	return redactText(msg, guessPassword(raw))
}

// guessPassword returns the password of a connection string that may not
// parse, or "" when none is found.
func guessPassword(raw string) string {
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				return rest[c+1 : at]
			}
		}
	}
	if i := strings.Index(raw, "password="); i >= 0 {
		v := raw[i+len("password="):]
		if j := strings.IndexAny(v, " &"); j >= 0 {
			v = v[:j]
		}
		return strings.Trim(v, "'")
	}
	return ""
}

// redactedError is an error whose text had the password cut out; Unwrap
// still reaches the original for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact returns err, or an error with the same chain whose text does not
// contain secret.
func redact(err error, secret string) error {
	msg := err.Error()
	if r := redactText(msg, secret); r != msg {
		return &redactedError{msg: r, err: err}
	}
	return err
}

// redactText replaces secret in s, as given and URL-escaped; a secret of
// fewer than 4 bytes is too likely to be an ordinary word to be replaced.
func redactText(s, secret string) string {
	if len(secret) < 4 {
		return s
	}
	for _, form := range []string{secret, url.PathEscape(secret), url.QueryEscape(secret), url.UserPassword("", secret).String()[1:]} {
		s = strings.ReplaceAll(s, form, "xxxxx")
	}
	return s
}
