package console

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bridge/bridge"
	"bridge/bridge/store/sqlite"
)

// millionEvents is how many events BenchmarkMillionEvents stores.
const millionEvents = 1_000_000

// fillMillion writes n events, each with one delivery, straight into the
// SQLite store's tables in one statement each (a recursive CTE on the
// writer's connection: the store's own test seam), which takes seconds
// where n Ingest calls would take many minutes. The rows are what Ingest
// writes: three sources, four types, five severities; every third
// delivery failed.
func fillMillion(b *testing.B, st *sqlite.Store, n int) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	base := time.Now().Add(-30 * 24 * time.Hour).UnixNano()
	events := fmt.Sprintf(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)
INSERT INTO events (seq, source, id, vendor, type, time, received, severity, title, subject, raw)
SELECT i, src, 'evt_' || i, src, typ, %d + i * 2000000000, %d + i * 2000000000, sev,
	'Event ' || i || ': ' || typ || ' on host-' || (i %% 977), 'subj_' || (i %% 10007),
	'{"id":"evt_' || i || '","type":"' || typ || '","data":{"n":' || i || '}}'
FROM (SELECT i,
	CASE i %% 3 WHEN 0 THEN 'secureagentics' WHEN 1 THEN 'agility' ELSE 'antly' END AS src,
	CASE i %% 4 WHEN 0 THEN 'policy.violated' WHEN 1 THEN 'alert.triggered' WHEN 2 THEN 'agent.registered' ELSE 'analysis_done' END AS typ,
	CASE i %% 5 WHEN 0 THEN 'info' WHEN 1 THEN 'low' WHEN 2 THEN 'medium' WHEN 3 THEN 'high' ELSE 'critical' END AS sev
	FROM n)`, n, base, base)
	deliveries := fmt.Sprintf(`INSERT INTO deliveries (id, event_seq, rule, action_index, sink, action, status, attempts, created, window_start, next_at, updated, last_error, result)
SELECT seq, seq, 'archive-everything', 0, 'archive', '{}',
	CASE seq %% 3 WHEN 0 THEN 'failed' ELSE 'delivered' END, 1, received, received, received, received + 1000000000,
	CASE seq %% 3 WHEN 0 THEN 'archive: disk full' ELSE '' END, ''
FROM events`)
	for _, q := range []string{events, deliveries, "ANALYZE"} {
		if err := st.ExecOnWriter(ctx, q); err != nil {
			b.Fatalf("fill: %v", err)
		}
	}
	b.Logf("stored %d events and %d deliveries in %v", n, n, time.Since(start).Round(time.Millisecond))
}

// BenchmarkMillionEvents measures a page of each list over a million
// stored events (SQLite), through the handlers, authentication included:
//
//	go test ./console -run '^$' -bench MillionEvents -v
//
// Keyset pagination makes the ten-thousandth page as fast as the first. A
// filter reads newest first until it has a page, so one that few events
// match reads many: "events text no match" reads them all.
// The overview counts every delivery by status (Store.SinkStats), a scan:
// "overview uncounted" is a load that counts, "overview" one within the
// time the counts are kept.
func BenchmarkMillionEvents(b *testing.B) {
	st, err := sqlite.Open(bridge.StoreConfig{Path: filepath.Join(b.TempDir(), "bridge.db"), Sync: "normal"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	fillMillion(b, st, millionEvents)
	e := newEnv(b, st)
	deep := encodeCursor(eventCursor, millionEvents/2)
	deepD := encodeCursor(deliveryCursor, millionEvents/2)
	for _, c := range []struct{ name, path string }{
		{"events page", "/events"},
		{"events page 10000", "/events?cursor=" + deep},
		{"events source", "/events?source=agility"},
		{"events source+severity", "/events?source=antly&severity=critical"},
		{"events type", "/events?type=agent.registered"},
		{"events text", "/events?text=host-97"},
		{"events text no match", "/events?text=no-such-text"}, // scans every event: LIKE has no index
		{"event", "/events/agility/evt_400000"},
		{"deliveries page", "/deliveries"},
		{"deliveries failed deep", "/deliveries?status=failed&cursor=" + deepD},
		{"api events", "/api/v1/events"},
		{"api events 10000", "/api/v1/events?cursor=" + deep},
		{"api events source", "/api/v1/events?source=secureagentics&limit=50"},
		{"api deliveries failed", "/api/v1/deliveries?status=failed"},
		{"overview", "/"},
		{"overview uncounted", "/"},
	} {
		b.Run(c.name, func(b *testing.B) {
			uncounted := strings.HasSuffix(c.name, "uncounted")
			r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8081"+c.path, nil)
			r.SetBasicAuth(testUser, testPassword)
			for b.Loop() {
				if uncounted {
					e.h.(*console).stats.forget() // every load counts the deliveries
				}
				w := httptest.NewRecorder()
				e.h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("%s: %d %s", c.path, w.Code, w.Body.String())
				}
				if strings.HasPrefix(c.path, "/events?") && !strings.Contains(c.name, "no match") && !strings.Contains(w.Body.String(), `class="older"`) {
					b.Fatalf("%s: no next page", c.path)
				}
			}
		})
	}
}
