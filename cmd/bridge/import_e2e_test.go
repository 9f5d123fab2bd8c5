package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"bridge/bridge/store/postgres"
	"bridge/bridge/store/postgres/pgtest"
	"bridge/sinks/jira/jirafake"
)

// The end-to-end tests of `bridge migrate` and `bridge store import`: real
// binaries, a real SQLite store written by `bridge serve`, and the
// PostgreSQL server of BRIDGE_TEST_POSTGRES (the tests that need it skip
// without it).

// importPassword is the password of the unreachable postgres URL the
// refusal tests use: it must never be printed.
const importPassword = "hunter2-import-secret"

// pgStoreText replaces the SQLite store section of a sinkConfigText config
// with a postgres one.
func pgStoreText(t *testing.T, sqliteText, url string) string {
	t.Helper()
	const sqliteStore = "store:\n  path: data/bridge.db\n  sync: normal\n"
	if !strings.Contains(sqliteText, sqliteStore) {
		t.Fatalf("the config has no %q", sqliteStore)
	}
	return strings.Replace(sqliteText, sqliteStore, "store:\n  postgres: "+url+"\n", 1)
}

// unreachablePG is a postgres URL, with a password, where nothing listens.
func unreachablePG(t *testing.T) string {
	return "postgres://bridge:" + importPassword + "@" + freePort(t) + "/bridge?sslmode=disable&connect_timeout=2"
}

// writeFile writes text to dir/name and returns its path.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// stopServe stops a serve with SIGTERM, as an operator does before the
// import, and waits for it to exit.
func stopServe(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("serve exited after SIGTERM: %v\n%s", err, p.logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
}

// sameDeliveries lists the deliveries of a config as JSON objects without
// their ids (which an import renumbers), sorted.
func sameDeliveries(t *testing.T, cfg string) []string {
	t.Helper()
	out, stderr, code := runCLI(t, "deliveries", "-c", cfg, "--json", "--limit", "0")
	if code != 0 {
		t.Fatalf("deliveries -c %s: exit %d: %s", cfg, code, stderr)
	}
	var ds []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("deliveries --json line %q: %v", line, err)
		}
		delete(m, "id")
		b, _ := json.Marshal(m)
		ds = append(ds, string(b))
	}
	slices.Sort(ds)
	return ds
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestStoreImportE2E moves a bridge from SQLite to PostgreSQL: a store with
// a remembered Jira ticket, a Slack thread, a failed delivery and
// deliveries pending to a sink that is down is imported (twice), and the
// bridge on PostgreSQL delivers the pending ones once the sink is up,
// comments on the same ticket and replies in the same thread.
func TestStoreImportE2E(t *testing.T) {
	pgURL := pgtest.TestDatabase(t)
	// Search never shows a new issue: only the imported memory of key to
	// issue can keep the repeat from opening a second ticket.
	jira := jirafake.New(jirafake.Options{Flavor: jirafake.Cloud, User: jiraUser, Token: jiraToken, SearchLag: time.Hour})
	defer jira.Close()
	slack := slackFake()
	defer slack.Close()
	collectorAddr := freePort(t) // nothing listens there until the collector comes up
	sinks := jiraSink(jira.URL, jiraUser) + slackSink(slack) + `  - name: collector
    type: http
    url: http://` + collectorAddr + `/ingest
    retry: {initial: 100ms, max_interval: 300ms, max_age: 1h}
`
	rules := jiraRule("") + `  - name: violations-to-slack
    when: type == "policy.violated"
    actions:
      - sink: secops-slack
        channel: '#secops'
        text: '{{ .title }}'
        thread_by: '{{ .data.agent_id }}'
  - name: alerts-to-nowhere
    when: type == "alert.triggered"
    actions:
      - sink: secops-slack
        channel: '#nowhere'
        text: 'alert {{ .subject }}'
  - name: to-collector
    when: type != "agent.registered"
    actions:
      - sink: collector
`
	addr := freePort(t)
	text := sinkConfigText(addr, "", sinks, rules)
	dir := t.TempDir()
	sqliteCfg := writeFile(t, dir, "bridge.yaml", text)
	pgCfg := writeFile(t, dir, "pg.yaml", pgStoreText(t, text, pgURL))
	dbPath := filepath.Join(dir, "data", "bridge.db")

	// The single bridge on SQLite.
	p := startBridge(t, sqliteCfg, addr)
	mustPost(t, addr, example(t, "ag", "analysis_failed.json", "imp-jira-1", nil))
	mustPost(t, addr, example(t, "sa", "policy.violated.json", "imp-slack-1", nil))
	mustPost(t, addr, example(t, "sa", "alert.triggered.json", "imp-alert-1", nil))
	// More events than one import batch; no rule matches them.
	const bulk = 300
	for i := range bulk {
		mustPost(t, addr, example(t, "sa", "agent.registered.json", fmt.Sprintf("imp-bulk-%d", i), nil))
	}
	wantDelivered(t, waitDelivery(t, sqliteCfg, "ops-jira", "imp-jira-1"))
	wantDelivered(t, waitDelivery(t, sqliteCfg, "secops-slack", "imp-slack-1"))
	if d := waitDelivery(t, sqliteCfg, "secops-slack", "imp-alert-1"); d.Status != "failed" {
		t.Fatalf("the delivery to an unknown channel is %s, want failed", d.Status)
	}
	issues := jira.Issues()
	if len(issues) != 1 {
		t.Fatalf("%d issues, want 1", len(issues))
	}
	ticket := issues[0].Key
	eventually(t, "the collector's deliveries retried", func() bool {
		n := 0
		for _, d := range listDeliveries(t, sqliteCfg) {
			if d.Sink == "collector" && d.Status == "pending" && d.Attempts >= 2 {
				n++
			}
		}
		return n == 3
	})
	stopServe(t, p)

	sqliteEvents, stderr, code := runCLI(t, "events", "-c", sqliteCfg, "--limit", "0", "--json")
	if code != 0 {
		t.Fatalf("events: %s", stderr)
	}
	sqliteDeliveries := sameDeliveries(t, sqliteCfg)
	if len(sqliteDeliveries) != 6 {
		t.Fatalf("%d deliveries in the SQLite store, want 6:\n%s", len(sqliteDeliveries), strings.Join(sqliteDeliveries, "\n"))
	}
	sum := fileSum(t, dbPath)

	// The import, then the same again.
	out, stderr, code := runCLI(t, "store", "import", "-c", pgCfg, dbPath)
	if code != 0 {
		t.Fatalf("store import: exit %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("bridge store import:\n%s", out)
	const events = bulk + 3
	for _, want := range []string{
		fmt.Sprintf("%s: %d events, 6 deliveries, 2 state keys\n", dbPath, events),
		fmt.Sprintf("imported %d events (0 already there), 6 deliveries (0 already there), 2 state keys (0 already there)\n", events),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("store import output lacks %q:\n%s", want, out)
		}
	}
	out, stderr, code = runCLI(t, "store", "import", "-c", pgCfg, dbPath)
	if code != 0 {
		t.Fatalf("store import again: exit %d\n%s\n%s", code, out, stderr)
	}
	if want := fmt.Sprintf("imported 0 events (%d already there), 0 deliveries (6 already there), 0 state keys (2 already there): nothing new to copy\n", events); !strings.Contains(out, want) {
		t.Errorf("second store import output lacks %q:\n%s", want, out)
	}
	if fileSum(t, dbPath) != sum {
		t.Errorf("store import changed the SQLite file")
	}

	// PostgreSQL has what SQLite had, field for field: events (raw bodies
	// and order included) and deliveries (status, attempts, times, result,
	// last error, action), each once.
	pgEvents, stderr, code := runCLI(t, "events", "-c", pgCfg, "--limit", "0", "--json")
	if code != 0 {
		t.Fatalf("events -c pg: %s", stderr)
	}
	if pgEvents != sqliteEvents {
		t.Errorf("events differ after the import:\nsqlite:\n%s\npostgres:\n%s", cut(sqliteEvents, 2000), cut(pgEvents, 2000))
	}
	if n := strings.Count(pgEvents, "\n"); n != events {
		t.Errorf("%d events in postgres, want %d", n, events)
	}
	if got := sameDeliveries(t, pgCfg); !slices.Equal(got, sqliteDeliveries) {
		t.Errorf("deliveries differ after the import:\nsqlite:\n%s\npostgres:\n%s", strings.Join(sqliteDeliveries, "\n"), strings.Join(got, "\n"))
	}
	before := map[string]delivery{}
	for _, d := range listDeliveries(t, pgCfg) {
		before[d.EventID+"/"+d.Sink] = d
	}

	// The bridge on PostgreSQL; the collector comes up.
	startBridge(t, pgCfg, addr)
	var mu sync.Mutex
	received := map[string]int{}
	ln, err := net.Listen("tcp", collectorAddr)
	if err != nil {
		t.Fatalf("the collector's address was taken meanwhile: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev struct{ ID string }
		json.Unmarshal(b, &ev)
		mu.Lock()
		received[ev.ID]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	for _, id := range []string{"imp-jira-1", "imp-slack-1", "imp-alert-1"} {
		d := waitDelivery(t, pgCfg, "collector", id)
		wantDelivered(t, d)
		if was := before[id+"/collector"]; d.Attempts <= was.Attempts {
			t.Errorf("collector delivery of %s: %d attempts, not more than the %d it had", id, d.Attempts, was.Attempts)
		}
		mu.Lock()
		n := received[id]
		mu.Unlock()
		if n == 0 {
			t.Errorf("the collector never received %s", id)
		}
	}

	// A repeat of the ticketed key comments on the same ticket; a repeat of
	// the thread's key replies in the same thread.
	mustPost(t, addr, example(t, "ag", "analysis_failed.json", "imp-jira-2", nil))
	d := waitDelivery(t, pgCfg, "ops-jira", "imp-jira-2")
	wantDelivered(t, d)
	if d.Result != ticket {
		t.Errorf("repeat after the import: result %q, want the ticket %s", d.Result, ticket)
	}
	if n := len(jira.Issues()); n != 1 {
		t.Errorf("%d issues after a repeat on the imported store, want 1", n)
	}
	if got, _ := jira.Issue(ticket); len(got.Comments) != 1 {
		t.Errorf("%d comments on %s, want 1", len(got.Comments), ticket)
	}
	if n := jira.Count(jirafake.RouteCreate); n != 1 {
		t.Errorf("%d creates sent to Jira, want 1", n)
	}
	mustPost(t, addr, example(t, "sa", "policy.violated.json", "imp-slack-2", nil))
	wantDelivered(t, waitDelivery(t, pgCfg, "secops-slack", "imp-slack-2"))
	msgs := slack.Messages()
	if len(msgs) != 2 {
		t.Errorf("%d slack messages after the import, want 2", len(msgs))
	} else if msgs[0].ThreadTS != "" || msgs[1].ThreadTS != msgs[0].TS {
		t.Errorf("slack thread_ts %q then %q, want the second in the thread of %s", msgs[0].ThreadTS, msgs[1].ThreadTS, msgs[0].TS)
	}

	// Every delivery once: the imported six and the four new ones.
	if n := len(listDeliveries(t, pgCfg)); n != 10 {
		t.Errorf("%d deliveries in postgres, want 10", n)
	}
}

// TestStoreImportRefusals: import refuses a config that is not postgres,
// and a path that is missing, not a bridge store or in use by a serve,
// without creating or changing the file, and never prints the URL's
// password. None of it needs a database.
func TestStoreImportRefusals(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	sqliteCfg := e2eConfig(t, dir, addr, "")
	// Only the store section is read: the broken rule does not matter.
	pgCfg := writeFile(t, dir, "pg.yaml", "store:\n  postgres: "+unreachablePG(t)+"\nrules:\n  - name: broken\n    when: nonsense ==\n")
	dbPath := filepath.Join(dir, "data", "bridge.db")

	junk := writeFile(t, dir, "junk.db", strings.Repeat("not a database at all\n", 50))
	empty := writeFile(t, dir, "empty.db", "")
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"no path", []string{"store", "import", "-c", pgCfg}, "give one SQLite store file", 2},
		{"two paths", []string{"store", "import", "-c", pgCfg, junk, empty}, "give one SQLite store file", 2},
		{"not import", []string{"store", "export", "-c", pgCfg}, "the only command is import", 2},
		{"sqlite config", []string{"store", "import", "-c", sqliteCfg, junk}, "is SQLite", 1},
		{"missing file", []string{"store", "import", "-c", pgCfg, filepath.Join(dir, "nope.db")}, "nope.db: no such file", 1},
		{"not a database", []string{"store", "import", "-c", pgCfg, junk}, "junk.db is not a bridge store", 1},
		{"empty file", []string{"store", "import", "-c", pgCfg, empty}, "empty.db is not a bridge store", 1},
		{"directory", []string{"store", "import", "-c", pgCfg, dir}, "is a directory", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", code, tc.code, tc.want, out, stderr)
			}
			if strings.Contains(out+stderr, importPassword) {
				t.Errorf("the password was printed:\n%s%s", out, stderr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.db")); !os.IsNotExist(err) {
		t.Errorf("a missing file was created: %v", err)
	}
	if b, _ := os.ReadFile(empty); len(b) != 0 {
		t.Errorf("the empty file was written: %d bytes", len(b))
	}

	// A running serve's store is refused, and the serve goes on.
	p := startBridge(t, sqliteCfg, addr)
	mustPost(t, addr, example(t, "sa", "policy.violated.json", "refuse-1", nil))
	out, stderr, code := runCLI(t, "store", "import", "-c", pgCfg, dbPath)
	if code != 1 || !strings.Contains(stderr, "in use") || !strings.Contains(stderr, "serve") {
		t.Errorf("import of a store in use: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	mustPost(t, addr, example(t, "sa", "policy.violated.json", "refuse-2", nil))
	wantDelivered(t, waitDelivery(t, sqliteCfg, "archive", "refuse-2"))
	p.kill(t)
	if _, err := os.Stat(dbPath + "-wal"); err != nil {
		t.Fatalf("kill -9 left no log behind: %v", err)
	}

	// Once it is stopped, even by kill -9 with its log left behind, the
	// file passes, and the unreachable database fails the import without
	// its password.
	out, stderr, code = runCLI(t, "store", "import", "-c", pgCfg, dbPath)
	if code != 1 || !strings.Contains(stderr, "postgres store") {
		t.Errorf("import into an unreachable database: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if strings.Contains(out+stderr, importPassword) {
		t.Errorf("the password was printed:\n%s%s", out, stderr)
	}

	out, _, _ = runCLI(t, "help")
	for _, want := range []string{"bridge migrate -c FILE", "bridge store import -c FILE SQLITE_PATH", "stop the serve"} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %q", want)
		}
	}
	out, _, _ = runCLI(t, "store", "import", "-h")
	if !strings.Contains(out, "Stop the bridge serve that uses SQLITE_PATH first") || !strings.Contains(out, "--config") {
		t.Errorf("store import -h:\n%s", out)
	}
}

// TestMigrateE2E: migrate creates the schema and says from which version,
// does nothing the second time, refuses a newer schema, and has nothing to
// do for SQLite.
func TestMigrateE2E(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		cfg := e2eConfig(t, dir, "127.0.0.1:0", "")
		out, stderr, code := runCLI(t, "migrate", "-c", cfg)
		if code != 0 || !strings.Contains(out, "nothing to migrate") {
			t.Fatalf("migrate with an SQLite store: exit %d\n%s\n%s", code, out, stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
			t.Errorf("migrate created the SQLite store: %v", err)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		cfg := writeFile(t, t.TempDir(), "pg.yaml", "store:\n  postgres: "+unreachablePG(t)+"\n")
		out, stderr, code := runCLI(t, "migrate", "-c", cfg)
		if code != 1 || !strings.Contains(stderr, "postgres store") {
			t.Errorf("migrate with the database down: exit %d\n%s\n%s", code, out, stderr)
		}
		if strings.Contains(out+stderr, importPassword) {
			t.Errorf("the password was printed:\n%s%s", out, stderr)
		}
	})

	t.Run("postgres", func(t *testing.T) {
		url := pgtest.TestDatabase(t)
		// Only the store section is read: the broken rule does not matter.
		cfg := writeFile(t, t.TempDir(), "pg.yaml", "store:\n  postgres: "+url+"\nrules:\n  - name: broken\n    when: nonsense ==\n")
		out, stderr, code := runCLI(t, "migrate", "-c", cfg)
		if want := fmt.Sprintf("postgres store: schema at version %d (was 0)\n", postgres.SchemaVersion); code != 0 || out != want {
			t.Fatalf("migrate a fresh database: exit %d, want 0 and %q\n%s\n%s", code, want, out, stderr)
		}
		out, stderr, code = runCLI(t, "migrate", "-c", cfg)
		if want := fmt.Sprintf("postgres store: schema at version %[1]d (was %[1]d: nothing to do)\n", postgres.SchemaVersion); code != 0 || out != want {
			t.Fatalf("migrate again: exit %d, want 0 and %q\n%s\n%s", code, want, out, stderr)
		}
		if out, stderr, code := runCLI(t, "events", "-c", cfg); code != 0 || !strings.Contains(out, "SOURCE") {
			t.Errorf("events on the migrated database: exit %d\n%s\n%s", code, out, stderr)
		}

		// A newer bridge's schema is refused and left alone.
		newer := postgres.SchemaVersion + 1
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `INSERT INTO bridge_schema (version) VALUES ($1)`, newer); err != nil {
			t.Fatal(err)
		}
		out, stderr, code = runCLI(t, "migrate", "-c", cfg)
		if code != 1 || out != "" || !strings.Contains(stderr, fmt.Sprintf("schema is version %d", newer)) || !strings.Contains(stderr, "upgrade the bridge") {
			t.Errorf("migrate a newer schema: exit %d, want 1 and the store's message\n%s\n%s", code, out, stderr)
		}
		var have int
		if err := conn.QueryRow(ctx, `SELECT max(version) FROM bridge_schema`).Scan(&have); err != nil || have != newer {
			t.Errorf("schema version %d after the refusal (%v), want %d", have, err, newer)
		}
	})
}
