package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"bridge/bridge"
	"bridge/rules"
)

func testCommand() *cobra.Command {
	f := &cmdFlags{}
	var source string
	c := &cobra.Command{
		Use:   "test -c FILE (TESTS.yaml | --source NAME PAYLOAD.json)",
		Short: "run rule tests, or show what one payload becomes",
		Long: `With TESTS.yaml, run its rule tests against the config: one line per test
and a final "N passed, N failed"; exit 1 if any failed. With --source NAME
and a PAYLOAD.json, normalize the payload as that source would and print
the Event, each rule's verdict and every rendered action. Nothing is sent
or stored either way.`,
		Example: "  bridge test -c rules.example.yaml examples/rules_test.yaml\n" +
			"  bridge test -c rules.example.yaml --source agility examples/agility/analysis_failed.json",
		Args: func(c *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return usagef("give one TESTS.yaml, or --source NAME and one PAYLOAD.json")
			case len(args) > 1:
				return usagef("give one TESTS.yaml or PAYLOAD.json, not %d arguments (the config file goes with -c FILE)", len(args))
			}
			return nil
		},
		ValidArgsFunction: completeFiles("yaml", "yml", "json"),
		RunE: func(c *cobra.Command, args []string) error {
			return exit(cmdTest(f, source, args, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	addConfigFlag(c, f)
	c.Flags().StringVar(&source, "source", "", "normalize PAYLOAD.json as the source of this `NAME` would, and show what the rules make of it")
	c.RegisterFlagCompletionFunc("source", completeSources)
	return c
}

func cmdTest(f *cmdFlags, source string, pos []string, stdout, stderr io.Writer) int {
	l, err := loadConfig(f.config)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	normalize := func(name string, payload []byte) (*bridge.Event, error) {
		src, ok := l.rt.Sources[name]
		if !ok {
			return nil, fmt.Errorf("no source %q in %s", name, f.config)
		}
		return src.Normalize(payload, time.Now().UTC())
	}
	if source != "" {
		payload, err := os.ReadFile(pos[0])
		if err != nil {
			return fail(stderr, "test: %v", err)
		}
		src, ok := l.rt.Sources[source]
		if !ok {
			return fail(stderr, "test: %s: no source %q in %s", pos[0], source, f.config)
		}
		ev, verdicts, err := rules.Try(l.rules, src, payload, time.Now().UTC())
		if err != nil {
			return fail(stderr, "test: %s: %v", pos[0], err)
		}
		return explain(stdout, ev, verdicts)
	}
	tests, err := rules.LoadTests(pos[0])
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	_, failed := rules.RunTests(l.rules, tests, normalize, stdout)
	if failed > 0 {
		return 1
	}
	return 0
}

// explain prints the event, each rule's verdict and every rendered action
// (rules.Try's findings).
func explain(w io.Writer, ev *bridge.Event, verdicts []rules.Verdict) int {
	b, _ := json.MarshalIndent(ev, "", "  ")
	fmt.Fprintf(w, "Event:\n%s\n\nRules:\n", b)
	for _, v := range verdicts {
		switch {
		case v.Err != nil:
			fmt.Fprintf(w, "  %-40s error (counts as not matching): %v\n", v.Rule, v.Err)
		case v.Skipped:
			fmt.Fprintf(w, "  %-40s skipped (an earlier rule has stop: true)\n", v.Rule)
		case v.Matched:
			fmt.Fprintf(w, "  %-40s MATCH\n", v.Rule)
		default:
			fmt.Fprintf(w, "  %-40s no match\n", v.Rule)
		}
		for _, a := range v.Actions {
			if a.Err != nil {
				fmt.Fprintf(w, "    -> %s: template error: %v\n", a.Sink, a.Err)
				continue
			}
			fields, _ := json.MarshalIndent(a.Fields, "       ", "  ")
			fmt.Fprintf(w, "    -> %s: %s\n", a.Sink, fields)
		}
	}
	return 0
}
