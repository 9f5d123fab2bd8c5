package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// parseOnly parses a command line as run would, flags and arguments,
// without running the command.
func parseOnly(args []string) error {
	c, rest, err := newRoot().Find(args)
	if err != nil {
		return err
	}
	if c == c.Root() {
		return fmt.Errorf("no command in %q", args)
	}
	if err := c.ParseFlags(rest); err != nil {
		return err
	}
	return c.ValidateArgs(c.Flags().Args())
}

// leafCommands are the commands that run (bridge serve, bridge antly
// subscribe), not those that only hold others.
func leafCommands() []*cobra.Command {
	var out []*cobra.Command
	walk(newRoot(), func(c *cobra.Command) {
		if c.HasParent() && !c.HasSubCommands() {
			out = append(out, c)
		}
	})
	return out
}

// commandWords is c's command line below bridge: ["antly", "subscribe"].
func commandWords(c *cobra.Command) []string {
	return strings.Fields(strings.TrimPrefix(c.CommandPath(), "bridge"))
}

// TestCommandTree holds every command to the same rules: a description,
// an example, arguments checked, flags one line each, and -c for the
// config file and nothing else.
func TestCommandTree(t *testing.T) {
	for _, c := range leafCommands() {
		t.Run(c.CommandPath(), func(t *testing.T) {
			if c.Short == "" || strings.Contains(c.Short, "\n") {
				t.Errorf("Short %q: want one line", c.Short)
			}
			if !strings.Contains(c.Example, "bridge "+strings.Join(commandWords(c), " ")) {
				t.Errorf("Example %q does not run the command", c.Example)
			}
			if c.Args == nil {
				t.Error("no Args: extra arguments would be dropped")
			}
			c.Flags().VisitAll(func(f *pflag.Flag) {
				if strings.Contains(f.Usage, "\n") || f.Usage == "" {
					t.Errorf("--%s: usage %q: want one line", f.Name, f.Usage)
				}
				switch {
				case f.Shorthand == "c" && f.Name != "config":
					t.Errorf("-c is --%s: -c is the config file everywhere", f.Name)
				case f.Name == "config" && f.Shorthand != "c":
					t.Errorf("--config has no -c")
				case f.Shorthand != "" && f.Shorthand != "c" && f.Shorthand != "n":
					t.Errorf("-%s: a new shorthand; say in the README why", f.Shorthand)
				}
			})
		})
	}
}

// TestHelp: bridge help COMMAND, bridge COMMAND -h and --help print the
// command's description, its usage, each flag on one line and an example,
// on stdout, and exit 0.
func TestHelp(t *testing.T) {
	for _, c := range leafCommands() {
		words := commandWords(c)
		var flags []string
		c.Flags().VisitAll(func(f *pflag.Flag) { flags = append(flags, "--"+f.Name) })
		for _, args := range [][]string{
			append([]string{"help"}, words...),
			append(append([]string{}, words...), "-h"),
			append(append([]string{}, words...), "--help"),
		} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				out, stderr, code := runCLI(t, args...)
				if code != 0 || stderr != "" {
					t.Fatalf("exit %d, stderr %q", code, stderr)
				}
				if want := c.CommandPath() + ": " + c.Short + "\n"; !strings.HasPrefix(out, want) {
					t.Errorf("does not start with %q:\n%s", want, out)
				}
				for _, want := range []string{"\nUsage:\n  " + c.UseLine() + "\n", "\nExample:\n  ", "\n  -h, --help "} {
					if !strings.Contains(out, want) {
						t.Errorf("lacks %q:\n%s", want, out)
					}
				}
				_, flagPart, _ := strings.Cut(out, "\nFlags:\n")
				flagPart, _, _ = strings.Cut(flagPart, "\n\n")
				lines := strings.Split(flagPart, "\n")
				if len(lines) != len(flags)+1 { // and -h
					t.Errorf("%d flag lines for %d flags and -h:\n%s", len(lines), len(flags), flagPart)
				}
				for _, f := range flags {
					if !regexp.MustCompile(`(?m)^ +(-., )?` + f + ` .*\S`).MatchString(flagPart) {
						t.Errorf("no line for %s:\n%s", f, flagPart)
					}
				}
			})
		}
	}
}

// TestHelpOfGroups: the commands that hold others list them.
func TestHelpOfGroups(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"antly", "-h"}, []string{"bridge antly subscribe -c FILE --source NAME", "bridge antly unsubscribe -c FILE", "bridge antly sync -c FILE"}},
		{[]string{"help", "antly"}, []string{"bridge antly subscribe -c FILE --source NAME"}},
		{[]string{"store", "--help"}, []string{"bridge store import -c FILE SQLITE_PATH"}},
		{[]string{"jira", "-h"}, []string{"bridge jira check -c FILE [--sink NAME]"}},
	} {
		out, stderr, code := runCLI(t, tc.args...)
		if code != 0 || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, stderr)
		}
		for _, want := range tc.want {
			if !strings.Contains(out, "\n  "+want) {
				t.Errorf("%v lacks %q:\n%s", tc.args, want, out)
			}
		}
	}
}

// TestRootHelp: bridge help lists every command with its usage line; bare
// bridge prints the same on stderr and exits 2; --version is version.
func TestRootHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		out, stderr, code := runCLI(t, args...)
		if code != 0 || stderr != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr)
		}
		for _, c := range leafCommands() {
			if !strings.Contains(out, "  "+c.UseLine()+" ") && !strings.Contains(out, "  "+c.UseLine()+"\n") {
				t.Errorf("%v lacks %q", args, c.UseLine())
			}
		}
	}
	help, _, _ := runCLI(t, "help")
	out, stderr, code := runCLI(t)
	if code != 2 || out != "" || stderr != help {
		t.Errorf("bare bridge: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	want, _, _ := runCLI(t, "version")
	out, stderr, code = runCLI(t, "--version")
	if code != 0 || out != want || stderr != "" {
		t.Errorf("--version: exit %d, %q %q, want %q", code, out, stderr, want)
	}
}

// TestUsageErrors: a wrong command line exits 2 with one line saying what
// is wrong and one saying where the help is; nothing runs.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := e2eConfig(t, dir, "127.0.0.1:1", "")
	payload := filepath.Join("..", "..", "examples", "secureagentics", "policy.violated.json")
	for _, tc := range []struct {
		args       []string
		want, help string
	}{
		{[]string{"serve", "--bogus"}, "unknown flag --bogus", "serve"},
		{[]string{"serve", "-c", cfg, "-x"}, "unknown flag -x", "serve"},
		{[]string{"serve", "-config", cfg}, "-config: long flags take two dashes: --config", "serve"},
		{[]string{"events", "-c", cfg, "-source", "sa"}, "-source: long flags take two dashes: --source", "events"},
		{[]string{"events", "-c", cfg, "-limit=3"}, "-limit=3: long flags take two dashes: --limit", "events"},
		{[]string{"serve", "rules.example.yaml"}, "unexpected argument rules.example.yaml: did you mean -c rules.example.yaml?", "serve"},
		{[]string{"events", "-c", cfg, "extra"}, `unexpected argument "extra"`, "events"},
		{[]string{"jira", "check", "-c", cfg, "x.yml"}, "did you mean -c x.yml?", "jira check"},
		{[]string{"version", "extra"}, `unexpected argument "extra"`, "version"},
		{[]string{"bogus"}, `unknown command "bogus"`, ""},
		{[]string{"sevre"}, `unknown command "sevre" (did you mean serve`, ""},
		{[]string{"bogus", "-h"}, `unknown command "bogus"`, ""},
		{[]string{"help", "bogus"}, `unknown command "bogus"`, ""},
		{[]string{"antly"}, "give a command: subscribe, unsubscribe or sync", "antly"},
		{[]string{"antly", "frob", "-c", cfg}, `unknown command "frob": the commands are subscribe, unsubscribe, sync`, "antly"},
		{[]string{"antly", "subscribe", "-c", cfg}, "give --source NAME", "antly subscribe"},
		{[]string{"store", "export", "-c", cfg}, `unknown command "export": the only command is import`, "store"},
		{[]string{"send", "--url", "http://127.0.0.1:1/", "--vendor", "bogus", payload}, `--vendor: "bogus" is not agility, secureagentics or antly`, "send"},
		{[]string{"send", payload}, "give -c FILE and --source NAME, or --url URL and --vendor VENDOR", "send"},
		{[]string{"send", "-c", cfg, "--source", "sa", "--secret", "typed", payload}, "drop --secret", "send"},
		{[]string{"send", "-c", cfg, "--source", "sa"}, "give one PAYLOAD.json", "send"},
		{[]string{"bench", "--url", "http://127.0.0.1:1/", "--vendor", "secureagentics", "-c", "4"}, "-c is the config file: for 4 requests in flight, give --concurrency 4", "bench"},
		{[]string{"bench", "-c", "4", "--source", "sa"}, "give --concurrency 4", "bench"},
		{[]string{"bench", "--url", "http://127.0.0.1:1/", "--vendor", "secureagentics", "-C", "4"}, "unknown flag -C", "bench"},
		{[]string{"bench", "--url", "http://127.0.0.1:1/", "--vendor", "secureagentics", "-c", cfg}, "-c FILE goes with --source NAME", "bench"},
		{[]string{"bench", "--url", "http://127.0.0.1:1/", "--vendor", "bogus"}, `--vendor: "bogus" is not`, "bench"},
		{[]string{"deliveries", "-c", cfg, "--status", "nope"}, `--status: "nope" is not pending, delivered or failed`, "deliveries"},
		{[]string{"events", "-c", cfg, "--limit", "abc"}, `--limit: "abc" is not a whole number`, "events"},
		{[]string{"events", "-c", cfg, "--source"}, "--source needs a value", "events"},
		{[]string{"serve", "-c", cfg, "--log-level", "loud"}, `--log-level: "loud" is not debug, info, warn or error`, "serve"},
		{[]string{"test", "-c", cfg}, "give one TESTS.yaml, or --source NAME and one PAYLOAD.json", "test"},
		{[]string{"test", "rules.yaml", "tests.yaml"}, "not 2 arguments (the config file goes with -c FILE)", "test"},
		{[]string{"replay", "-c", cfg}, "give delivery ids or --failed, not both", "replay"},
		{[]string{"replay", "-c", cfg, "--failed", "3"}, "give delivery ids or --failed, not both", "replay"},
		{[]string{"replay", "-c", cfg, "abc"}, `"abc" is not a delivery id`, "replay"},
		{[]string{"validate", "-c", cfg, cfg}, "give the config file with -c FILE or as arguments, not both", "validate"},
		{[]string{"completion"}, "give one shell: bash, zsh, fish or powershell", "completion"},
		{[]string{"completion", "tcsh"}, "give one shell", "completion"},
		{[]string{"healthcheck", "--timeout", "soon"}, `--timeout: "soon" is not a duration`, "healthcheck"},
		{[]string{"hash-password", "--cost", "99"}, "--cost must be from 4 to 31", "hash-password"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, stderr, code := runCLI(t, tc.args...)
			hint := fmt.Sprintf("run 'bridge help%s' for usage\n", strings.TrimSuffix(" "+tc.help, " "))
			lines := strings.SplitAfter(stderr, "\n")
			if code != 2 || out != "" || len(lines) != 3 || !strings.Contains(lines[0], tc.want) || lines[1] != hint {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 2, %q and then %q", code, out, stderr, tc.want, hint)
			}
		})
	}
}

// TestValidatePositional: bridge validate FILE... checks those files (as
// promtool check config does), not the default config.
func TestValidatePositional(t *testing.T) {
	dir := t.TempDir()
	good := e2eConfig(t, dir, "127.0.0.1:0", "")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("server: {listen: 1}\nbogus: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := func(args ...string) (string, string, int) {
		t.Helper()
		c := exec.Command(binPath, args...)
		c.Env = append(os.Environ(), "BRIDGE_CONFIG="+good)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		err := c.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return out.String(), errb.String(), code
	}
	if out, stderr, code := cmd("validate"); code != 0 || !strings.HasPrefix(out, good+": ok: ") {
		t.Errorf("validate ($BRIDGE_CONFIG): exit %d, %q %q", code, out, stderr)
	}
	if out, stderr, code := cmd("validate", bad); code != 1 || !strings.Contains(stderr, bad+":") || out != "" {
		t.Errorf("validate BAD: exit %d, %q %q; want its problems", code, out, stderr)
	}
	out, stderr, code := cmd("validate", good, bad)
	if code != 1 || !strings.HasPrefix(out, good+": ok: ") || !strings.Contains(stderr, bad+":") {
		t.Errorf("validate GOOD BAD: exit %d, %q %q", code, out, stderr)
	}
}

// TestCompletion: bridge completion SHELL prints a script each shell
// parses, and the bash script completes commands, flags and their values
// through the binary.
func TestCompletion(t *testing.T) {
	for _, sh := range completionShells() {
		t.Run(sh, func(t *testing.T) {
			out, stderr, code := runCLI(t, "completion", sh)
			if code != 0 || stderr != "" || !strings.Contains(out, "__complete") {
				t.Fatalf("exit %d, stderr %q, %d bytes", code, stderr, len(out))
			}
			script := filepath.Join(t.TempDir(), "bridge."+sh)
			if err := os.WriteFile(script, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			var check []string
			switch sh {
			case "bash":
				check = []string{"bash", "-n", script}
			case "zsh":
				check = []string{"zsh", "-n", script}
			case "fish":
				check = []string{"fish", "--no-execute", script}
			default:
				t.Skip("no syntax check for", sh)
			}
			if _, err := exec.LookPath(check[0]); err != nil {
				if sh == "bash" {
					t.Fatal("bash is missing")
				}
				t.Skipf("%s is not installed", check[0])
			}
			if b, err := exec.Command(check[0], check[1:]...).CombinedOutput(); err != nil {
				t.Errorf("%v: %v\n%s", check, err, b)
			}
		})
	}

	// Loaded into bash, it asks the binary (named bridge, on the PATH).
	script := `
[ -r /usr/share/bash-completion/bash_completion ] && . /usr/share/bash-completion/bash_completion
declare -F _get_comp_words_by_ref >/dev/null || _get_comp_words_by_ref() {
  cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
}
compopt() { :; } # only allowed while the shell completes
source <(bridge completion bash)
try() {
  COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
  COMPREPLY=(); __start_bridge bridge; echo "$*|${COMPREPLY[*]}"
}
try bridge se
try bridge serve --dr
try bridge send --vendor ''
try bridge deliveries --status ''
try bridge events -c ../../rules.example.yaml --source ''
try bridge antly ''
try bridge completion ''
`
	c := exec.Command("bash", "-c", script)
	c.Env = append(os.Environ(), "PATH="+filepath.Dir(binPath)+string(os.PathListSeparator)+os.Getenv("PATH"))
	b, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, b)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, v, ok := strings.Cut(l, "|"); ok {
			got[k] = v
		}
	}
	for line, want := range map[string]string{
		"bridge se":                   "serve send",
		"bridge serve --dr":           "--dry-run",
		"bridge send --vendor ":       "agility secureagentics antly",
		"bridge deliveries --status ": "pending delivered failed",
		"bridge antly ":               "subscribe unsubscribe sync",
		"bridge completion ":          "bash zsh fish powershell",
		"bridge events -c ../../rules.example.yaml --source ": "secureagentics agility antly",
	} {
		if got[line] != want {
			t.Errorf("%q completes to %q, want %q\n%s", line, got[line], want, b)
		}
	}
}

// TestBenchConcurrency: --concurrency is the requests in flight.
func TestBenchConcurrency(t *testing.T) {
	var mu sync.Mutex
	inFlight, most := 0, 0
	var all sync.Once
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight == 3 {
			all.Do(func() { close(release) }) // three at once: let them all go
		}
		mu.Unlock()
		<-release
		mu.Lock()
		inFlight--
		mu.Unlock()
		w.Write([]byte(`{"status":"accepted"}`))
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	code := run([]string{"bench", "--url", srv.URL, "--vendor", "secureagentics", "--secret", "s", "-n", "12", "--concurrency", "3"}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "12 acked") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if most != 3 {
		t.Errorf("%d requests in flight at most, want 3", most)
	}
}

// TestBenchSource: bench -c FILE --source NAME signs with the source's
// secret from the config, posts to its server.listen, and says first that
// the events will reach the sinks.
func TestBenchSource(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	cfg := e2eConfig(t, dir, addr, "")
	startBridge(t, cfg, addr)
	out, stderr, code := runCLI(t, "bench", "-c", cfg, "--source", "sa", "-n", "5", "--concurrency", "2")
	if code != 0 || !strings.Contains(out, "sent 5 events") || !strings.Contains(out, "5 acked") {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	if want := `bench: rule "archive-all" matches these events: each one is delivered to archive`; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
	evs, _, _ := runCLI(t, "events", "-c", cfg, "--source", "sa", "--json", "--limit", "0")
	if n := strings.Count(evs, "\n"); n != 5 {
		t.Errorf("%d events stored, want 5:\n%s", n, evs)
	}
}
