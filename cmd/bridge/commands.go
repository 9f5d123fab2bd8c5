package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"bridge/bridge"
)

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	f := newFlags("validate", stderr)
	if _, err := f.parse(args); err != nil {
		return 2
	}
	l, err := loadConfig(f.config)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	actions := 0
	for _, r := range l.cfg.Rules {
		actions += len(r.Actions)
	}
	fmt.Fprintf(stdout, "%s: ok: %d sources, %d sinks, %d rules, %d actions\n",
		f.config, len(l.cfg.Sources), len(l.cfg.Sinks), len(l.cfg.Rules), actions)
	if err := refuseExampleSecrets(l.cfg); err != nil {
		fmt.Fprintf(stderr, "warning: serve will refuse this config: %v\n", err)
	}
	return 0
}

// openStoreOnly opens the store of a config file, reading only its store
// section, for the commands that work beside a running serve.
func openStoreOnly(path string) (bridge.Store, error) {
	cfg, err := bridge.LoadStore(path)
	if err != nil {
		return nil, err
	}
	return openStore(context.Background(), cfg.Store, storeOptions{})
}

func cmdEvents(args []string, stdout, stderr io.Writer) int {
	f := newFlags("events", stderr)
	source := f.String("source", "", "only events of this source")
	limit := f.Int("limit", 50, "at most this many events (0: all)")
	asJSON := f.Bool("json", false, "print one JSON object per line")
	if _, err := f.parse(args); err != nil {
		return 2
	}
	st, err := openStoreOnly(f.config)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer st.Close()
	evs, err := st.Events(context.Background(), bridge.EventFilter{Source: *source, Limit: *limit})
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, e := range evs {
			enc.Encode(e.Event)
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECEIVED\tSOURCE\tTYPE\tSEVERITY\tID\tTITLE")
	for _, e := range evs {
		ev := e.Event
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ev.Received.Local().Format(time.DateTime), ev.Source, ev.Type, ev.Severity, ev.ID, cut(ev.Title, 60))
	}
	tw.Flush()
	return 0
}

func cmdDeliveries(args []string, stdout, stderr io.Writer) int {
	f := newFlags("deliveries", stderr)
	status := f.String("status", "", "only deliveries with this status: pending, delivered or failed")
	event := f.String("event", "", "only deliveries of this event id")
	sink := f.String("sink", "", "only deliveries to this sink")
	limit := f.Int("limit", 50, "at most this many deliveries (0: all)")
	asJSON := f.Bool("json", false, "print one JSON object per line")
	if _, err := f.parse(args); err != nil {
		return 2
	}
	switch *status {
	case "", bridge.StatusPending, bridge.StatusDelivered, bridge.StatusFailed:
	default:
		return fail(stderr, "--status must be pending, delivered or failed, not %q", *status)
	}
	st, err := openStoreOnly(f.config)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer st.Close()
	ds, err := st.Deliveries(context.Background(), bridge.DeliveryFilter{Status: *status, EventID: *event, Sink: *sink, Limit: *limit})
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, d := range ds {
			enc.Encode(d)
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEVENT\tRULE\tSINK\tSTATUS\tATTEMPTS\tRESULT\tLAST ERROR")
	for _, d := range ds {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.EventID, d.Rule, d.Sink, d.Status, d.Attempts, d.Result, cut(d.LastError, 80))
	}
	tw.Flush()
	return 0
}

func cmdReplay(args []string, stdout, stderr io.Writer) int {
	f := newFlags("replay", stderr)
	all := f.Bool("failed", false, "replay every failed delivery")
	pos, err := f.parse(args)
	if err != nil {
		return 2
	}
	if *all == (len(pos) > 0) {
		return fail(stderr, "replay: give delivery ids or --failed (not both)")
	}
	var ids []int64
	for _, p := range pos {
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil || id <= 0 {
			return fail(stderr, "replay: %q is not a delivery id (see bridge deliveries --status failed)", p)
		}
		ids = append(ids, id)
	}
	st, err := openStoreOnly(f.config)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer st.Close()
	done, err := st.Replay(context.Background(), ids, time.Now())
	if err != nil {
		return fail(stderr, "%v", err)
	}
	got := map[int64]bool{}
	for _, id := range done {
		got[id] = true
	}
	code := 0
	for _, id := range ids {
		if !got[id] {
			fmt.Fprintf(stderr, "bridge: replay: delivery %d is not failed (or does not exist); left as it is\n", id)
			code = 1
		}
	}
	fmt.Fprintf(stdout, "replayed %d deliveries\n", len(done))
	return code
}

// cut shortens s to n runes for a table cell, on one line.
func cut(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// printProblems prints a config error: Problems one per line, others as is.
func printProblems(w io.Writer, err error) {
	var ps bridge.Problems
	if errors.As(err, &ps) {
		fmt.Fprintln(w, ps.Error())
		return
	}
	fmt.Fprintln(w, "bridge:", err)
}
