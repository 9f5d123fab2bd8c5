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

	"github.com/spf13/cobra"

	"bridge/bridge"
)

func validateCommand() *cobra.Command {
	f := &cmdFlags{}
	c := &cobra.Command{
		Use:   "validate (-c FILE | FILE...)",
		Short: "check a config file (FILE:LINE: message per problem)",
		Long: `Load the config file, expand its ${VARIABLES}, validate every section and
compile every rule and template, as serve does, without starting anything.
Print a one-line summary and exit 0, or every problem as FILE:LINE: message
and exit 1. The files may also be given as arguments, as promtool check
config takes them: each one is checked.`,
		Example: "  bridge validate -c rules.example.yaml\n  bridge validate bridge.yaml staging/bridge.yaml",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 && c.Flags().Changed("config") {
				return usagef("give the config file with -c FILE or as arguments, not both")
			}
			return nil
		},
		ValidArgsFunction: completeFiles("yaml", "yml"),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{f.config}
			}
			code := 0
			for _, path := range args {
				code = max(code, cmdValidate(path, c.OutOrStdout(), c.ErrOrStderr()))
			}
			return exit(code)
		},
	}
	addConfigFlag(c, f)
	return c
}

// cmdValidate checks one config file.
func cmdValidate(path string, stdout, stderr io.Writer) int {
	l, err := loadConfig(path)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	actions := 0
	for _, r := range l.cfg.Rules {
		actions += len(r.Actions)
	}
	fmt.Fprintf(stdout, "%s: ok: %d sources, %d sinks, %d rules, %d actions\n",
		path, len(l.cfg.Sources), len(l.cfg.Sinks), len(l.cfg.Rules), actions)
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

// storeOnlyNote is the help of the commands that read only the store.
const storeOnlyNote = `It reads only the config's store: section, so it works beside a running
serve, and while an edit elsewhere in the file is broken.`

func eventsCommand() *cobra.Command {
	f := &cmdFlags{}
	var filter bridge.EventFilter
	var asJSON bool
	c := &cobra.Command{
		Use:     "events -c FILE [--source S] [--limit N] [--json]",
		Short:   "list stored events, newest first",
		Long:    "List the events in the config's store, newest first, as a table or as JSON lines.\n" + storeOnlyNote,
		Example: "  bridge events -c rules.example.yaml --source agility --limit 10",
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(cmdEvents(f.config, filter, asJSON, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	addConfigFlag(c, f)
	c.Flags().StringVar(&filter.Source, "source", "", "only events of this source `NAME`")
	c.Flags().IntVar(&filter.Limit, "limit", 50, "at most `N` events (0: all)")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per line")
	c.RegisterFlagCompletionFunc("source", completeSources)
	return c
}

func cmdEvents(config string, filter bridge.EventFilter, asJSON bool, stdout, stderr io.Writer) int {
	st, err := openStoreOnly(config)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer st.Close()
	evs, err := st.Events(context.Background(), filter)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if asJSON {
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

func deliveriesCommand() *cobra.Command {
	f := &cmdFlags{}
	var filter bridge.DeliveryFilter
	var asJSON bool
	c := &cobra.Command{
		Use:   "deliveries -c FILE [--status S] [--event ID] [--sink NAME] [--limit N] [--json]",
		Short: "list deliveries: one per event and matching action",
		Long: `List the deliveries in the config's store, newest first: what became of each
action, its attempts, the last error and the sink's result (a Jira issue
key, a Slack message ts). ` + storeOnlyNote,
		Example: "  bridge deliveries -c rules.example.yaml --status failed --json",
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(cmdDeliveries(f.config, filter, asJSON, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	addConfigFlag(c, f)
	addChoice(c, &filter.Status, "status", "", []string{bridge.StatusPending, bridge.StatusDelivered, bridge.StatusFailed},
		"only deliveries with this `STATUS`: pending, delivered or failed")
	c.Flags().StringVar(&filter.EventID, "event", "", "only deliveries of this event `ID`")
	c.Flags().StringVar(&filter.Sink, "sink", "", "only deliveries to this sink `NAME`")
	c.Flags().IntVar(&filter.Limit, "limit", 50, "at most `N` deliveries (0: all)")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per line")
	c.RegisterFlagCompletionFunc("sink", completeSinks(""))
	return c
}

func cmdDeliveries(config string, filter bridge.DeliveryFilter, asJSON bool, stdout, stderr io.Writer) int {
	st, err := openStoreOnly(config)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer st.Close()
	ds, err := st.Deliveries(context.Background(), filter)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		for _, d := range ds {
			enc.Encode(d)
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEVENT\tRULE\tSINK\tSTATUS\tATTEMPTS\tRESULT\tLAST ERROR")
	for _, d := range ds {
		status := d.Status
		if d.Waiting() {
			status = "pending (waits for " + d.After + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.EventID, d.Rule, d.Sink, status, d.Attempts, d.Result, cut(d.LastError, 80))
	}
	tw.Flush()
	return 0
}

func replayCommand() *cobra.Command {
	f := &cmdFlags{}
	var all bool
	var ids []int64
	c := &cobra.Command{
		Use:   "replay -c FILE (DELIVERY_ID... | --failed)",
		Short: "put failed deliveries back in the queue",
		Long: `Put failed deliveries back in the queue, with a fresh retry window: the
running serve (any replica) sends them again. Fix the cause first (see
bridge deliveries --status failed). ` + storeOnlyNote,
		Example: "  bridge replay -c rules.example.yaml 12 13\n  bridge replay -c rules.example.yaml --failed",
		Args: func(c *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return usagef("give delivery ids or --failed, not both")
			}
			ids = ids[:0]
			for _, a := range args {
				id, err := strconv.ParseInt(a, 10, 64)
				if err != nil || id <= 0 {
					if looksLikeConfig(a) {
						return unexpectedArg(c, a)
					}
					return usagef("%q is not a delivery id (see bridge deliveries --status failed)", a)
				}
				ids = append(ids, id)
			}
			return nil
		},
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(cmdReplay(f.config, ids, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	addConfigFlag(c, f)
	c.Flags().BoolVar(&all, "failed", false, "replay every failed delivery")
	return c
}

func cmdReplay(config string, ids []int64, stdout, stderr io.Writer) int {
	st, err := openStoreOnly(config)
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
			fmt.Fprintf(stderr, "bridge: replay: delivery %d is not failed, does not exist, or runs after an action still failed (replay that one first); left as it is\n", id)
			code = 1
		}
	}
	fmt.Fprintf(stdout, "replayed %d deliveries\n", len(done))
	return code
}

// checkCommand is `bridge jira check` or `bridge slack check` (checks.go).
func checkCommand(typ string) *cobra.Command {
	check, what, example := cmdJira, `Check every jira sink (or --sink NAME) with its real credentials: the
account, and that every project, issue type, priority, component, custom
field and transition the rules use exists.`, "  bridge jira check -c bridge.yaml --sink ops-jira"
	if typ == "slack" {
		check, what, example = cmdSlack, `Check every slack sink (or --sink NAME) against Slack: with a bot token,
that it works (auth.test) and that every channel the rules name (and the
sink's default) exists, is not archived and takes the bot's messages; with
a webhook, what can be learnt without posting.`, "  bridge slack check -c bridge.yaml"
	}
	f := &cmdFlags{}
	var only string
	c := &cobra.Command{
		Use:     "check -c FILE [--sink NAME]",
		Short:   fmt.Sprintf("check the %s sinks against the real %s", typ, map[string]string{"jira": "Jira", "slack": "Slack"}[typ]),
		Long:    what + "\nExit 1 when a problem is found.",
		Example: example,
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(check(f, &only, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	addConfigFlag(c, f)
	c.Flags().StringVar(&only, "sink", "", "check only the sink of this `NAME`")
	c.RegisterFlagCompletionFunc("sink", completeSinks(typ))
	return groupCommand(typ, fmt.Sprintf("check the %s sinks", typ), c)
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
