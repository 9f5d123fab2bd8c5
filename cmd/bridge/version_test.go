package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"bridge/bridge"
)

// versionFields reads `bridge version`'s output into its fields.
func versionFields(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	f := map[string]string{"first": lines[0]}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok {
			t.Fatalf("bridge version: line %q is not key: value\n%s", l, out)
		}
		f[k] = strings.TrimSpace(v)
	}
	return f
}

func TestVersionCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := versionFields(t, out.String())
	// A test binary carries no VCS information (go test stamps none), and
	// says so; TestVersionFromVCS checks a binary that has it.
	b := bridge.ReadBuildInfo(version)
	want := map[string]string{
		"first":       "bridge " + version,
		"revision":    b.Revision,
		"commit time": b.Time,
		"go version":  runtime.Version(),
		"platform":    runtime.GOOS + "/" + runtime.GOARCH,
	}
	if b.Revision == "" || b.Time == "" {
		t.Errorf("empty fields: %+v", b)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %q, want %q\n%s", k, got[k], w, out.String())
		}
	}
	if len(got) != len(want) {
		t.Errorf("fields: got %v, want %v", got, want)
	}
	if code := run([]string{"version", "extra"}, &out, &errb); code != 2 {
		t.Errorf("version with an argument: exit %d, want 2", code)
	}
}

// TestVersionFromVCS builds the binary with the Dockerfile's and CI's
// command, VCS stamping on, and checks that `bridge version` prints the
// checkout's commit, its time, and +dirty when the work tree has changes.
func TestVersionFromVCS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	gitOut := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = "../.."
		b, err := cmd.Output()
		if err != nil {
			t.Skipf("git %s: %v (not a git checkout?)", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(b))
	}
	head := gitOut("-c", "log.showsignature=false", "log", "-1", "--format=%H:%ct")
	rev, ct, _ := strings.Cut(head, ":")
	bin := filepath.Join(t.TempDir(), "bridge")
	build := exec.Command("go", "build", "-buildvcs=true", "-trimpath", "-ldflags=-s", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// Go calls a tree with any change git reports, untracked files too, modified.
	if gitOut("status", "--porcelain") != "" {
		rev += "+dirty"
	}
	sec, err := strconv.ParseInt(ct, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	got := versionFields(t, string(out))
	for k, w := range map[string]string{
		"first":       "bridge " + version,
		"revision":    rev,
		"commit time": time.Unix(sec, 0).UTC().Format(time.RFC3339),
		"go version":  runtime.Version(),
	} {
		if got[k] != w {
			t.Errorf("%s: got %q, want %q\n%s", k, got[k], w, out)
		}
	}
}

// TestBuildInfoMetricServed checks that serve exports bridge_build_info.
func TestBuildInfoMetricServed(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	p := startBridge(t, e2eConfig(t, dir, addr, ""), addr)
	body := scrape(t, p.addr)
	out, _, _ := runCLI(t, "version")
	v := versionFields(t, out)
	want := fmt.Sprintf(`bridge_build_info{goversion=%q,revision=%q,version=%q} 1`, v["go version"], v["revision"], version)
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(body) {
		t.Errorf("/metrics has no %s:\n%s", want, grepLines(body, "bridge_build_info"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
