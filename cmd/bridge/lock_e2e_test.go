package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecondServeRefused: a second `bridge serve` on a store file another
// serve uses refuses to start, naming it; the read and replay commands work
// beside the first; once it is killed (-9: the kernel drops its lock),
// another serve starts.
func TestSecondServeRefused(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	cfg := e2eConfig(t, dir, addr, "")
	first := startBridge(t, cfg, addr)

	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte(e2eConfigText(freePort(t), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	// Without the lock it would serve (and deliver) beside the first: the
	// timeout turns that into a failure instead of a hang.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "serve", "-c", other)
	var stdout, stderrb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderrb
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	out, stderr := stdout.String(), stderrb.String()
	want := fmt.Sprintf("in use by another bridge serve (pid %d)", first.cmd.Process.Pid)
	if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "bridge.db.lock") {
		t.Fatalf("second serve: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, stderr, want)
	}
	for _, args := range [][]string{{"events", "-c", other}, {"deliveries", "-c", other}, {"replay", "-c", other, "--failed"}} {
		if _, stderr, code := runCLI(t, args...); code != 0 {
			t.Errorf("%s beside serve: exit %d: %s", args[0], code, stderr)
		}
	}
	first.kill(t)
	startBridge(t, cfg, addr)
}
