package bridge

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"
)

func TestLoadConsole(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	hash := string(h)
	t.Run("good", func(t *testing.T) {
		cfg, err := Load(writeConfig(t, "console:\n  listen: \"10.0.0.5:8081\"\n  users:\n    admin: '"+hash+"'\n"), fakeTypes())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Console == nil || cfg.Console.Listen != "10.0.0.5:8081" || cfg.Console.Users["admin"].Value() != hash {
			t.Fatalf("console: %+v", cfg.Console)
		}
		if s := fmt.Sprintf("%v %+v", cfg.Console, cfg.Console); strings.Contains(s, hash) {
			t.Errorf("the hash prints: %s", s)
		}
	})
	t.Run("absent", func(t *testing.T) {
		cfg, err := Load(writeConfig(t, "server:\n  listen: \":8080\"\n"), fakeTypes())
		if err != nil || cfg.Console != nil {
			t.Fatalf("no console section: %+v, %v", cfg.Console, err)
		}
	})
	t.Run("loopback without users", func(t *testing.T) {
		for _, l := range []string{"127.0.0.1:8081", "localhost:8081", "[::1]:8081"} {
			if _, err := Load(writeConfig(t, "console:\n  listen: \""+l+"\"\n"), fakeTypes()); err != nil {
				t.Errorf("%s: %v", l, err)
			}
		}
	})
	for _, c := range []struct {
		name, text string
		line       int
		want       string
	}{
		{"no listen", "console:\n  users: {}\n", 2, "console: listen is required"},
		{"not host:port", "console:\n  listen: \"8081\"\n", 2, `listen "8081" is not host:port`},
		{"bad port", "console:\n  listen: \"127.0.0.1:http8\"\n", 2, `port "http8" is not a number`},
		{"same as server", "server:\n  listen: \"127.0.0.1:8080\"\nconsole:\n  listen: \"127.0.0.1:8080\"\n", 4, "server.listen's too"},
		{"every interface without users", "console:\n  listen: \":8081\"\n", 2, "reachable from other machines, and no users are set"},
		{"an address without users", "console:\n  listen: \"192.0.2.7:8081\"\n  users: {}\n", 2, "no users are set"},
		{"not a hash", "console:\n  listen: \"127.0.0.1:8081\"\n  users:\n    admin: hunter2\n", 4, "console: users: admin: not a bcrypt hash"},
		{"a colon in a name", "console:\n  listen: \"127.0.0.1:8081\"\n  users:\n    'ad:min': '" + hash + "'\n", 4, "not a user name basic auth can carry"},
		{"unknown key", "console:\n  listen: \"127.0.0.1:8081\"\n  tls: true\n", 3, `unknown key "tls"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, c.text), fakeTypes())
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Load: %v, want problems", err)
			}
			for _, p := range ps {
				if p.Line == c.line && strings.Contains(p.Msg, c.want) {
					if strings.Contains(p.Msg, "hunter2") {
						t.Errorf("the problem quotes the hash: %s", p.Msg)
					}
					return
				}
			}
			t.Errorf("no problem at line %d with %q:\n%v", c.line, c.want, err)
		})
	}
}

func TestIsLoopbackListen(t *testing.T) {
	for l, want := range map[string]bool{
		"127.0.0.1:1": true, "127.3.2.1:1": true, "[::1]:1": true, "localhost:1": true,
		":1": false, "0.0.0.0:1": false, "[::]:1": false, "10.0.0.1:1": false, "bridge.example:1": false, "nonsense": false,
	} {
		if got := IsLoopbackListen(l); got != want {
			t.Errorf("IsLoopbackListen(%q) = %v", l, got)
		}
	}
}

func TestWebhookStats(t *testing.T) {
	w := NewWebhookStats()
	now := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	w.Add("sa", OutcomeAccepted, now)
	w.Add("sa", OutcomeAccepted, now.Add(-10*time.Minute))
	w.Add("sa", OutcomeUnauthorized, now.Add(-time.Hour))
	w.Add("sa", OutcomeAccepted, now.Add(-23*time.Hour))
	w.Add("sa", OutcomeAccepted, now.Add(-25*time.Hour)) // too old
	w.Add("ag", OutcomeInvalid, now.Add(-2*time.Hour))
	got := w.Last24h(now)
	if len(got) != 2 || got[0].Source != "ag" || got[1].Source != "sa" {
		t.Fatalf("sources %+v", got)
	}
	sa := got[1]
	if sa.Total("") != 4 || sa.Total(OutcomeAccepted) != 3 || sa.Total(OutcomeUnauthorized) != 1 {
		t.Errorf("sa totals: all %d, accepted %d, unauthorized %d", sa.Total(""), sa.Total(OutcomeAccepted), sa.Total(OutcomeUnauthorized))
	}
	acc := sa.Hourly[OutcomeAccepted]
	if acc[WebhookHours-1] != 2 || acc[0] != 1 || sa.Hourly[OutcomeUnauthorized][WebhookHours-2] != 1 {
		t.Errorf("hourly: %v / %v", acc, sa.Hourly[OutcomeUnauthorized])
	}
	// A day later the buckets are reused, not added to.
	later := now.Add(25 * time.Hour)
	w.Add("sa", OutcomeAccepted, later)
	if got := w.Last24h(later); len(got) != 1 || got[0].Total("") != 1 {
		t.Errorf("a day later: %+v", got)
	}
}

func TestServerCountsWebhooksByHour(t *testing.T) {
	ts := newTestServer(t)
	body := `{"id":"e1","type":"x.y","data":{}}`
	ts.post(t, "POST", "/webhooks/sa", body, map[string]string{"X-Secureagentics-Signature": sign(body)})
	ts.post(t, "POST", "/webhooks/sa", body, map[string]string{"X-Secureagentics-Signature": "bad"})
	ts.post(t, "POST", "/webhooks/nope", body, nil) // unknown sources are not counted
	got := ts.bridge.WebhookStats().Last24h(time.Now())
	if len(got) != 1 || got[0].Source != "sa" || got[0].Total(OutcomeAccepted) != 1 || got[0].Total(OutcomeUnauthorized) != 1 {
		t.Fatalf("webhook stats %+v", got)
	}
	if ts.bridge.Runtime() == nil || ts.bridge.Runtime().Sources["sa"] == nil {
		t.Error("Runtime() does not return the runtime set")
	}
}

func TestMetricsReloadedAndRuleCounts(t *testing.T) {
	m := NewMetrics(nil)
	t0 := time.Now().Add(-time.Minute)
	m.Reloaded(t0, nil)
	m.Reloaded(t0.Add(time.Second), errors.New("bridge.yaml:3: bad"))
	got := m.LastReload()
	if !got.At.Equal(t0.Add(time.Second)) || got.Err != "bridge.yaml:3: bad" || !got.LastSuccess.Equal(t0) {
		t.Errorf("last reload %+v", got)
	}
	if v := testutil.ToFloat64(m.ReloadSuccess); v != 0 {
		t.Errorf("bridge_config_last_reload_successful = %v after a refused reload", v)
	}
	m.RuleMatches.WithLabelValues("a").Add(3)
	m.RuleErrors.WithLabelValues("b").Inc()
	c := m.RuleCounts()
	if c["a"].Matches != 3 || c["b"].Errors != 1 || c["a"].Errors != 0 {
		t.Errorf("rule counts %+v", c)
	}
}
