package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"golang.org/x/crypto/bcrypt"

	"bridge/bridge"
	"bridge/console"
	"bridge/sinks/jira"
)

// exampleConsolePassword is the password of the example config's console
// user (rules.example.yaml, ${CONSOLE_ADMIN_HASH:-...}).
const exampleConsolePassword = "example-console-password"

// refuseExampleConsole refuses a console reachable from other machines
// while a user's password is still the example one, as refuseExampleSecrets
// does for the sources' secrets.
func refuseExampleConsole(cfg *bridge.Config) error {
	c := cfg.Console
	if c == nil || bridge.IsLoopbackListen(c.Listen) {
		return nil
	}
	names := make([]string, 0, len(c.Users))
	for name := range c.Users {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if bcrypt.CompareHashAndPassword([]byte(c.Users[name].Value()), []byte(exampleConsolePassword)) == nil {
			return fmt.Errorf("%s: console user %q has the example password %q while console.listen %q is reachable from other machines: set CONSOLE_ADMIN_HASH to a hash from `bridge hash-password`, or listen on 127.0.0.1",
				cfg.File, name, exampleConsolePassword, c.Listen)
		}
	}
	return nil
}

// jiraSites returns the site URL of each jira sink of cfg, by sink name,
// so that the console links a delivered issue key to the issue.
func jiraSites(cfg *bridge.Config) map[string]string {
	out := map[string]string{}
	for _, e := range cfg.Sinks {
		if jc, ok := e.Config.(*jira.Config); ok && e.Type == "jira" {
			out[e.Name] = jc.URL
		}
	}
	return out
}

// startConsole starts the web console on its own listener, when the
// config has one: it returns the server (nil without a console) and where
// its Serve's error arrives.
func (a *app) startConsole(cfg *bridge.Config) (*http.Server, <-chan error, error) {
	if cfg.Console == nil {
		return nil, nil, nil
	}
	h, err := console.New(console.Options{
		Store:    a.store,
		Runtime:  a.server.Runtime,
		Metrics:  a.metrics,
		Webhooks: a.server.WebhookStats(),
		Users:    cfg.Console.Users,
		Version:  version,
		Logger:   a.log.With("component", "console"),
		JiraURLs: jiraSites,
		Wake:     a.pipeline.Wake,
	})
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Console.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("bridge: console: listen on %s: %w", cfg.Console.Listen, err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	args := []any{"addr", "http://" + ln.Addr().String(), "users", len(cfg.Console.Users)}
	if len(cfg.Console.Users) == 0 {
		a.log.Warn("console serving without users: anyone on this machine can use it", args...)
	} else {
		a.log.Info("console serving", args...)
	}
	return srv, errc, nil
}
