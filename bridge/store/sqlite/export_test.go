package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"bridge/bridge"
)

// TestExport reads back, page by page, everything a store holds: events in
// arrival order with their raw bodies, deliveries with every column (the
// chained actions' too), and the sinks' state without the store's own
// probe row.
func TestExport(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data", "bridge.db")
	s, err := Open(bridge.StoreConfig{Path: path, Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	for i := range 5 {
		ev := &bridge.Event{ID: fmt.Sprintf("e%d", i), Source: "src", Vendor: "antly", Type: "x", Severity: "info",
			Title: "t", Subject: "s", Time: t0.Add(-time.Minute), Received: t0.Add(time.Duration(i) * time.Second)}
		var planned []bridge.Planned
		if i == 2 {
			planned = []bridge.Planned{
				{Rule: "r", Index: 0, Sink: "out", Action: json.RawMessage(`{"text":"a"}`)},
				{Rule: "r", Index: 1, Sink: "out", Err: errors.New("template: no such field")},
				{Rule: "q", Index: 0, Sink: "jira", Action: json.RawMessage(`{"summary":"b"}`)},
			}
		}
		if i >= 3 { // a chain: delivered and released in e3, waiting in e4
			planned = chainOf()
		}
		raw := fmt.Appendf(nil, `{"id":"e%d","data":{"n":%d}}`, i, i)
		if _, err := s.Ingest(ctx, ev, raw, planned); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.Deliveries(ctx, bridge.DeliveryFilter{EventID: "e2", Source: "src", Sink: "out", Status: bridge.StatusPending})
	if err != nil || len(ds) != 1 {
		t.Fatalf("pending deliveries %v, %v", ds, err)
	}
	retry := t0.Add(time.Hour)
	if err := s.Record(ctx, []bridge.Outcome{{ID: ds[0].ID, Status: bridge.StatusPending, Error: "503 busy", NextAt: retry, At: t0.Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	ds, err = s.Deliveries(ctx, bridge.DeliveryFilter{EventID: "e3", Source: "src", Sink: "jira"})
	if err != nil || len(ds) != 1 {
		t.Fatalf("the chained action of e3: %v, %v", ds, err)
	}
	released := t0.Add(2 * time.Minute)
	if err := s.Record(ctx, []bridge.Outcome{{ID: ds[0].ID, Status: bridge.StatusDelivered, Result: "OPS-2",
		Link: "https://jira.example/browse/OPS-2", NextAt: released, At: released, Chained: true}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SinkState("jira").Put(ctx, "key", `{"issue":"OPS-1"}`); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	if _, err := OpenExport(ctx, path); !errors.Is(err, ErrInUse) {
		t.Errorf("OpenExport of a store in use: %v, want ErrInUse", err)
	}
	s.Close()

	x, err := OpenExport(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	events, deliveries, state, err := x.Counts(ctx)
	if err != nil || events != 5 || deliveries != 7 || state != 1 {
		t.Errorf("Counts: %d events, %d deliveries, %d state keys (%v), want 5, 7, 1", events, deliveries, state, err)
	}
	var all []ExportedEvent
	var after int64
	for pages := 0; ; pages++ {
		page, err := x.Events(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			if pages != 3 {
				t.Errorf("%d pages of 2 for 5 events", pages)
			}
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	if len(all) != 5 {
		t.Fatalf("%d events exported, want 5", len(all))
	}
	for i, e := range all {
		if e.Event.ID != fmt.Sprintf("e%d", i) || !e.Event.Received.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Errorf("event %d: %s received %v", i, e.Event.ID, e.Event.Received)
		}
		if want := fmt.Sprintf(`{"id":"e%d","data":{"n":%d}}`, i, i); string(e.Raw) != want {
			t.Errorf("event %d: raw %s, want %s", i, e.Raw, want)
		}
		if i < 2 && len(e.Deliveries) != 0 {
			t.Errorf("event %d: %d deliveries", i, len(e.Deliveries))
		}
	}
	got := all[2].Deliveries
	if len(got) != 3 {
		t.Fatalf("event e2: %d deliveries, want 3", len(got))
	}
	pending, failed, other := got[0], got[1], got[2]
	if pending.Rule != "r" || pending.Index != 0 || pending.Status != bridge.StatusPending || pending.Attempts != 1 ||
		pending.LastError != "503 busy" || !pending.NextAt.Equal(retry) || !pending.WindowStart.Equal(t0.Add(2*time.Second)) ||
		string(pending.Action) != `{"text":"a"}` || pending.EventID != "e2" || pending.Source != "src" {
		t.Errorf("pending delivery: %+v", pending)
	}
	if failed.Index != 1 || failed.Status != bridge.StatusFailed || failed.LastError != "template: no such field" {
		t.Errorf("failed delivery: %+v", failed)
	}
	if other.Rule != "q" || other.Sink != "jira" || other.Index != 0 {
		t.Errorf("third delivery: %+v", other)
	}
	wantChain(t, "e3", all[3].Deliveries, "https://jira.example/browse/OPS-2", released)
	wantChain(t, "e4", all[4].Deliveries, "", bridge.Waiting)
	rows, err := x.State(ctx)
	if err != nil || len(rows) != 1 || rows[0].Sink != "jira" || rows[0].Key != "key" || rows[0].Value != `{"issue":"OPS-1"}` {
		t.Errorf("State: %+v, %v", rows, err)
	}
}

// TestOpenExportRefuses: a missing file is not created, and a file that
// is not a bridge store is refused unchanged.
func TestOpenExportRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	if _, err := OpenExport(ctx, missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("OpenExport created the missing file: %v", err)
	}
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte("this is no database, just text that is long enough to look like a header"), 0o600)
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	for _, p := range []string{junk, empty, dir} {
		if _, err := OpenExport(ctx, p); !errors.Is(err, ErrNotStore) {
			t.Errorf("%s: %v, want ErrNotStore", filepath.Base(p), err)
		}
	}
	if b, _ := os.ReadFile(empty); len(b) != 0 {
		t.Errorf("the empty file was written: %d bytes", len(b))
	}
}

// chainOf plans a chain of two actions of rule "c": an issue, then a
// message after it.
func chainOf() []bridge.Planned {
	return []bridge.Planned{
		{Rule: "c", Index: 0, Sink: "jira", ID: "issue", Action: json.RawMessage(`{"summary":"c"}`)},
		{Rule: "c", Index: 1, Sink: "out", After: "issue", AfterIndex: 0, Action: json.RawMessage(`{"text":"{{ .links.issue }}"}`)},
	}
}

// wantChain checks the exported deliveries of a chainOf: the action with
// its id and link, the dependent with the action it runs after, due at
// next (bridge.Waiting while it waits).
func wantChain(t *testing.T, name string, got []ExportedDelivery, link string, next time.Time) {
	t.Helper()
	if len(got) != 2 {
		t.Fatalf("event %s: %d deliveries, want 2", name, len(got))
	}
	issue, msg := got[0], got[1]
	if issue.ActionID != "issue" || issue.After != "" || issue.AfterIndex != -1 || issue.Link != link {
		t.Errorf("event %s, the action: id %q, after %q (%d), link %q; want issue, after nothing (-1), link %q",
			name, issue.ActionID, issue.After, issue.AfterIndex, issue.Link, link)
	}
	if msg.ActionID != "" || msg.After != "issue" || msg.AfterIndex != 0 || msg.Index != 1 || !msg.NextAt.Equal(next) ||
		msg.Waiting() != bridge.WaitingAt(next) {
		t.Errorf("event %s, the dependent: id %q, after %q (%d), index %d, next %v, waiting %v; want after issue (0), index 1, next %v",
			name, msg.ActionID, msg.After, msg.AfterIndex, msg.Index, msg.NextAt, msg.Waiting(), next)
	}
}

// TestExportEarlierStore: a store file that no bridge with chained
// actions has opened (without their columns) is exported with their
// defaults, and left as it is.
func TestExportEarlierStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bridge.db")
	s, err := Open(bridge.StoreConfig{Path: path, Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	ev := &bridge.Event{ID: "e1", Source: "src", Vendor: "antly", Type: "x", Time: time.Unix(0, 0).UTC(), Received: time.Unix(1, 0).UTC()}
	if _, err := s.Ingest(ctx, ev, []byte(`{}`), []bridge.Planned{{Rule: "r", Sink: "out", Action: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chainColumns {
		if _, err := db.Exec(`ALTER TABLE deliveries DROP COLUMN ` + c[0]); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	x, err := OpenExport(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if _, n, _, err := x.Counts(ctx); err != nil || n != 1 {
		t.Errorf("Counts: %d deliveries, %v; want 1", n, err)
	}
	evs, err := x.Events(ctx, 0, 10)
	if err != nil || len(evs) != 1 || len(evs[0].Deliveries) != 1 {
		t.Fatalf("Events: %+v, %v", evs, err)
	}
	if d := evs[0].Deliveries[0]; d.ActionID != "" || d.After != "" || d.AfterIndex != -1 || d.Link != "" || d.Status != bridge.StatusPending {
		t.Errorf("the delivery of an earlier store: %+v", d)
	}
	var cols int
	if err := x.conn.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('deliveries') WHERE name = 'link'`).Scan(&cols); err != nil || cols != 0 {
		t.Errorf("the export added columns to the file: %d, %v", cols, err)
	}
}
