package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"bridge/bridge"
	"bridge/rules"
)

func cmdTest(args []string, stdout, stderr io.Writer) int {
	f := newFlags("test", stderr)
	source := f.String("source", "", "normalize PAYLOAD.json as this source would and show what the rules make of it")
	pos, err := f.parse(args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		return fail(stderr, "test: give one TESTS.yaml, or --source NAME and one PAYLOAD.json")
	}
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
	if *source != "" {
		payload, err := os.ReadFile(pos[0])
		if err != nil {
			return fail(stderr, "test: %v", err)
		}
		src, ok := l.rt.Sources[*source]
		if !ok {
			return fail(stderr, "test: %s: no source %q in %s", pos[0], *source, f.config)
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
