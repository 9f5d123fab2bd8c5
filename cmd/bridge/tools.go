package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"bridge/antly"
	"bridge/bridge"
	"bridge/loadgen"
	"bridge/rules"
)

// clientAuthFlags are the flags that say how to sign or authenticate a post.
type clientAuthFlags struct {
	vendor, secret, token, tokenHeader, signatureHeader string
}

func addAuthFlags(c *cobra.Command) *clientAuthFlags {
	af := &clientAuthFlags{}
	addChoice(c, &af.vendor, "vendor", "", vendors(), "sign or authenticate as this `VENDOR` does: "+orList(vendors()))
	c.Flags().StringVar(&af.secret, "secret", "", "HMAC `SECRET` to sign the body with")
	c.Flags().StringVar(&af.token, "token", "", "`TOKEN` to send")
	c.Flags().StringVar(&af.tokenHeader, "token-header", "", "send the token in this `HEADER` instead of Authorization: Bearer")
	c.Flags().StringVar(&af.signatureHeader, "signature-header", "", "send the signature in this `HEADER` instead of the vendor's")
	return af
}

func (c *clientAuthFlags) auth() bridge.ClientAuth {
	return bridge.ClientAuth{Vendor: c.vendor, Secret: bridge.Secret(c.secret), Token: bridge.Secret(c.token),
		TokenHeader: c.tokenHeader, SignatureHeader: c.signatureHeader}
}

// checkTarget checks the two ways send and bench are told where to post:
// -c FILE --source NAME (the URL, vendor and credentials from the config;
// --url may still say where), or --url and --vendor with the credentials.
func checkTarget(c *cobra.Command, url, source string, af *clientAuthFlags) error {
	if source != "" {
		for _, name := range []string{"vendor", "secret", "token", "token-header", "signature-header"} { // addAuthFlags's
			if c.Flags().Changed(name) {
				return usagef("--source takes the vendor and credentials from the config: drop --%s (or --source)", name)
			}
		}
		return nil
	}
	if url == "" || af.vendor == "" {
		return usagef("give -c FILE and --source NAME, or --url URL and --vendor VENDOR")
	}
	return nil
}

func sendCommand() *cobra.Command {
	f := &cmdFlags{}
	var url, source string
	var af *clientAuthFlags
	c := &cobra.Command{
		Use:   "send (-c FILE --source NAME | --url URL --vendor VENDOR [--secret S] [--token T] [--token-header H]) PAYLOAD.json",
		Short: "post a payload signed as a vendor signs it; print the status and answer",
		Long: `Post PAYLOAD.json to a bridge (or anywhere) signed or authenticated the way
the vendor does, and print the HTTP status and body; exit 1 unless 2xx.
With -c FILE --source NAME the URL (from server.listen), vendor and
credentials come from that source of the config, so no secret is typed on
the command line. A payload the bridge accepts is a real event: it is
stored and runs through the rules to the sinks.`,
		Example: "  bridge send -c rules.example.yaml --source secureagentics examples/secureagentics/policy.violated.json\n" +
			"  bridge send --url http://127.0.0.1:8080/webhooks/secureagentics --vendor secureagentics --secret wrong \\\n" +
			"    examples/secureagentics/policy.violated.json",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("give one PAYLOAD.json")
			}
			return checkTarget(c, url, source, af)
		},
		ValidArgsFunction: completeFiles("json"),
		RunE: func(c *cobra.Command, args []string) error {
			return exit(cmdSend(f, url, source, af, args[0], c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	addConfigFlag(c, f)
	c.Flags().StringVar(&url, "url", "", "where to post: the `URL` (with --source: the config's server.listen)")
	c.Flags().StringVar(&source, "source", "", "take the URL, vendor and credentials from the source of this `NAME` in the config")
	c.RegisterFlagCompletionFunc("source", completeSources)
	af = addAuthFlags(c)
	return c
}

func cmdSend(f *cmdFlags, url, source string, af *clientAuthFlags, payload string, stdout, stderr io.Writer) int {
	body, err := os.ReadFile(payload)
	if err != nil {
		return fail(stderr, "send: %v", err)
	}
	auth := af.auth()
	target := url
	if source != "" {
		l, src, code := loadSource("send", f.config, source, stderr)
		if src == nil {
			return code
		}
		auth = bridge.ClientAuthFor(src.Config())
		if target == "" {
			target = localURL(l.cfg) + "/webhooks/" + source
		}
	}
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fail(stderr, "send: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bridge-send/"+version)
	auth.Apply(req, body)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fail(stderr, "send: %v", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	fmt.Fprintf(stdout, "%s\n%s\n", resp.Status, strings.TrimSpace(string(answer)))
	if resp.StatusCode >= 300 {
		return 1
	}
	return 0
}

// loadSource loads the config and finds a source in it. When it cannot, it
// has said why on stderr and returns a nil source and the exit code.
func loadSource(cmd, path, name string, stderr io.Writer) (*loaded, *bridge.Source, int) {
	l, err := loadConfig(path)
	if err != nil {
		printProblems(stderr, err)
		return nil, nil, 1
	}
	src, ok := l.rt.Sources[name]
	if !ok {
		return nil, nil, fail(stderr, "%s: no source %q in %s (give --source NAME)", cmd, name, path)
	}
	return l, src, 0
}

// localURL is the base URL of the bridge that cfg describes, as seen from
// this machine.
func localURL(cfg *bridge.Config) string {
	host, port, err := net.SplitHostPort(cfg.Server.Listen)
	if err != nil {
		return "http://" + cfg.Server.Listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	scheme := "http"
	if cfg.Server.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

func benchCommand() *cobra.Command {
	f := &cmdFlags{}
	var url, source, payload string
	var o loadgen.Options
	var af *clientAuthFlags
	c := &cobra.Command{
		Use: "bench (-c FILE --source NAME | --url URL --vendor VENDOR [--secret S]) " +
			"[-n N] [--concurrency C] [--rate R] [--watch-file F] [PAYLOAD.json]",
		Short: "load test: post N signed events, print acks/s and latency percentiles",
		Long: `Post N unique events signed as the vendor signs them (PAYLOAD.json, each
copy with a fresh id, or a ~1 KB event of the vendor), C at a time or R
per second, and print acknowledgements per second, p50/p99/max latency and
errors; exit 1 on any error. With -c FILE --source NAME the URL, vendor
and secret come from that source of the config, as for send.

The events are real events: the bridge stores them, runs them through the
rules, and delivers every matching action to its sink (a Jira ticket, a
Slack message per event). Bench a serve started with --dry-run, or a
source whose events no rule sends anywhere live. With --source, bench says
which rules its events match before it starts.`,
		Example: "  bridge bench -c bench.yaml --source sa -n 20000 --concurrency 64\n" +
			"  bridge bench --url http://127.0.0.1:8080/webhooks/sa --vendor secureagentics --secret \"$SECRET\" --rate 1000",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return unexpectedArg(c, args[1])
			}
			if c.Flags().Changed("config") {
				// bench -c 4 was once read as a concurrency of 4.
				if _, err := strconv.Atoi(f.config); err == nil {
					if _, err := os.Stat(f.config); err != nil {
						return usagef("-c is the config file: for %s requests in flight, give --concurrency %s", f.config, f.config)
					}
				}
				if source == "" {
					return usagef("-c FILE goes with --source NAME: the source whose URL and secret to use")
				}
			}
			return checkTarget(c, url, source, af)
		},
		ValidArgsFunction: completeFiles("json"),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				payload = args[0]
			}
			o.URL, o.Auth = url, af.auth()
			return exit(cmdBench(f, source, payload, o, c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
	addConfigFlag(c, f)
	c.Flags().StringVar(&source, "source", "", "take the URL, vendor and secret from the source of this `NAME` in the config")
	c.RegisterFlagCompletionFunc("source", completeSources)
	c.Flags().StringVar(&url, "url", "", "the webhook `URL` to load (with --source: the config's server.listen)")
	af = addAuthFlags(c)
	c.Flags().IntVarP(&o.N, "events", "n", 10000, "post `N` events")
	c.Flags().IntVar(&o.Concurrency, "concurrency", 32, "at most `C` requests in flight")
	c.Flags().Float64Var(&o.Rate, "rate", 0, "post `R` events per second (open loop); 0: as fast as the concurrency allows")
	c.Flags().DurationVar(&o.Timeout, "timeout", 10*time.Second, "give up on a request after `D`")
	c.Flags().StringVar(&o.WatchFile, "watch-file", "", "a file sink's output `FILE` to tail: also report the latency from send to line in the file")
	return c
}

func cmdBench(f *cmdFlags, source, payloadFile string, o loadgen.Options, stdout, stderr io.Writer) int {
	var err error
	if payloadFile != "" {
		if o.Payload, err = os.ReadFile(payloadFile); err != nil {
			return fail(stderr, "bench: %v", err)
		}
	}
	if source != "" {
		l, src, code := loadSource("bench", f.config, source, stderr)
		if src == nil {
			return code
		}
		o.Auth = bridge.ClientAuthFor(src.Config())
		if o.URL == "" {
			o.URL = localURL(l.cfg) + "/webhooks/" + source
		}
		if err := warnMatches(l, src, o, stderr); err != nil {
			return fail(stderr, "bench: %v", err)
		}
	}
	rep, err := loadgen.Run(context.Background(), o)
	if err != nil {
		return fail(stderr, "bench: %v", err)
	}
	rep.Write(stdout)
	if rep.Errors > 0 {
		return 1
	}
	return 0
}

// warnMatches tells, before a bench on a source, which rules its events
// match and so which sinks get one action per event.
func warnMatches(l *loaded, src *bridge.Source, o loadgen.Options, stderr io.Writer) error {
	bodies, err := loadgen.Bodies(o.Payload, o.Auth.Vendor, 1)
	if err != nil {
		return err
	}
	_, verdicts, err := rules.Try(l.rules, src, bodies[0], time.Now().UTC())
	if err != nil {
		return fmt.Errorf("the source cannot normalize the bench's events: %w", err)
	}
	for _, v := range verdicts {
		if !v.Matched || len(v.Actions) == 0 {
			continue
		}
		var sinks []string
		for _, a := range v.Actions {
			if !slices.Contains(sinks, a.Sink) {
				sinks = append(sinks, a.Sink)
			}
		}
		fmt.Fprintf(stderr, "bench: rule %q matches these events: each one is delivered to %s (unless the serve runs with --dry-run)\n",
			v.Rule, strings.Join(sinks, ", "))
	}
	return nil
}

func antlyCommand() *cobra.Command {
	var subs []*cobra.Command
	for _, v := range []struct{ verb, short string }{
		{"subscribe", "subscribe the source's webhook to each of its antly: triggers"},
		{"unsubscribe", "unsubscribe the source's webhook from each of its antly: triggers"},
		{"sync", "subscribe the configured triggers (again: after a change of the antly: section)"},
	} {
		f := &cmdFlags{}
		var source string
		c := &cobra.Command{
			Use:   v.verb + " -c FILE --source NAME",
			Short: v.short,
			Long: `Manage the Antly webhook subscriptions of an antly source, as its antly:
section says (api_url, access_token, prefix, webhook_url, triggers): one
query per trigger, one line per trigger, and exit 1 if any failed, with
Antly's answer.`,
			Example: "  bridge antly " + v.verb + " -c rules.example.yaml --source antly",
			Args: func(c *cobra.Command, args []string) error {
				if err := noArgs(c, args); err != nil {
					return err
				}
				if source == "" {
					return usagef("give --source NAME: the antly source whose antly: section to use")
				}
				return nil
			},
			RunE: func(c *cobra.Command, _ []string) error {
				return exit(cmdAntly(c.Name(), f, source, c.OutOrStdout(), c.ErrOrStderr()))
			},
		}
		addConfigFlag(c, f)
		c.Flags().StringVar(&source, "source", "", "the antly source (its `NAME`) whose antly: section to use")
		c.RegisterFlagCompletionFunc("source", completeSources)
		subs = append(subs, c)
	}
	return groupCommand("antly", "manage an antly source's webhook subscriptions", subs...)
}

func cmdAntly(verb string, f *cmdFlags, source string, stdout, stderr io.Writer) int {
	_, src, code := loadSource("antly", f.config, source, stderr)
	if src == nil {
		return code
	}
	cfg := src.Config()
	if cfg.Antly == nil {
		return fail(stderr, "antly: source %q has no antly: section", source)
	}
	client := &antly.Client{HTTP: &http.Client{Timeout: 30 * time.Second}}
	code = 0
	for _, trig := range cfg.Antly.Triggers {
		ctx := context.Background()
		var err error
		if verb == "unsubscribe" {
			err = client.Unsubscribe(ctx, *cfg.Antly, trig)
		} else {
			err = client.Subscribe(ctx, *cfg.Antly, trig)
		}
		if err != nil {
			fmt.Fprintf(stderr, "bridge: antly %s %s: %v\n", verb, trig, err)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "%s %s: ok\n", verb, trig)
	}
	return code
}
