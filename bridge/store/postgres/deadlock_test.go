package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"bridge/bridge/store/postgres/pgtest"
)

// TestAgainOnDeadlock: two transactions that lock two rows in opposite
// orders deadlock; PostgreSQL cancels one with 40P01, and againOnDeadlock
// runs that one again, which then commits. Any other error is returned
// at once.
func TestAgainOnDeadlock(t *testing.T) {
	ctx := context.Background()
	url := pgtest.TestDatabase(t)
	setup, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close(ctx)
	if _, err := setup.Exec(ctx, `CREATE TABLE rows (id INT PRIMARY KEY, n INT NOT NULL); INSERT INTO rows VALUES (1, 0), (2, 0)`); err != nil {
		t.Fatal(err)
	}
	// Each transaction locks its first row, waits until the other has
	// locked its own, then locks the other row.
	var locked sync.WaitGroup
	locked.Add(2)
	var once [2]sync.Once
	calls := [2]int{}
	run := func(k, first, second int) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return againOnDeadlock(func() error {
			calls[k]++
			return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `UPDATE rows SET n = n + 1 WHERE id = $1`, first); err != nil {
					return err
				}
				once[k].Do(locked.Done)
				locked.Wait()
				_, err := tx.Exec(ctx, `UPDATE rows SET n = n + 1 WHERE id = $1`, second)
				return err
			})
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- run(0, 1, 2) }()
	go func() { errs <- run(1, 2, 1) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a transaction failed for good: %v", err)
		}
	}
	if calls[0]+calls[1] != 3 {
		t.Errorf("ran %d and %d times; want one of them twice (once cancelled by the deadlock)", calls[0], calls[1])
	}
	var a, b int
	if err := setup.QueryRow(ctx, `SELECT (SELECT n FROM rows WHERE id = 1), (SELECT n FROM rows WHERE id = 2)`).Scan(&a, &b); err != nil || a != 2 || b != 2 {
		t.Errorf("rows after both committed: %d, %d (%v); want 2, 2", a, b, err)
	}

	// Other errors are not tried again; a deadlock every time gives up.
	n := 0
	other := &pgconn.PgError{Code: "23505"}
	if err := againOnDeadlock(func() error { n++; return other }); !errors.Is(err, other) || n != 1 {
		t.Errorf("a unique violation: %v after %d runs", err, n)
	}
	n = 0
	if err := againOnDeadlock(func() error { n++; return &pgconn.PgError{Code: "40P01"} }); err == nil || n != 3 {
		t.Errorf("deadlocked every time: %v after %d runs, want the error after 3", err, n)
	}
}
