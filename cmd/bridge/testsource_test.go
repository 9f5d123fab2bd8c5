package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTestSourceOutput pins `bridge test --source`'s output, which the
// console's try page shares its findings with (rules.Try).
func TestTestSourceOutput(t *testing.T) {
	cfg := filepath.Join("..", "..", "rules.example.yaml")
	out, stderr, code := runCLI(t, "test", "-c", cfg, "--source", "agility", filepath.Join("..", "..", "examples", "agility", "analysis_failed.json"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	out = regexp.MustCompile(`"received": "[^"]+"`).ReplaceAllString(out, `"received": "X"`)
	for _, want := range []string{
		"Event:\n{\n  \"id\": \"5d0c2a8e-3f71-4c1b-9a36-8e2f4b7d1c90\",\n  \"source\": \"agility\",",
		"  \"received\": \"X\",\n",
		"\n\nRules:\n  archive-everything                       MATCH\n    -> archive: {}\n",
		"  agility-failures-to-jira                 MATCH\n    -> ops-jira: {\n",
		`         "summary": "AGILITY volte: 2 failed predictions in myfile.pcap"`,
		"  agility-errors-to-jira                   no match\n",
		"  violations-to-slack                      no match\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	_, stderr, code = runCLI(t, "test", "-c", cfg, "--source", "nope", filepath.Join("..", "..", "examples", "agility", "analysis_failed.json"))
	if code != 1 || !strings.Contains(stderr, `no source "nope" in `) {
		t.Errorf("unknown source: exit %d, %q", code, stderr)
	}
}
