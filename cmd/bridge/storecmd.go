package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"bridge/bridge"
	"bridge/bridge/store/postgres"
	"bridge/bridge/store/sqlite"
)

// The store commands: `bridge migrate` and `bridge store import`. Like
// events and deliveries they read only the config's store section.

const migrateHelp = `Create the schema of the config's PostgreSQL store (store.postgres), or
bring it up to this bridge's version, and print the version before and
after. Safe beside running replicas and with several migrations at once. A
database whose schema is newer than this bridge is refused and left alone.
An SQLite store has nothing to migrate: serve creates its schema itself.`

const importHelp = `Copy the SQLite store file SQLITE_PATH (an SQLite bridge's store.path; here
relative to the current directory) into the config's PostgreSQL store
(store.postgres), creating its schema if needed: every event, every delivery
as it is (pending ones stay pending, with their attempts and retry window,
and the replicas take them up), and every sink's state (the Jira issue of
each dedupe key, the Slack thread of each key), so that no key gets a second
ticket. What the database has already is kept and not copied again: running
it twice, or again after an interruption, copies nothing twice.

Stop the bridge serve that uses SQLITE_PATH first: import refuses a file in
use, and keeps serve from opening it while it copies. It does not change
what the file holds.`

// Import batches: events per read and per Import call (one transaction,
// one round trip), bounded by their raw bodies' size; state rows per
// ImportState call.
const (
	importEvents     = 250
	importBatchBytes = 8 << 20
	importStateRows  = 1000
)

func migrateCommand() *cobra.Command {
	f := &cmdFlags{}
	c := &cobra.Command{
		Use:     "migrate -c FILE",
		Short:   "create or upgrade the PostgreSQL store's schema",
		Long:    migrateHelp,
		Example: "  BRIDGE_POSTGRES_URL=postgres://bridge:PASSWORD@db:5432/bridge bridge migrate -c bridge.yaml",
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(cmdMigrate(f, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	addConfigFlag(c, f)
	return c
}

func cmdMigrate(f *cmdFlags, stdout, stderr io.Writer) int {
	cfg, err := bridge.LoadStore(f.config)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	if !cfg.Store.IsPostgres() {
		fmt.Fprintf(stdout, "sqlite store %s: nothing to migrate: serve creates and updates its schema when it opens the file\n", cfg.Store.Path)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	url := cfg.Store.Postgres.Value()
	was, err := postgres.SchemaVersionAt(ctx, url)
	if err != nil {
		return fail(stderr, "migrate: %v", err)
	}
	if err := postgres.Migrate(ctx, url); err != nil {
		return fail(stderr, "migrate: %v", err)
	}
	if was == postgres.SchemaVersion {
		fmt.Fprintf(stdout, "postgres store: schema at version %d (was %d: nothing to do)\n", postgres.SchemaVersion, was)
	} else {
		fmt.Fprintf(stdout, "postgres store: schema at version %d (was %d)\n", postgres.SchemaVersion, was)
	}
	return 0
}

func storeCommand() *cobra.Command {
	f := &cmdFlags{}
	c := &cobra.Command{
		Use:     "import -c FILE SQLITE_PATH",
		Short:   "copy an SQLite store into the PostgreSQL store (stop the serve that uses it first)",
		Long:    importHelp,
		Example: "  bridge store import -c bridge.yaml data/bridge.db",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("give one SQLite store file: bridge store import -c FILE SQLITE_PATH")
			}
			return nil
		},
		ValidArgsFunction: completeFiles("db"),
		RunE: func(c *cobra.Command, args []string) error {
			return exit(cmdStoreImport(f, args[0], c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	addConfigFlag(c, f)
	return groupCommand("store", "copy an SQLite store into the PostgreSQL store", c)
}

// importer is what `store import` needs of the postgres store.
type importer interface {
	Import(ctx context.Context, evs []postgres.ImportedEvent) (postgres.ImportCounts, error)
	ImportState(ctx context.Context, rows []postgres.StateRow) (int, error)
}

var _ importer = (*postgres.Store)(nil)

func cmdStoreImport(f *cmdFlags, path string, stdout, stderr io.Writer) int {
	cfg, err := bridge.LoadStore(f.config)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	if !cfg.Store.IsPostgres() {
		return fail(stderr, "store import: the store of %s is SQLite (%s); import copies into a PostgreSQL store: set store.postgres in the config", f.config, cfg.Store.Path)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	src, err := sqlite.OpenExport(ctx, path)
	if errors.Is(err, sqlite.ErrInUse) {
		return fail(stderr, "store import: %v (a bridge serve?): stop it, then run the import again", err)
	}
	if err != nil {
		return fail(stderr, "store import: %v", err)
	}
	defer src.Close()
	events, deliveries, state, err := src.Counts(ctx)
	if err != nil {
		return fail(stderr, "store import: %v", err)
	}
	st, err := openStore(ctx, cfg.Store, storeOptions{})
	if err != nil {
		return fail(stderr, "store import: %v", err)
	}
	defer st.Close()
	dst, ok := st.(importer)
	if !ok {
		return fail(stderr, "store import: the configured store cannot import")
	}
	fmt.Fprintf(stdout, "%s: %d events, %d deliveries, %d state keys\n", path, events, deliveries, state)
	var got importTotals
	err = importSQLite(ctx, src, dst, &got, stderr)
	if err != nil {
		return fail(stderr, "store import: %v\nimported before that: %s\nrunning it again copies the rest, and nothing twice", err, got.imported())
	}
	fmt.Fprintln(stdout, got.summary())
	return 0
}

// importTotals counts what an import read from the file and what it
// added to the database.
type importTotals struct {
	read, added postgres.ImportCounts
}

func (t importTotals) imported() string {
	return fmt.Sprintf("%d events, %d deliveries, %d state keys", t.added.Events, t.added.Deliveries, t.added.State)
}

// summary is the final line, with what was in the database already.
func (t importTotals) summary() string {
	s := fmt.Sprintf("imported %d events (%d already there), %d deliveries (%d already there), %d state keys (%d already there)",
		t.added.Events, t.read.Events-t.added.Events, t.added.Deliveries, t.read.Deliveries-t.added.Deliveries,
		t.added.State, t.read.State-t.added.State)
	if t.added == (postgres.ImportCounts{}) && t.read != (postgres.ImportCounts{}) {
		s += ": nothing new to copy"
	}
	return s
}

// importSQLite copies src into dst: the sinks' state first, so that a
// replica already running finds the Jira issue and Slack thread of a key
// before it takes up an imported delivery of that key; then the events, in
// their order, in batches.
func importSQLite(ctx context.Context, src *sqlite.Export, dst importer, t *importTotals, progress io.Writer) error {
	rows, err := src.State(ctx)
	if err != nil {
		return err
	}
	for len(rows) > 0 {
		n := min(len(rows), importStateRows)
		batch := make([]postgres.StateRow, n)
		for i, r := range rows[:n] {
			batch[i] = postgres.StateRow{Sink: r.Sink, Key: r.Key, Value: r.Value, Updated: r.Updated}
		}
		added, err := dst.ImportState(ctx, batch)
		if err != nil {
			return err
		}
		t.read.State += n
		t.added.State += added
		rows = rows[n:]
	}

	var batch []postgres.ImportedEvent
	size, inBatch := 0, 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		c, err := dst.Import(ctx, batch)
		if err != nil {
			return err
		}
		t.read.Events += len(batch)
		t.read.Deliveries += inBatch
		t.added.Events += c.Events
		t.added.Deliveries += c.Deliveries
		batch, size, inBatch = batch[:0], 0, 0
		return nil
	}
	var after int64
	nextReport := 10000
	for {
		page, err := src.Events(ctx, after, importEvents)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for _, e := range page {
			batch = append(batch, importedEvent(e))
			size += len(e.Raw)
			inBatch += len(e.Deliveries)
			if size >= importBatchBytes {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		after = page[len(page)-1].Seq
		if t.read.Events >= nextReport {
			fmt.Fprintf(progress, "store import: %d events copied so far\n", t.read.Events)
			nextReport += 10000
		}
	}
}

// importedEvent is an exported SQLite event as the postgres store imports it.
func importedEvent(e sqlite.ExportedEvent) postgres.ImportedEvent {
	ie := postgres.ImportedEvent{Event: e.Event, Raw: e.Raw, Deliveries: make([]postgres.ImportedDelivery, len(e.Deliveries))}
	for i, d := range e.Deliveries {
		ie.Deliveries[i] = postgres.ImportedDelivery{
			Rule: d.Rule, Index: d.Index, Sink: d.Sink, Action: d.Action,
			Status: d.Status, Attempts: d.Attempts, LastError: d.LastError, Result: d.Result,
			Created: d.Created, WindowStart: d.WindowStart, NextAt: d.NextAt, Updated: d.Updated,
			ActionID: d.ActionID, After: d.After, AfterIndex: d.AfterIndex, Link: d.Link,
		}
	}
	return ie
}
