package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeTime is a time as events prints it, which differs per run.
var readmeTime = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`)

// walkthroughStep is one command of the README's walkthrough and the
// answer the README shows for it.
type walkthroughStep struct {
	args []string
	want []string
}

// readmeWalkthrough reads the commands of "Five minutes with it" and the
// lines shown under each ("#   ..."). In those, a line "..." stands for any
// lines, a line "(...)" is a remark, and a remark after a line is dropped.
func readmeWalkthrough(t *testing.T) []walkthroughStep {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "## Five minutes with it")
	if i < 0 {
		t.Fatal("README.md has no section Five minutes with it")
	}
	text = text[i:]
	start := strings.Index(text, "```sh\n")
	end := strings.Index(text[start+6:], "```")
	var steps []walkthroughStep
	remark := regexp.MustCompile(`\s{2,}\([^)]*\)$`)
	for _, line := range strings.Split(text[start+6:start+6+end], "\n") {
		switch {
		case strings.HasPrefix(line, "go run ./cmd/bridge "):
			steps = append(steps, walkthroughStep{args: strings.Fields(strings.TrimPrefix(line, "go run ./cmd/bridge "))})
		case len(steps) > 0 && (strings.HasPrefix(line, "#   ") || line == "#"):
			l := remark.ReplaceAllString(strings.TrimPrefix(strings.TrimPrefix(line, "#"), "   "), "")
			switch trimmed := strings.TrimSpace(l); {
			case strings.HasPrefix(trimmed, "(") && strings.HasSuffix(trimmed, ")"):
			case strings.HasPrefix(trimmed, "..."):
				steps[len(steps)-1].want = append(steps[len(steps)-1].want, "...")
			default:
				steps[len(steps)-1].want = append(steps[len(steps)-1].want, normalizeLine(l))
			}
		}
	}
	if len(steps) < 8 {
		t.Fatalf("only %d commands in the walkthrough", len(steps))
	}
	return steps
}

func normalizeLine(l string) string {
	return strings.TrimRight(readmeTime.ReplaceAllString(l, "<time>"), " ")
}

// matchLines reports whether got is want, where a want line "..." stands
// for any number of lines.
func matchLines(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if want[0] == "..." {
		for i := 0; i <= len(got); i++ {
			if matchLines(want[1:], got[i:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && want[0] == got[0] && matchLines(want[1:], got[1:])
}

// TestReadmeWalkthrough runs every command of the README's walkthrough, in
// order, against `serve --dry-run` on a copy of rules.example.yaml, and
// checks that each prints what the README shows; then that the dry-run
// output is in serve's log, and that a second run answers duplicate, as
// the README says.
func TestReadmeWalkthrough(t *testing.T) {
	steps := readmeWalkthrough(t)
	dir := t.TempDir()
	example, err := os.ReadFile("../../rules.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "rules.example.yaml")
	if err := os.WriteFile(cfg, example, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	t.Setenv("BRIDGE_LISTEN", addr)
	t.Setenv("CONSOLE_LISTEN", freePort(t))
	p := startBridge(t, cfg, addr, "--dry-run")

	run := func(args []string) []string {
		args = append([]string(nil), args...)
		for i, a := range args {
			switch {
			case a == "rules.example.yaml":
				args[i] = cfg
			case strings.Contains(a, "127.0.0.1:8080"):
				args[i] = strings.ReplaceAll(a, "127.0.0.1:8080", addr)
			}
		}
		cmd := exec.Command(binPath, args...)
		cmd.Dir = "../.."
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		_ = cmd.Run() // the README shows what is printed; a refusal exits 1
		var lines []string
		for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			lines = append(lines, normalizeLine(l))
		}
		if len(lines) == 1 && lines[0] == "" {
			return nil
		}
		return lines
	}
	for _, st := range steps {
		var got []string
		for deadline := time.Now().Add(10 * time.Second); ; {
			got = run(st.args)
			// Deliveries run in the background: reading commands may
			// need a moment to show them delivered.
			if matchLines(st.want, got) || st.args[0] == "send" || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !matchLines(st.want, got) {
			t.Errorf("go run ./cmd/bridge %s\nprints:\n%s\nREADME.md shows:\n%s", strings.Join(st.args, " "), strings.Join(got, "\n"), strings.Join(st.want, "\n"))
		}
	}
	if !strings.Contains(p.logs.String(), `msg="dry run: would send" sink=ops-jira delivery=5 event=5d0c2a8e-3f71-4c1b-9a36-8e2f4b7d1c90 rule=agility-failures-to-jira request="POST https://example.atlassian.net/rest/api/2/issue {`) {
		t.Errorf("serve's log has no dry-run line for the Jira ticket as the README shows it:\n%s", p.logs.String())
	}
	// Running it again: the store persists, and every send is a duplicate.
	p.kill(t)
	startBridge(t, cfg, addr, "--dry-run")
	for _, st := range steps {
		if st.args[0] == "send" && contains(st.args, "-c") {
			if got := strings.Join(run(st.args), "\n"); !strings.Contains(got, `"status":"duplicate"`) {
				t.Errorf("second run: %s answers %s, want duplicate", strings.Join(st.args, " "), got)
			}
		}
	}
}
