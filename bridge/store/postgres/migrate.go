package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// migrations are the schema's versions, in order: migrations[i] makes
// version i+1. A released migration is never edited; a change to the schema
// is a new one at the end.
var migrations = []string{
	// 1: the initial schema. Times are Unix nanoseconds, as in the SQLite
	// store. lease_owner and lease_until are a replica's claim on a pending
	// delivery (both NULL when nobody holds it); UNIQUE (event_seq, rule,
	// action_index) makes `bridge store import` idempotent.
	`
CREATE TABLE events (
	seq      BIGSERIAL PRIMARY KEY,
	source   TEXT NOT NULL,
	id       TEXT NOT NULL,
	vendor   TEXT NOT NULL,
	type     TEXT NOT NULL,
	time     BIGINT NOT NULL,
	received BIGINT NOT NULL,
	severity TEXT NOT NULL,
	title    TEXT NOT NULL,
	subject  TEXT NOT NULL,
	raw      BYTEA NOT NULL,
	UNIQUE (source, id)
);
CREATE INDEX events_received ON events (received, seq);
CREATE INDEX events_source ON events (source, seq);
CREATE INDEX events_id ON events (id);
CREATE TABLE deliveries (
	id           BIGSERIAL PRIMARY KEY,
	event_seq    BIGINT NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
	rule         TEXT NOT NULL,
	action_index INTEGER NOT NULL,
	sink         TEXT NOT NULL,
	action       BYTEA,
	status       TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
	attempts     INTEGER NOT NULL DEFAULT 0,
	created      BIGINT NOT NULL,
	window_start BIGINT NOT NULL,
	next_at      BIGINT NOT NULL,
	updated      BIGINT NOT NULL,
	last_error   TEXT NOT NULL DEFAULT '',
	result       TEXT NOT NULL DEFAULT '',
	lease_owner  TEXT,
	lease_until  BIGINT,
	UNIQUE (event_seq, rule, action_index)
);
CREATE INDEX deliveries_due ON deliveries (sink, next_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (sink, lease_until) WHERE status = 'pending' AND lease_until IS NOT NULL;
CREATE INDEX deliveries_status ON deliveries (status, id);
CREATE INDEX deliveries_errors ON deliveries (sink, updated) WHERE last_error <> '';
CREATE TABLE state (
	sink    TEXT NOT NULL,
	key     TEXT NOT NULL,
	value   TEXT NOT NULL,
	updated BIGINT NOT NULL,
	PRIMARY KEY (sink, key)
);
`,
	// 2: chained actions (SPEC section 11). action_name is the action's
	// id in its rule; after_name the id of the action it runs after, and
	// after_index that action's index (-1: none), so that the UNIQUE
	// (event_seq, rule, action_index) index finds a dependent's action and
	// an action's dependents. link is the URL of a delivered action's
	// result. Constant defaults: PostgreSQL 11 and later add these columns
	// without rewriting the table, so the migration is quick on a large
	// outbox.
	`
ALTER TABLE deliveries
	ADD COLUMN action_name TEXT NOT NULL DEFAULT '',
	ADD COLUMN after_name  TEXT NOT NULL DEFAULT '',
	ADD COLUMN after_index INTEGER NOT NULL DEFAULT -1,
	ADD COLUMN link        TEXT NOT NULL DEFAULT '';
`,
}

// SchemaVersion is the newest schema version this package knows.
var SchemaVersion = len(migrations)

// migrateLock is the advisory lock key pair that serializes migrations
// across processes ("brdg", 1). Sink key locks use the one-key form of the
// advisory lock functions, a space of its own, so they never collide with it.
const migrateLock1, migrateLock2 = 0x62726467, 1

// ErrSchemaNewer is matched (errors.Is) by the error of Open and Migrate for
// a database whose schema is newer than this binary knows.
var ErrSchemaNewer = errors.New("postgres store: the database schema is newer than this bridge")

type schemaNewerError struct{ have, know int }

func (e *schemaNewerError) Error() string {
	return fmt.Sprintf("postgres store: the database schema is version %d; this bridge knows up to %d: upgrade the bridge", e.have, e.know)
}

func (e *schemaNewerError) Is(target error) bool { return target == ErrSchemaNewer }

// Migrate creates the schema in the database at url, or brings it up to
// SchemaVersion, in one transaction under an advisory lock, so replicas
// starting at once are safe: the first migrates, the others wait and find
// nothing to do. Applied versions are rows of bridge_schema. A database whose
// schema is newer than this binary is refused (ErrSchemaNewer) and left
// alone. Open runs it too.
func Migrate(ctx context.Context, url string) error {
	pc, err := parseURL(url)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		if errors.Is(err, ErrSchemaNewer) {
			return err
		}
		return fmt.Errorf("postgres store: migrate %s: %w", pc.target, redact(err, pc.secret))
	}
	conn, closeConn, err := connectOnce(ctx, pc)
	if err != nil {
		return fail(err)
	}
	defer closeConn()
	if err := migrate(ctx, conn); err != nil {
		return fail(err)
	}
	return nil
}

// connectOnce opens one connection outside the pools, for a command that
// runs a few statements (migrate, the schema version); the returned
// function closes it.
func connectOnce(ctx context.Context, pc *parsedURL) (*pgx.Conn, func(), error) {
	conn, err := pgx.ConnectConfig(ctx, pc.pool.ConnConfig)
	if err != nil {
		return nil, nil, err
	}
	return conn, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}, nil
}

// migrate runs the migrations on conn.
func migrate(ctx context.Context, conn *pgx.Conn) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, int32(migrateLock1), int32(migrateLock2)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		// Created only when missing, so that a role without CREATE on the
		// schema can run a bridge on an up-to-date database.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass('bridge_schema') IS NOT NULL`).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE TABLE bridge_schema (
				version INTEGER PRIMARY KEY,
				applied TIMESTAMPTZ NOT NULL DEFAULT now()
			)`); err != nil {
				return fmt.Errorf("create bridge_schema: %w", err)
			}
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM bridge_schema`).Scan(&have); err != nil {
			return err
		}
		if have > len(migrations) {
			return &schemaNewerError{have: have, know: len(migrations)}
		}
		for v := have + 1; v <= len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("version %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO bridge_schema (version) VALUES ($1)`, v); err != nil {
				return fmt.Errorf("version %d: %w", v, err)
			}
		}
		return nil
	})
}
