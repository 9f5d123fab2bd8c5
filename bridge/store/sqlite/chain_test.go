package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bridge/bridge"
)

// TestOpenAddsChainColumns: a database made before chained actions (its
// deliveries table without action_name, after_name, after_index and link)
// opens, keeps its deliveries, and stores chains.
func TestOpenAddsChainColumns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(schema, `	result       TEXT NOT NULL DEFAULT '',
	action_name  TEXT NOT NULL DEFAULT '',
	after_name   TEXT NOT NULL DEFAULT '',
	after_index  INTEGER NOT NULL DEFAULT -1,
	link         TEXT NOT NULL DEFAULT ''`, `	result       TEXT NOT NULL DEFAULT ''`, 1)
	if old == schema {
		t.Fatal("the schema's deliveries table is not what this test removes columns from")
	}
	if _, err := db.Exec(old); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO events (seq, source, id, vendor, type, time, received, severity, title, subject, raw)
		VALUES (1, 'src', 'old-1', 'antly', 't', 0, 0, 'info', 't', 's', '{}');
		INSERT INTO deliveries (id, event_seq, rule, action_index, sink, action, status, attempts, created, window_start, next_at, updated, result)
		VALUES (1, 1, 'r', 0, 'jira', '{}', 'delivered', 1, 0, 0, 0, 0, 'OPS-1')`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(bridge.StoreConfig{Path: path, Sync: "normal"})
	if err != nil {
		t.Fatalf("open a database without the chain columns: %v", err)
	}
	defer func() { s.Close() }() // the store opened last
	ctx := context.Background()
	ds, err := s.Deliveries(ctx, bridge.DeliveryFilter{EventID: "old-1"})
	if err != nil || len(ds) != 1 || ds[0].Result != "OPS-1" || ds[0].AfterIndex != -1 || ds[0].ActionID != "" {
		t.Fatalf("the old delivery: %+v, %v", ds, err)
	}
	now := time.Now()
	planned := []bridge.Planned{
		{Rule: "r", Index: 0, Sink: "jira", ID: "ticket", Action: []byte(`{}`)},
		{Rule: "r", Index: 1, Sink: "chat", After: "ticket", AfterIndex: 0, Action: []byte(`{}`)},
	}
	if dup, err := s.Ingest(ctx, testEvent("src", "new-1", now), []byte(`{}`), planned); err != nil || dup {
		t.Fatalf("ingest a chain: %v %v", dup, err)
	}
	ds, err = s.Deliveries(ctx, bridge.DeliveryFilter{EventID: "new-1", Sink: "chat"})
	if err != nil || len(ds) != 1 || !ds[0].Waiting() {
		t.Fatalf("the dependent: %+v, %v", ds, err)
	}
	// Open again: the columns are there, nothing is added twice.
	s.Close()
	if s, err = Open(bridge.StoreConfig{Path: path, Sync: "normal"}); err != nil {
		t.Fatalf("open again: %v", err)
	}
}
