package postgres

import (
	"context"
	"fmt"
)

// SchemaVersionAt returns the schema version of the database at url, 0
// when it has no bridge schema yet, and changes nothing: `bridge migrate`
// says with it what it found. It may be newer than SchemaVersion.
func SchemaVersionAt(ctx context.Context, url string) (int, error) {
	pc, err := parseURL(url)
	if err != nil {
		return 0, err
	}
	fail := func(err error) (int, error) {
		return 0, fmt.Errorf("postgres store: read the schema version of %s: %w", pc.target, redact(err, pc.secret))
	}
	conn, closeConn, err := connectOnce(ctx, pc)
	if err != nil {
		return fail(err)
	}
	defer closeConn()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('bridge_schema') IS NOT NULL`).Scan(&exists); err != nil {
		return fail(err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM bridge_schema`).Scan(&v); err != nil {
		return fail(err)
	}
	return v, nil
}
