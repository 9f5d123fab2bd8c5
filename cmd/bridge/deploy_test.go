package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Tests of deploy/: no Docker engine or systemd runs here, so these keep
// the files from drifting away from the binary; .ci/run adds
// `systemd-analyze verify deploy/bridge.service`.

// composeFile is the part of deploy/docker-compose.yml the tests read.
type composeFile struct {
	Services map[string]struct {
		Image       string                       `yaml:"image"`
		Build       *struct{ Dockerfile string } `yaml:"build"`
		Command     []string                     `yaml:"command"`
		Environment map[string]string            `yaml:"environment"`
		Volumes     []string                     `yaml:"volumes"`
	} `yaml:"services"`
}

// composeVars are the values the test gives the variables compose reads
// from .env.
var composeVars = map[string]string{
	"POSTGRES_PASSWORD":     "compose-test-password",
	"SECUREAGENTICS_SECRET": "compose-test-signing-secret",
	"AGILITY_TOKEN":         "compose-test-agility-token",
}

// composeRef is compose's ${NAME}, ${NAME:?message} and ${NAME:-default}.
var composeRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[?-])([^}]*))?\}`)

// interpolate does what compose does to a value with composeVars as the
// environment.
func interpolate(t *testing.T, s string) string {
	return composeRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := composeRef.FindStringSubmatch(ref)
		if v, ok := composeVars[m[1]]; ok {
			return v
		}
		if m[2] == ":-" {
			return m[3]
		}
		t.Errorf("docker-compose.yml uses ${%s}: give it a value in composeVars", m[1])
		return ""
	})
}

// commandExists reports whether run knows the command.
func commandExists(name string) bool {
	var out, errb bytes.Buffer
	run([]string{name, "-h"}, &out, &errb)
	return !strings.Contains(errb.String(), "unknown command")
}

// TestComposeConfig checks that every bridge service of
// deploy/docker-compose.yml runs a command the binary has, on
// bridge.compose.yaml mounted where BRIDGE_CONFIG says, and that the config
// validates with the environment compose gives it, is a PostgreSQL store
// on compose's database, and has no secret serve would refuse.
func TestComposeConfig(t *testing.T) {
	b, err := os.ReadFile("../../deploy/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatal(err)
	}
	pg, ok := cf.Services["postgres"]
	if !ok {
		t.Fatal("no postgres service")
	}
	bridges := 0
	var env map[string]string
	for name, svc := range cf.Services {
		if svc.Image != "bridge:local" {
			continue
		}
		bridges++
		if svc.Build == nil || svc.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s: not built from deploy/Dockerfile", name)
		}
		if len(svc.Command) == 0 || !commandExists(svc.Command[0]) {
			t.Errorf("%s: command %q: no such bridge command", name, svc.Command)
		}
		if !contains(svc.Volumes, "./bridge.compose.yaml:"+svc.Environment["BRIDGE_CONFIG"]+":ro") {
			t.Errorf("%s: bridge.compose.yaml is not mounted at BRIDGE_CONFIG (%s): %v", name, svc.Environment["BRIDGE_CONFIG"], svc.Volumes)
		}
		env = svc.Environment
	}
	if bridges != 3 {
		t.Fatalf("%d services run bridge:local, want migrate and two replicas", bridges)
	}

	// The config sees only what compose sets.
	cfgPath := "../../deploy/bridge.compose.yaml"
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(string(text), -1) {
		t.Setenv(m[1], "")
		os.Unsetenv(m[1])
	}
	for k, v := range env {
		t.Setenv(k, interpolate(t, v))
	}
	l, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatalf("bridge validate -c deploy/bridge.compose.yaml:\n%v", err)
	}
	if err := refuseExampleSecrets(l.cfg); err != nil {
		t.Errorf("serve would refuse it: %v", err)
	}
	if !l.cfg.Store.IsPostgres() {
		t.Fatal("the compose config's store is not PostgreSQL")
	}
	u, err := url.Parse(l.cfg.Store.Postgres.Value())
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := u.User.Password()
	if u.Hostname() != "postgres" || u.User.Username() != pg.Environment["POSTGRES_USER"] ||
		pass != interpolate(t, pg.Environment["POSTGRES_PASSWORD"]) || u.Path != "/"+pg.Environment["POSTGRES_DB"] {
		t.Errorf("store.postgres %s does not name the postgres service's database, user and password", u.Redacted())
	}
}

// TestDockerfileBuildsAsCI checks that the image's build stage runs the
// build command .ci/run runs, and that its health check is a bridge command.
func TestDockerfileBuildsAsCI(t *testing.T) {
	df, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	var build string
	var health []string
	sc := bufio.NewScanner(bytes.NewReader(df))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if c, ok := strings.CutPrefix(line, "RUN "); ok && strings.Contains(c, "go build") {
			build = c
		}
		if strings.HasPrefix(line, "CMD [\"/usr/local/bin/bridge\", ") {
			health = regexp.MustCompile(`"([^"]*)"`).FindAllString(line, -1)
		}
	}
	if build == "" {
		t.Fatal("deploy/Dockerfile has no RUN ... go build")
	}
	ciLines := strings.Split(string(ci), "\n")
	found := false
	for _, l := range ciLines {
		if strings.TrimSpace(l) == build {
			found = true
		}
	}
	if !found {
		t.Errorf(".ci/run does not run the Dockerfile's build command %q", build)
	}
	if len(health) < 2 || !commandExists(strings.Trim(health[1], `"`)) {
		t.Errorf("the HEALTHCHECK runs %v: no such bridge command", health)
	}
}

// TestSystemdUnit checks the unit's hardening and that serve takes its
// command line.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("../../deploy/bridge.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			unit[k] = append(unit[k], v)
		}
	}
	for k, want := range map[string]string{
		"User":            "bridge",
		"ProtectSystem":   "strict",
		"StateDirectory":  "bridge",
		"NoNewPrivileges": "yes",
		"ExecReload":      "/bin/kill -HUP $MAINPID",
	} {
		if !contains(unit[k], want) {
			t.Errorf("%s=%s is missing (have %v)", k, want, unit[k])
		}
	}
	exec := strings.Fields(unit["ExecStart"][0])
	if exec[0] != "/usr/local/bin/bridge" || exec[1] != "serve" {
		t.Fatalf("ExecStart=%v", exec)
	}
	if err := parseOnly(exec[1:]); err != nil {
		t.Errorf("serve does not take ExecStart's command line %v: %v", exec[1:], err)
	}
}

func TestHealthcheckCommand(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	srv := httptest.NewServer(mux)
	closed := httptest.NewServer(mux)
	closed.Close()
	defer srv.Close()
	for _, c := range []struct {
		name, url string
		want      int
	}{
		{"200", srv.URL + "/ok", 0},
		{"503", srv.URL + "/down", 1},
		{"redirect", srv.URL + "/moved", 1},
		{"nothing listening", closed.URL + "/ok", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run([]string{"healthcheck", "--url", c.url, "--timeout", "2s"}, &out, &errb); code != c.want {
				t.Errorf("exit %d, want %d\n%s%s", code, c.want, out.String(), errb.String())
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
