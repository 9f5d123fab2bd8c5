package main

import (
	"context"
	"errors"
	"log/slog"

	"bridge/bridge"
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
	return nil, errors.New("store: the postgres store is not built into this bridge yet")
}
