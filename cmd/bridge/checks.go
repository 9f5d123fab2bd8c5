package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"bridge/bridge"
	"bridge/sinks/jira"
	"bridge/sinks/slack"
)

// checkFunc checks one sink against its real service.
type checkFunc func(ctx context.Context, cfg bridge.SinkConfig, actions []bridge.Action, w io.Writer) (int, error)

func cmdJira(args []string, stdout, stderr io.Writer) int {
	return runCheck("jira", args, stdout, stderr, func(ctx context.Context, cfg bridge.SinkConfig, actions []bridge.Action, w io.Writer) (int, error) {
		return jira.Check(ctx, cfg.(*jira.Config), actions, w)
	})
}

func cmdSlack(args []string, stdout, stderr io.Writer) int {
	return runCheck("slack", args, stdout, stderr, func(ctx context.Context, cfg bridge.SinkConfig, actions []bridge.Action, w io.Writer) (int, error) {
		return slack.Check(ctx, cfg.(*slack.Config), actions, w)
	})
}

// runCheck runs `bridge TYPE check`: every sink of that type (or --sink),
// with the actions the rules send to it.
func runCheck(typ string, args []string, stdout, stderr io.Writer, check checkFunc) int {
	if len(args) == 0 || args[0] != "check" {
		return fail(stderr, "%s: the only command is check: bridge %s check -c FILE [--sink NAME]", typ, typ)
	}
	f := newFlags(typ+" check", stderr)
	only := f.String("sink", "", "check only this sink")
	if _, err := f.parse(args[1:]); err != nil {
		return 2
	}
	l, err := loadConfig(f.config)
	if err != nil {
		printProblems(stderr, err)
		return 1
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
			fmt.Fprintf(stdout, "  error: %v\n", err)
			n++
		}
		problems += n
	}
	if checked == 0 {
		return fail(stderr, "%s check: no %s sink in %s", typ, typ, f.config)
	}
	if problems > 0 {
		fmt.Fprintf(stdout, "%d problems found\n", problems)
		return 1
	}
	fmt.Fprintln(stdout, "all good")
	return 0
}
