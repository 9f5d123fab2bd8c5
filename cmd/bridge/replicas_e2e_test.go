package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"bridge/bridge/store/postgres/pgtest"
	"bridge/sinks/jira/jirafake"
)

// The end-to-end tests of several `bridge serve` replicas on one PostgreSQL
// database (SPEC 9): every guarantee of SPEC 1 must hold across them. Each
// test has a database of its own (pgtest) and is skipped without
// BRIDGE_TEST_POSTGRES.

// replicaConfigText is one replica's config: the e2e sources (so post and
// e2eAuth work), the PostgreSQL store db with the given lease, and the
// sinks and rules. The replicas of a test differ in server.listen only (and
// in the takeover test, in a header naming the replica to the stand-in).
func replicaConfigText(addr, db, lease, sinks, rules string) string {
	return fmt.Sprintf(`server:
  listen: %q
store:
  postgres: %q
  lease: %s
%ssinks:
%srules:
%s`, addr, db, lease, e2eSources(), sinks, rules)
}

// The file sink of the replica tests, relative to each replica's own
// directory, and the rule sending every event to it.
const (
	replicaArchive = `  - name: archive
    type: file
    path: out/events.jsonl
    concurrency: 2
    retry: {initial: 100ms, max_interval: 1s, max_age: 5m}
`
	replicaArchiveRule = `  - name: archive-all
    when: 'true'
    actions:
      - sink: archive
`
)

// replica is one running `bridge serve` of a test.
type replica struct {
	*proc
	name string // a, b, c...
	dir  string
	cfg  string
	pid  int
}

// startReplicas writes each replica's config (text(i, addr) for replica i
// listening on addr) into a directory of its own, starts them all at once,
// so their schema migrations race as they may in production, and waits
// until every one answers /readyz with 200.
func startReplicas(t *testing.T, n int, text func(i int, addr string) string) []*replica {
	t.Helper()
	reps := make([]*replica, n)
	for i := range reps {
		dir := t.TempDir()
		addr := freePort(t)
		cfg := filepath.Join(dir, "bridge.yaml")
		if err := os.WriteFile(cfg, []byte(text(i, addr)), 0o600); err != nil {
			t.Fatal(err)
		}
		p := &proc{addr: addr, logs: &syncBuffer{}, done: make(chan error, 1)}
		p.cmd = newServeCmd(cfg, p.logs)
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.done <- p.cmd.Wait() }()
		r := &replica{proc: p, name: string(rune('a' + i)), dir: dir, cfg: cfg, pid: p.cmd.Process.Pid}
		t.Cleanup(func() {
			p.cmd.Process.Kill()
			err := <-p.done
			p.done <- err
			if t.Failed() {
				t.Logf("replica %s log (the end):\n%s", r.name, logTail(p.logs.String(), 150))
			}
		})
		reps[i] = r
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range reps {
		for readyz(r.addr) != http.StatusOK {
			if !r.alive() {
				t.Fatalf("replica %s exited:\n%s", r.name, r.logs.String())
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %s not ready:\n%s", r.name, r.logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return reps
}

// alive reports whether the replica's process still runs.
func (r *replica) alive() bool {
	select {
	case err := <-r.done:
		r.done <- err
		return false
	default:
		return syscall.Kill(r.pid, 0) == nil
	}
}

// logTail is the last n lines of a log.
func logTail(log string, n int) string {
	lines := strings.SplitAfter(log, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// readyz is the status of addr's /readyz, 0 when it does not answer.
func readyz(addr string) int {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitUntil polls cond every 50ms for up to d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// storedEvents counts the stored events by "source/id" (`bridge events
// --json`).
func storedEvents(t *testing.T, cfg string) map[string]int {
	t.Helper()
	out, stderr, code := runCLI(t, "events", "-c", cfg, "--limit", "0", "--json")
	if code != 0 {
		t.Fatalf("events: exit %d: %s", code, stderr)
	}
	stored := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct{ ID, Source string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("events --json line %q: %v", sc.Text(), err)
		}
		stored[ev.Source+"/"+ev.ID]++
	}
	return stored
}

// archived sums the file sink's output of every replica: writes per event
// id, and lines.
func archived(t *testing.T, reps []*replica) (map[string]int, int) {
	t.Helper()
	all := map[string]int{}
	total := 0
	for _, r := range reps {
		seen, lines := fileEvents(t, filepath.Join(r.dir, "out", "events.jsonl"))
		for id, n := range seen {
			all[id] += n
		}
		total += lines
	}
	return all, total
}

// metricSum sums the samples of a metric in a /metrics text whose labels
// contain every one of labels (e.g. `sink="archive"`).
func metricSum(text, name string, labels ...string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		lbl := line[len(name):i]
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(lbl, l)
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil && ok {
			sum += v
		}
	}
	return sum
}

// TestReplicaSameEventAtOnce posts each of 200 events to two replicas at
// the same instant: one `accepted` and one `duplicate` each time, one
// event stored, one delivery, one line in the file sinks' output.
func TestReplicaSameEventAtOnce(t *testing.T) {
	db := pgtest.TestDatabase(t)
	reps := startReplicas(t, 2, func(_ int, addr string) string {
		return replicaConfigText(addr, db, "30s", replicaArchive, replicaArchiveRule)
	})
	client := &http.Client{Timeout: 10 * time.Second}
	const n = 200
	payloads := examplePayloads(t, n)
	won := map[string]int{}      // accepted answers per replica
	acked := map[string]string{} // "source/id" -> event id
	overlapped := 0              // pairs whose two requests were in flight together
	start := time.Now()
	for _, pl := range payloads {
		var (
			wg      sync.WaitGroup
			status  [2]int
			ans     [2]map[string]string
			errs    [2]error
			from    [2]time.Time
			to      [2]time.Time
			barrier = make(chan struct{})
		)
		for k, r := range reps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-barrier
				from[k] = time.Now()
				status[k], ans[k], errs[k] = post(client, r.addr, pl)
				to[k] = time.Now()
			}()
		}
		close(barrier)
		wg.Wait()
		for k := range reps {
			if errs[k] != nil || status[k] != http.StatusOK {
				t.Fatalf("event %s/%s to replica %s: %d %v %v", pl.source, pl.id, reps[k].name, status[k], ans[k], errs[k])
			}
		}
		got := []string{ans[0]["status"], ans[1]["status"]}
		slices.Sort(got)
		if got[0] != "accepted" || got[1] != "duplicate" || ans[0]["id"] != ans[1]["id"] {
			t.Fatalf("event %s/%s posted to both replicas at once: answers %v and %v, want one accepted and one duplicate of one id",
				pl.source, pl.id, ans[0], ans[1])
		}
		for k := range reps {
			if ans[k]["status"] == "accepted" {
				won[reps[k].name]++
			}
		}
		if from[0].Before(to[1]) && from[1].Before(to[0]) {
			overlapped++
		}
		acked[pl.source+"/"+ans[0]["id"]] = ans[0]["id"]
	}
	t.Logf("%d events posted to 2 replicas at once in %v: accepted by a %d, by b %d; both requests in flight together %d times",
		n, time.Since(start).Round(time.Millisecond), won["a"], won["b"], overlapped)

	cfg := reps[0].cfg
	stored := storedEvents(t, cfg)
	if len(stored) != n {
		t.Errorf("%d events stored, want %d", len(stored), n)
	}
	for k, c := range stored {
		if c != 1 {
			t.Errorf("event %s stored %d times", k, c)
		}
	}
	for k := range acked {
		if stored[k] != 1 {
			t.Errorf("acknowledged event %s stored %d times", k, stored[k])
		}
	}

	// One set of deliveries, all carried out.
	var ds []delivery
	waitUntil(t, 30*time.Second, "every delivery delivered", func() bool {
		ds = listDeliveries(t, cfg)
		for _, d := range ds {
			if d.Status != "delivered" {
				return false
			}
		}
		return len(ds) >= n
	})
	per := map[string]int{}
	for _, d := range ds {
		per[d.EventID]++
	}
	if len(ds) != n || len(per) != n {
		t.Errorf("%d deliveries of %d events, want %d of %d", len(ds), len(per), n, n)
	}
	for id, c := range per {
		if c != 1 {
			t.Errorf("event %s has %d deliveries", id, c)
		}
	}

	// Each event written once, by one replica or the other.
	seen, lines := archived(t, reps)
	if lines != n {
		t.Errorf("the file sinks wrote %d lines, want %d", lines, n)
	}
	for _, id := range acked {
		if seen[id] != 1 {
			t.Errorf("event %s written %d times", id, seen[id])
		}
	}
	var accepted, dups float64
	for _, r := range reps {
		m := scrape(t, r.addr)
		accepted += metricSum(m, "bridge_webhooks_total", `outcome="accepted"`)
		dups += metricSum(m, "bridge_webhooks_total", `outcome="duplicate"`)
	}
	if accepted != n || dups != n {
		t.Errorf("bridge_webhooks_total over the replicas: %v accepted, %v duplicate, want %d each", accepted, dups, n)
	}
}

// flight is one request the collector stand-in received for an event.
type flight struct {
	replica    string
	start, end time.Time // end is zero while in flight
	ok         bool      // answered 204 to a client still waiting
}

func (f flight) String() string {
	end := "in flight"
	if !f.end.IsZero() {
		end = f.end.Format("15:04:05.000")
	}
	return fmt.Sprintf("%s %s-%s ok=%v", f.replica, f.start.Format("15:04:05.000"), end, f.ok)
}

// collector is an http sink's stand-in for the takeover test: it records
// every request's event id, replica (X-Replica) and interval. Requests of
// replica a hang until their connection closes (a kill -9 of a); the first
// slowB requests of replica b take slowFor, longer than the lease, before
// they succeed; all others succeed at once.
type collector struct {
	slowB   int
	slowFor time.Duration
	quit    chan struct{} // ends every hang when the test ends

	mu      sync.Mutex
	byID    map[string][]*flight
	hungA   int // a's requests in flight
	slowedB []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var ev struct {
		ID string `json:"id"`
	}
	if err != nil || json.Unmarshal(body, &ev) != nil || ev.ID == "" {
		http.Error(w, "want one JSON event object", http.StatusBadRequest)
		return
	}
	f := &flight{replica: r.Header.Get("X-Replica"), start: time.Now()}
	c.mu.Lock()
	c.byID[ev.ID] = append(c.byID[ev.ID], f)
	slow := false
	switch {
	case f.replica == "a":
		c.hungA++
	case f.replica == "b" && len(c.slowedB) < c.slowB:
		c.slowedB = append(c.slowedB, ev.ID)
		slow = true
	}
	c.mu.Unlock()
	if f.replica == "a" {
		select {
		case <-r.Context().Done():
		case <-c.quit:
		}
		c.mu.Lock()
		f.end = time.Now()
		c.hungA--
		c.mu.Unlock()
		return
	}
	if slow {
		select {
		case <-time.After(c.slowFor):
		case <-r.Context().Done():
		case <-c.quit:
		}
	}
	w.WriteHeader(http.StatusNoContent)
	c.mu.Lock()
	f.end, f.ok = time.Now(), r.Context().Err() == nil
	c.mu.Unlock()
}

// snapshot copies what the collector recorded.
func (c *collector) snapshot() map[string][]flight {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]flight, len(c.byID))
	for id, fs := range c.byID {
		for _, f := range fs {
			out[id] = append(out[id], *f)
		}
	}
	return out
}

// TestReplicaKillTakeover kills (-9) one of three replicas while it holds
// claims on deliveries whose requests hang, under load, with a lease (3s)
// shorter than the sink's timeout (10s). The others take its deliveries
// over once their leases run out; a live replica whose requests take
// longer than the lease keeps its claims (renewed); no delivery is ever
// sent by two replicas at once, and every acknowledged event is delivered
// exactly once (the dead replica's requests were never answered).
func TestReplicaKillTakeover(t *testing.T) {
	db := pgtest.TestDatabase(t)
	const lease = 3 * time.Second
	col := &collector{slowB: 3, slowFor: 5 * time.Second, quit: make(chan struct{}), byID: map[string][]*flight{}}
	srv := httptest.NewServer(col)
	t.Cleanup(srv.Close)                  // after the replicas are killed
	t.Cleanup(func() { close(col.quit) }) // before srv.Close
	reps := startReplicas(t, 3, func(i int, addr string) string {
		sink := fmt.Sprintf(`  - name: collector
    type: http
    url: %s/ingest
    headers: {X-Replica: %c}
    timeout: 10s
    concurrency: 4
    retry: {initial: 200ms, max_interval: 1s, max_age: 5m}
`, srv.URL, 'a'+i)
		rule := "  - name: all-to-collector\n    when: 'true'\n    actions:\n      - sink: collector\n"
		return replicaConfigText(addr, db, lease.String(), sink, rule)
	})
	a := reps[0]

	// 300 events at about 100/s, round robin over the replicas; a request a
	// dead replica cannot take goes to the next one, as a load balancer
	// does.
	payloads := examplePayloads(t, 300)
	client := &http.Client{Timeout: 10 * time.Second}
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		refused  int
		ackedByA atomic.Int64
	)
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				pl := payloads[i]
				ok := false
				for k := 0; k < len(reps) && !ok; k++ {
					r := reps[(i+k)%len(reps)]
					status, ans, err := post(client, r.addr, pl)
					// A duplicate after a failed try is an event a stored
					// before it was killed, its answer lost: a vendor's
					// retry finds it stored.
					if err == nil && status == http.StatusOK && (ans["status"] == "accepted" || k > 0 && ans["status"] == "duplicate") {
						ok = true
						mu.Lock()
						acked[ans["id"]] = true
						mu.Unlock()
						if r == a {
							ackedByA.Add(1)
						}
					}
				}
				if !ok {
					mu.Lock()
					refused++
					mu.Unlock()
				}
			}
		}()
	}
	var killedAt time.Time
	hungAtKill := 0
	tick := time.NewTicker(10 * time.Millisecond)
	for i := range payloads {
		if i == 100 {
			// a holds claims on as many deliveries as it has workers, all
			// hanging: kill it now.
			waitUntil(t, 15*time.Second, "replica a's requests to hang", func() bool {
				col.mu.Lock()
				defer col.mu.Unlock()
				return col.hungA >= 4
			})
			col.mu.Lock()
			hungAtKill = col.hungA
			col.mu.Unlock()
			a.kill(t)
			killedAt = time.Now()
		}
		<-tick.C
		work <- i
	}
	tick.Stop()
	close(work)
	wg.Wait()
	if refused > 0 {
		t.Errorf("%d events refused by every replica", refused)
	}

	// Every acknowledged event delivered.
	waitUntil(t, 45*time.Second, "every acknowledged event delivered", func() bool {
		got := col.snapshot()
		for id := range acked {
			if !slices.ContainsFunc(got[id], func(f flight) bool { return f.ok }) {
				return false
			}
		}
		return true
	})
	done := time.Since(killedAt)
	check := reps[1].cfg
	waitUntil(t, 30*time.Second, "no delivery pending", func() bool {
		for _, d := range listDeliveries(t, check) {
			if d.Status != "delivered" {
				return false
			}
		}
		return true
	})

	// Let the requests still in flight end, so every interval is known; one
	// that does not end counts as in flight until now.
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		inFlight := false
		for _, fs := range col.snapshot() {
			inFlight = inFlight || slices.ContainsFunc(fs, func(f flight) bool { return f.end.IsZero() })
		}
		if !inFlight {
			break
		}
	}
	now := time.Now()
	got := col.snapshot()
	var takenOver, sentTwice []string // a's hung deliveries, sent again by b or c
	for id, fs := range got {
		slices.SortFunc(fs, func(x, y flight) int { return x.start.Compare(y.start) })
		oks := 0
		for i, f := range fs {
			if f.ok {
				oks++
			}
			if f.end.IsZero() {
				t.Errorf("event %s: a request of replica %s never ended", id, f.replica)
				fs[i].end = now
			}
			if i > 0 && f.start.Before(fs[i-1].end) {
				t.Errorf("event %s sent by replica %s at %s while replica %s's request (%s to %s) was in flight",
					id, f.replica, f.start.Format("15:04:05.000"), fs[i-1].replica, fs[i-1].start.Format("15:04:05.000"), fs[i-1].end.Format("15:04:05.000"))
			}
		}
		if oks != 1 {
			t.Errorf("event %s delivered %d times: %v", id, oks, fs)
		}
		if fs[0].replica == "a" {
			if len(fs) < 2 || fs[1].start.Sub(killedAt) < lease/2 {
				t.Errorf("replica a's delivery of %s taken over too early: %v (killed at %s)", id, fs, killedAt.Format("15:04:05.000"))
			}
			takenOver = append(takenOver, id)
		}
		if len(fs) > 1 && fs[0].replica != "a" {
			sentTwice = append(sentTwice, id)
		}
	}
	for id := range acked {
		if _, ok := got[id]; !ok {
			t.Errorf("acknowledged event %s never reached the collector", id)
		}
	}
	for _, id := range col.slowedB {
		if fs := got[id]; len(fs) != 1 || fs[0].replica != "b" {
			t.Errorf("replica b's slow delivery of %s (%v, longer than the lease) was not b's alone: %v", id, col.slowFor, fs)
		}
	}
	var takeovers, claimed float64
	for _, r := range reps[1:] {
		m := scrape(t, r.addr)
		takeovers += metricSum(m, "bridge_lease_takeovers_total", `sink="collector"`)
		claimed += metricSum(m, "bridge_deliveries_claimed", `sink="collector"`)
	}
	if takeovers == 0 || takeovers < float64(len(takenOver)) {
		t.Errorf("bridge_lease_takeovers_total over the survivors %v, want at least the %d deliveries taken over from a", takeovers, len(takenOver))
	}
	if claimed != 0 {
		t.Errorf("bridge_deliveries_claimed over the survivors %v once all is delivered, want 0", claimed)
	}
	t.Logf("%d acknowledged (%d by a before its kill); a killed with %d requests hanging; %d of a's deliveries taken over, takeovers counted %v; b's %d slow deliveries kept by b; %d events sent more than once otherwise; all delivered %v after the kill",
		len(acked), ackedByA.Load(), hungAtKill, len(takenOver), takeovers, len(col.slowedB), len(sentTwice), done.Round(time.Millisecond))
	if len(sentTwice) > 0 {
		t.Errorf("events sent twice though no replica holding them died: %v", sentTwice)
	}
}

// TestReplicaJiraOneTicket delivers 50 events of one dedupe key through
// three replicas at once, each with four Jira workers, while Jira's search
// never shows the new issue: only the key lock and key-to-issue memory in
// the database can keep it to one ticket.
func TestReplicaJiraOneTicket(t *testing.T) {
	db := pgtest.TestDatabase(t)
	fake := jirafake.New(jirafake.Options{Flavor: jirafake.Cloud, User: jiraUser, Token: jiraToken, SearchLag: time.Hour, Latency: 5 * time.Millisecond})
	t.Cleanup(fake.Close)
	sink := strings.Replace(jiraSink(fake.URL, jiraUser), fastRetry, "{initial: 100ms, max_interval: 500ms, max_age: 1m}", 1) + "    concurrency: 4\n"
	reps := startReplicas(t, 3, func(_ int, addr string) string {
		return replicaConfigText(addr, db, "30s", sink, jiraRule(""))
	})

	const n = 50
	client := &http.Client{Timeout: 10 * time.Second}
	barrier := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]string, n)
	for i := 0; i < n; i++ {
		pl := example(t, "ag", "analysis_failed.json", fmt.Sprintf("jira-rep-%d", i), nil)
		r := reps[i%len(reps)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-barrier
			status, ans, err := post(client, r.addr, pl)
			if err != nil || status != http.StatusOK || ans["status"] != "accepted" {
				errs[i] = fmt.Sprintf("post %s to %s: %d %v %v", pl.id, r.name, status, ans, err)
			}
		}()
	}
	start := time.Now()
	close(barrier)
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Fatal(e)
		}
	}
	var ds []delivery
	waitUntil(t, 40*time.Second, "50 Jira deliveries finished", func() bool {
		ds = listDeliveries(t, reps[0].cfg)
		finished := 0
		for _, d := range ds {
			if d.Sink == "ops-jira" && d.Status != "pending" {
				finished++
			}
		}
		return finished == n
	})
	took := time.Since(start)
	issues := fake.Issues()
	if len(issues) != 1 {
		t.Fatalf("%d issues for one dedupe key, want 1: %+v", len(issues), issues)
	}
	is := issues[0]
	if len(is.Comments) != n-1 {
		t.Errorf("%d comments, want %d", len(is.Comments), n-1)
	}
	if c := fake.Count(jirafake.RouteCreate); c != 1 {
		t.Errorf("%d creates sent, want 1", c)
	}
	for _, d := range ds {
		if d.Status != "delivered" || d.Result != is.Key {
			t.Errorf("delivery %s of %s: %s, result %q, last_error %q; want delivered to %s", d.ID, d.EventID, d.Status, d.Result, d.LastError, is.Key)
		}
	}
	t.Logf("50 events of one key over 3 replicas x 4 workers: 1 issue (%s), %d comments, %d creates, all delivered in %v",
		is.Key, len(is.Comments), fake.Count(jirafake.RouteCreate), took.Round(time.Millisecond))
}

// webhookAnswer is one webhook's outcome in the database cut test.
type webhookAnswer struct {
	at     time.Time // when the request was sent
	done   time.Time // when it was answered
	status int       // 0: no answer
	body   map[string]string
	id     string
}

// TestReplicaDatabaseCut cuts the database (a TCP proxy between the
// replicas and PostgreSQL) for 10s under load: webhooks answer 503 and
// /readyz 503 while it is down, no process exits, and once it is back
// /readyz is 200 again and every acknowledged event is stored once and
// delivered, with no restart.
func TestReplicaDatabaseCut(t *testing.T) {
	db := pgtest.TestDatabase(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	proxy := pgtest.NewProxy(t, u.Host)
	via := pgtest.WithHost(t, db, proxy.Addr())
	reps := startReplicas(t, 2, func(_ int, addr string) string {
		return replicaConfigText(addr, via, "3s", replicaArchive, replicaArchiveRule)
	})
	// The checks read the database directly, not through the proxy.
	check := filepath.Join(t.TempDir(), "check.yaml")
	if err := os.WriteFile(check, []byte(replicaConfigText("127.0.0.1:0", db, "3s", replicaArchive, replicaArchiveRule)), 0o600); err != nil {
		t.Fatal(err)
	}

	// Load: 4 posters, each about 25 events/s, alternating replicas, from
	// before the cut until after the restore.
	const cutFor = 10 * time.Second
	payloads := examplePayloads(t, 3000)
	client := &http.Client{Timeout: 15 * time.Second}
	var (
		mu      sync.Mutex
		answers []webhookAnswer
		next    atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(40 * time.Millisecond):
				}
				i := int(next.Add(1)) - 1
				if i >= len(payloads) {
					return
				}
				r := reps[i%len(reps)]
				a := webhookAnswer{at: time.Now()}
				a.status, a.body, _ = post(client, r.addr, payloads[i])
				a.done = time.Now()
				if a.status == http.StatusOK {
					a.id = a.body["id"]
				}
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}
		}()
	}
	logsAt := func() []int {
		out := make([]int, len(reps))
		for i, r := range reps {
			out[i] = len(r.logs.String())
		}
		return out
	}

	time.Sleep(2 * time.Second)
	before := logsAt()
	cutAt := time.Now()
	proxy.Cut()
	// /readyz: 503 on every replica within 3s, and then until the restore.
	ready := map[int]int{}
	for _, r := range reps {
		waitUntil(t, 3*time.Second, "replica "+r.name+"'s /readyz to fail", func() bool { return readyz(r.addr) == http.StatusServiceUnavailable })
	}
	for time.Since(cutAt) < cutFor {
		for _, r := range reps {
			ready[readyz(r.addr)]++
		}
		time.Sleep(200 * time.Millisecond)
	}
	during := logsAt()
	restoredAt := time.Now()
	proxy.Restore()
	for _, r := range reps {
		waitUntil(t, 15*time.Second, "replica "+r.name+"'s /readyz back to 200", func() bool { return readyz(r.addr) == http.StatusOK })
	}
	readyAt := time.Now()
	readyAgain := readyAt.Sub(restoredAt)
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	for status, c := range ready {
		if status != http.StatusServiceUnavailable {
			t.Errorf("/readyz answered %d %d times while the database was cut", status, c)
		}
	}
	for _, r := range reps {
		if !r.alive() {
			t.Fatalf("replica %s (pid %d) exited:\n%s", r.name, r.pid, logTail(r.logs.String(), 100))
		}
	}

	// Count the answers; while the database is down, only 503 with the
	// error body (a request sent at the cut may still have been stored).
	counts := map[string]int{}
	ackedIDs := map[string]bool{}
	for _, a := range answers {
		phase := "before"
		switch {
		case a.at.After(restoredAt):
			phase = "after"
		case a.at.After(cutAt):
			phase = "during"
		}
		counts[fmt.Sprintf("%s %d", phase, a.status)]++
		switch {
		case a.status == http.StatusOK:
			ackedIDs[a.id] = true
			// Sent after the cut and answered before the restore: the
			// database could not have stored it.
			if a.at.After(cutAt.Add(100*time.Millisecond)) && a.done.Before(restoredAt) {
				t.Errorf("a webhook sent %v after the cut was acknowledged while the database was still cut: %v", a.at.Sub(cutAt).Round(time.Millisecond), a.body)
			}
		case a.status == http.StatusServiceUnavailable:
			if a.body["error"] != "cannot store the event now, retry later" {
				t.Errorf("503 body %v", a.body)
			}
			if a.at.Before(cutAt.Add(-time.Second)) || a.at.After(readyAt) {
				t.Errorf("a webhook sent %v after the cut (restored %v after it, ready %v after that) was refused: %v",
					a.at.Sub(cutAt).Round(time.Millisecond), restoredAt.Sub(cutAt).Round(time.Millisecond), readyAgain.Round(time.Millisecond), a.body)
			}
		default:
			t.Errorf("a webhook (%s the cut) answered %d %v", phase, a.status, a.body)
		}
	}
	if counts["during 503"] == 0 || counts["after 200"] == 0 {
		t.Errorf("answers %v: want 503s during the cut and 200s after it", counts)
	}

	// Every acknowledged event stored once, and delivered.
	stored := storedEvents(t, check)
	byID := map[string]int{}
	for k, c := range stored {
		byID[k[strings.Index(k, "/")+1:]] += c
	}
	for id := range ackedIDs {
		if byID[id] != 1 {
			t.Errorf("acknowledged event %s stored %d times", id, byID[id])
		}
	}
	deliveredIn := time.Now()
	waitUntil(t, 30*time.Second, "every acknowledged event in the file sinks", func() bool {
		seen, _ := archived(t, reps)
		for id := range ackedIDs {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
	waitUntil(t, 30*time.Second, "no delivery pending", func() bool {
		for _, d := range listDeliveries(t, check) {
			if d.Status != "delivered" {
				return false
			}
		}
		return true
	})
	seen, lines := archived(t, reps)
	twice := 0
	for _, c := range seen {
		if c > 1 {
			twice++
		}
	}
	var logLines, warnLines []int
	for i, r := range reps {
		cut := r.logs.String()[before[i]:during[i]]
		logLines = append(logLines, strings.Count(cut, "\n"))
		w := 0
		for _, l := range strings.Split(cut, "\n") {
			if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
				w++
			}
		}
		warnLines = append(warnLines, w)
		// A line per refused webhook or per poll would be hundreds here.
		if w > 25 {
			t.Errorf("replica %s logged %d warnings and errors in the %v cut (%d webhooks refused in all):\n%s", r.name, w, cutFor, counts["during 503"], logTail(cut, 40))
		}
		if strings.Contains(r.logs.String(), "panic") {
			t.Errorf("replica %s logged a panic", r.name)
		}
		if !r.alive() {
			t.Errorf("replica %s exited", r.name)
		}
	}
	t.Logf("answers by phase and status: %v; %d acknowledged, %d stored; /readyz during the cut %v, back to 200 %v after the restore; delivered %v after; file lines %d (%d events written twice); log lines during the cut per replica %v (warn/error %v); pids %d %d alive",
		counts, len(ackedIDs), len(stored), ready, readyAgain.Round(time.Millisecond), time.Since(deliveredIn).Round(time.Millisecond), lines, twice, logLines, warnLines, reps[0].pid, reps[1].pid)
}
