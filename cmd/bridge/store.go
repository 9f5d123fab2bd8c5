package main

import (
	"context"
	"log/slog"

	"bridge/bridge"
	"bridge/bridge/store/postgres"
	"bridge/bridge/store/sqlite"
)

// storeOptions are what serve gives a store besides its config.
type storeOptions struct {
	log     *slog.Logger
	metrics *bridge.Metrics // counts lease takeovers; nil for the CLI's commands
}

// openStore opens the store the config names: PostgreSQL with
// store.postgres, else the SQLite file at store.path.
func openStore(ctx context.Context, cfg bridge.StoreConfig, opt storeOptions) (bridge.Store, error) {
	if !cfg.IsPostgres() {
		return sqlite.Open(cfg)
	}
	pc := postgres.Config{URL: cfg.Postgres.Value(), Lease: cfg.Lease.D(), Logger: opt.log}
	if m := opt.metrics; m != nil {
		pc.OnTakeover = func(sink string) { m.LeaseTakeovers.WithLabelValues(sink).Inc() }
	}
	if pc.Logger == nil {
		pc.Logger = slog.New(slog.DiscardHandler)
	}
	return postgres.Open(ctx, pc)
}
