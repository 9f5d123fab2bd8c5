package bridge_test

import (
	"context"

	"bridge/bridge"
	"bridge/bridge/store/sqlite"
)

func init() {
	bridge.OpenTestStore = func(path string) (bridge.Store, error) {
		return sqlite.Open(bridge.StoreConfig{Path: path, Sync: "normal"})
	}
	bridge.ExecTestStore = func(s bridge.Store, stmt string) error {
		return s.(*sqlite.Store).ExecOnWriter(context.Background(), stmt)
	}
}
