package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"bridge/antly"
	"bridge/bridge"
	"bridge/loadgen"
)

// clientAuthFlags are the flags that say how to sign or authenticate a post.
type clientAuthFlags struct {
	vendor, secret, token, tokenHeader, signatureHeader *string
}

func addAuthFlags(f *cmdFlags) clientAuthFlags {
	return clientAuthFlags{
		vendor:          f.String("vendor", "", "sign or authenticate as this vendor does: agility, secureagentics or antly"),
		secret:          f.String("secret", "", "HMAC secret to sign the body with"),
		token:           f.String("token", "", "token to send"),
		tokenHeader:     f.String("token-header", "", "send the token in this header instead of Authorization: Bearer"),
		signatureHeader: f.String("signature-header", "", "send the signature in this header instead of the vendor's"),
	}
}

func (c clientAuthFlags) auth() bridge.ClientAuth {
	return bridge.ClientAuth{Vendor: *c.vendor, Secret: bridge.Secret(*c.secret), Token: bridge.Secret(*c.token),
		TokenHeader: *c.tokenHeader, SignatureHeader: *c.signatureHeader}
}

func cmdSend(args []string, stdout, stderr io.Writer) int {
	f := newFlags("send", stderr)
	url := f.String("url", "", "where to post (with -c and --source: taken from the config)")
	source := f.String("source", "", "take URL, vendor and credentials from this source of the config")
	af := addAuthFlags(f)
	pos, err := f.parse(args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		return fail(stderr, "send: give one PAYLOAD.json")
	}
	body, err := os.ReadFile(pos[0])
	if err != nil {
		return fail(stderr, "send: %v", err)
	}
	auth := af.auth()
	target := *url
	if *source != "" {
		l, src, code := loadSource("send", f.config, *source, stderr)
		if src == nil {
			return code
		}
		auth = bridge.ClientAuthFor(src.Config())
		if target == "" {
			target = localURL(l.cfg) + "/webhooks/" + *source
		}
	}
	if target == "" || auth.Vendor == "" {
		return fail(stderr, "send: give --url and --vendor, or -c FILE and --source NAME")
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

func cmdBench(args []string, stdout, stderr io.Writer) int {
	f := newFlags("bench", stderr)
	url := f.String("url", "", "the webhook URL to load")
	af := addAuthFlags(f)
	n := f.Int("n", 10000, "events to post")
	conc := f.Int("concurrency", 32, "requests in flight at most")
	f.IntVar(conc, "C", 32, "requests in flight at most (shorthand)")
	rate := f.Float64("rate", 0, "post at this many events per second (open loop); 0: as fast as the concurrency allows")
	timeout := f.Duration("timeout", 10*time.Second, "per-request timeout")
	watch := f.String("watch-file", "", "a file sink's output to tail: also report end-to-end latency, from send to line in the file")
	pos, err := f.parse(args)
	if err != nil {
		return 2
	}
	if *url == "" || *af.vendor == "" {
		return fail(stderr, "bench: give --url and --vendor")
	}
	var payload []byte
	if len(pos) == 1 {
		if payload, err = os.ReadFile(pos[0]); err != nil {
			return fail(stderr, "bench: %v", err)
		}
	}
	rep, err := loadgen.Run(context.Background(), loadgen.Options{URL: *url, Auth: af.auth(), N: *n, Concurrency: *conc,
		Rate: *rate, Payload: payload, Timeout: *timeout, WatchFile: *watch})
	if err != nil {
		return fail(stderr, "bench: %v", err)
	}
	rep.Write(stdout)
	if rep.Errors > 0 {
		return 1
	}
	return 0
}

func cmdAntly(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return fail(stderr, "antly: give subscribe, unsubscribe or sync")
	}
	verb := args[0]
	f := newFlags("antly "+verb, stderr)
	source := f.String("source", "", "the antly source whose antly: section to use")
	if _, err := f.parse(args[1:]); err != nil {
		return 2
	}
	if verb != "subscribe" && verb != "unsubscribe" && verb != "sync" {
		return fail(stderr, "antly: unknown command %q (subscribe, unsubscribe or sync)", verb)
	}
	_, src, code := loadSource("antly", f.config, *source, stderr)
	if src == nil {
		return code
	}
	cfg := src.Config()
	if cfg.Antly == nil {
		return fail(stderr, "antly: source %q has no antly: section", *source)
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
