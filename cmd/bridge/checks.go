package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"bridge/bridge"
	"bridge/sinks/jira"
	"bridge/sinks/slack"
)

// checkFunc checks one sink against its real service.
type checkFunc func(ctx context.Context, cfg bridge.SinkConfig, actions []bridge.Action, w io.Writer) (int, error)

func cmdJira(f *cmdFlags, only *string, stdout, stderr io.Writer) int {
	return runCheck("jira", f, only, stdout, stderr, func(ctx context.Context, cfg bridge.SinkConfig, actions []bridge.Action, w io.Writer) (int, error) {
		return jira.Check(ctx, cfg.(*jira.Config), actions, w)
	})
}

func cmdSlack(f *cmdFlags, only *string, stdout, stderr io.Writer) int {
	return runCheck("slack", f, only, stdout, stderr, func(ctx context.Context, cfg bridge.SinkConfig, actions []bridge.Action, w io.Writer) (int, error) {
		return slack.Check(ctx, cfg.(*slack.Config), actions, w)
	})
}

// runCheck runs `bridge TYPE check`: every sink of that type (or --sink),
// with the actions the rules send to it.
func runCheck(typ string, f *cmdFlags, only *string, stdout, stderr io.Writer, check checkFunc) int {
	l, err := loadConfig(f.config)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	if *only != "" {
		if msg := otherSink(l.cfg, typ, *only); msg != "" {
			return fail(stderr, "%s check: %s", typ, msg)
		}
	}
	problems, checked := 0, 0
	for _, s := range l.cfg.Sinks {
		if s.Type != typ || (*only != "" && s.Name != *only) {
			continue
		}
		checked++
		fmt.Fprintf(stdout, "sink %s:\n", s.Name)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		n, err := check(ctx, s.Config, l.rules.Actions(s.Name), stdout)
		cancel()
		if err != nil {
			// The check could not run (the service out of reach): the
			// check prints its findings, and this line its error, once.
			fmt.Fprintf(stdout, "  error: %v\n", err)
			n++
		}
		problems += n
	}
	if checked == 0 {
		return fail(stderr, "%s check: no %s sink in %s", typ, typ, f.config)
	}
	if problems > 0 {
		fmt.Fprintln(stdout, countProblems(problems))
		return 1
	}
	fmt.Fprintln(stdout, "all good")
	return 0
}

// otherSink says why --sink NAME cannot be checked by `bridge TYPE check`:
// no sink has that name, or it is of another type; "" when it can.
func otherSink(cfg *bridge.Config, typ, name string) string {
	var same []string
	for _, s := range cfg.Sinks {
		if s.Name == name {
			if s.Type == typ {
				return ""
			}
			return fmt.Sprintf("sink %s is a %s sink, not %s (bridge %s check checks it)", name, s.Type, typ, s.Type)
		}
		if s.Type == typ {
			same = append(same, s.Name)
		}
	}
	if len(same) == 0 {
		return fmt.Sprintf("no sink %s in %s, and no %s sink at all", name, cfg.File, typ)
	}
	return fmt.Sprintf("no sink %s in %s (its %s sinks: %s)", name, cfg.File, typ, strings.Join(same, ", "))
}

// countProblems is the closing line of a check that found some.
func countProblems(n int) string {
	if n == 1 {
		return "1 problem found"
	}
	return fmt.Sprintf("%d problems found", n)
}
