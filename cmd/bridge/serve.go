package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spf13/cobra"

	"bridge/bridge"
	"bridge/bridge/store/sqlite"
	"bridge/rules"
)

// shutdownGrace is how long a stopping bridge waits for requests and sends
// in flight.
const shutdownGrace = 10 * time.Second

func serveCommand() *cobra.Command {
	f := &cmdFlags{}
	var dryRun bool
	c := &cobra.Command{
		Use:   "serve -c FILE [--dry-run]",
		Short: "run the server",
		Long: `Receive the sources' webhooks on server.listen (and the console on
console.listen), store them, run the rules and deliver the actions to the
sinks until SIGTERM or Ctrl-C. The config is reloaded on SIGHUP and when the
file changes; an edit that does not validate is refused and the running
config stays. Logs go to stderr.`,
		Example: "  bridge serve -c rules.example.yaml --dry-run\n  bridge serve -c /etc/bridge/bridge.yaml --log-format json",
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(cmdServe(f, dryRun, c.ErrOrStderr()))
		},
	}
	addConfigFlag(c, f)
	c.Flags().BoolVar(&dryRun, "dry-run", false, "every sink logs what it would send instead of sending it")
	addLogFlags(c, f)
	return c
}

func cmdServe(f *cmdFlags, dryRun bool, stderr io.Writer) int {
	log, err := f.logger(stderr)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	raiseGOMAXPROCS()
	relaxGC()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := serve(ctx, f.config, dryRun, log, hup); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// minProcs is the fewest Ps serve runs with. The store's disk syscalls
// (SQLite's writes, the WAL's fdatasync) block the thread that makes them
// without the Go scheduler knowing at once; with a single P (a bridge given
// one CPU) the webhook handlers then wait for each sync, batches stay at
// one event, and latency grows to seconds under load. Spare Ps let the
// handlers run while a thread waits on the disk; they cost nothing when idle.
const minProcs = 2

// raiseGOMAXPROCS applies minProcs unless GOMAXPROCS was set explicitly.
func raiseGOMAXPROCS() {
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) < minProcs {
		runtime.GOMAXPROCS(minProcs)
	}
}

// gcPercent is serve's GOGC. The live heap is small (the store is on disk,
// pending deliveries are read in pages), so the default of 100 collects
// every few megabytes of request garbage: under load that is a tenth of
// the CPU. At 400 the heap may grow to five times what is live, tens of
// megabytes.
const gcPercent = 400

// relaxGC applies gcPercent unless GOGC was set explicitly.
func relaxGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// app is a running bridge.
type app struct {
	path     string
	log      *slog.Logger
	store    bridge.Store
	metrics  *bridge.Metrics
	pipeline *bridge.Pipeline
	server   *bridge.Server
	current  *bridge.Config
}

// serve runs the bridge until ctx ends; hup asks for a config reload.
func serve(ctx context.Context, path string, dryRun bool, log *slog.Logger, hup <-chan os.Signal) error {
	l, err := loadConfig(path)
	if err != nil {
		return err
	}
	if err := refuseExampleSecrets(l.cfg); err != nil {
		return err
	}
	metrics := bridge.NewMetrics(nil)
	metrics.SetBuildInfo(bridge.ReadBuildInfo(version))
	if !l.cfg.Store.IsPostgres() {
		unlock, err := sqlite.LockServe(l.cfg.Store.Path)
		if err != nil {
			return err
		}
		defer unlock()
	}
	store, err := openStore(ctx, l.cfg.Store, storeOptions{log: log, metrics: metrics})
	if err != nil {
		return err
	}
	metrics.CountPending(store.PendingCounts)
	a := &app{path: path, log: log, store: store, metrics: metrics, current: l.cfg}
	popt := bridge.PipelineOptions{Logger: log, Metrics: metrics, DryRun: dryRun, Render: rules.RenderChained}
	if l.cfg.Store.IsPostgres() {
		popt.Lease = l.cfg.Store.Lease.D()
	}
	a.pipeline = bridge.NewPipeline(store, popt)
	store.SetOnCommit(a.pipeline.Wake)
	specs, err := a.buildSinks(l.cfg)
	if err != nil {
		store.Close()
		return err
	}
	a.pipeline.SetSinks(specs)
	metrics.SetSinks(sinkNames(l.cfg))
	metrics.SetSources(sourceNames(l.cfg))
	a.server = bridge.NewServer(store, metrics, log)
	a.server.SetRuntime(l.rt)
	metrics.Reloaded(time.Now(), nil)

	srv := &http.Server{
		Handler:           a.server.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", l.cfg.Server.Listen)
	if err != nil {
		a.pipeline.Shutdown(context.Background())
		store.Close()
		return fmt.Errorf("bridge: listen on %s: %w", l.cfg.Server.Listen, err)
	}
	scheme := "http"
	if l.cfg.Server.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(l.cfg.Server.TLSCert, l.cfg.Server.TLSKey)
		if err != nil {
			ln.Close()
			a.pipeline.Shutdown(context.Background())
			store.Close()
			return fmt.Errorf("bridge: load TLS certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	con, conErr, err := a.startConsole(l.cfg)
	if err != nil {
		srv.Close()
		a.pipeline.Shutdown(context.Background())
		store.Close()
		return err
	}
	log.Info("bridge serving", "version", version, "addr", scheme+"://"+ln.Addr().String(), "config", path,
		"sources", len(l.cfg.Sources), "sinks", len(l.cfg.Sinks), "rules", len(l.cfg.Rules), "dry_run", dryRun)

	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	go a.prune(bg)
	go a.watch(bg, hup)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: no new webhooks; letting sends in flight finish", "grace", shutdownGrace)
	case err := <-serveErr:
		runErr = fmt.Errorf("bridge: serve: %w", err)
	case err := <-conErr:
		runErr = fmt.Errorf("bridge: console: %w", err)
	}
	stopBG()
	shCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if con != nil {
		if err := con.Shutdown(shCtx); err != nil {
			log.Warn("console shutdown", "err", err)
		}
	}
	a.pipeline.Shutdown(shCtx)
	store.Close()
	log.Info("bridge stopped")
	return runErr
}

// sinkNames lists the configured sinks' names.
func sinkNames(cfg *bridge.Config) []string {
	names := make([]string, len(cfg.Sinks))
	for i, s := range cfg.Sinks {
		names[i] = s.Name
	}
	return names
}

// sourceNames lists the configured sources' names.
func sourceNames(cfg *bridge.Config) []string {
	names := make([]string, len(cfg.Sources))
	for i, s := range cfg.Sources {
		names[i] = s.Name
	}
	return names
}

// buildSinks builds the sinks of cfg that are new or changed; unchanged
// running sinks are kept (their spec has no Sink).
func (a *app) buildSinks(cfg *bridge.Config) ([]bridge.SinkSpec, error) {
	types := sinkTypes()
	var specs []bridge.SinkSpec
	var built []bridge.Sink
	for i := range cfg.Sinks {
		e := &cfg.Sinks[i]
		spec := bridge.SinkSpec{Name: e.Name, Timeout: e.Timeout.D(), Concurrency: e.Concurrency, Retry: e.Retry, Key: e.Fingerprint()}
		if key, ok := a.pipeline.SinkKey(e.Name); !ok || key != spec.Key {
			s, err := types[e.Type].New(e.Config, sinkEnv(e, cfg, a.store, a.log))
			if err != nil {
				for _, b := range built {
					b.Close(context.Background())
				}
				return nil, fmt.Errorf("%s:%d: sink %q: %v", cfg.File, e.Line, e.Name, err)
			}
			built = append(built, s)
			spec.Sink = s
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// reload loads the config file again and swaps it in; a config that does not
// validate is refused and the running one stays.
func (a *app) reload(reason string) {
	refuse := func(err error) {
		a.metrics.Reloaded(time.Now(), err)
		a.log.Error("config reload refused; the running config stays", "reason", reason, "problems", err.Error())
	}
	l, err := loadConfig(a.path)
	if err == nil {
		err = refuseExampleSecrets(l.cfg)
	}
	if err != nil {
		refuse(err)
		return
	}
	specs, err := a.buildSinks(l.cfg)
	if err != nil {
		refuse(err)
		return
	}
	a.pipeline.SetSinks(specs)
	a.metrics.SetSinks(sinkNames(l.cfg))
	a.metrics.SetSources(sourceNames(l.cfg))
	a.server.SetRuntime(l.rt)
	if !reflect.DeepEqual(a.current.Server, l.cfg.Server) || !reflect.DeepEqual(a.current.Store, l.cfg.Store) {
		a.log.Warn("server and store settings changed; they take effect at the next restart")
	}
	if !reflect.DeepEqual(a.current.Console, l.cfg.Console) {
		a.log.Warn("console settings changed; they take effect at the next restart")
	}
	a.current = l.cfg
	a.metrics.Reloaded(time.Now(), nil)
	a.log.Info("config reloaded", "reason", reason, "sources", len(l.cfg.Sources), "sinks", len(l.cfg.Sinks), "rules", len(l.cfg.Rules))
}

// watch reloads on SIGHUP and when the config file changes on disk. It
// watches the directory, so editors that replace the file are seen.
func (a *app) watch(ctx context.Context, hup <-chan os.Signal) {
	var events <-chan fsnotify.Event
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(a.path)); err == nil {
			events = w.Events
			defer w.Close()
		} else {
			w.Close()
		}
	}
	if err != nil {
		a.log.Warn("cannot watch the config file; reload with SIGHUP", "err", err)
	}
	target := filepath.Clean(a.path)
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			a.reload("SIGHUP")
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if filepath.Clean(ev.Name) == target && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				debounce.Reset(250 * time.Millisecond)
			}
		case <-debounce.C:
			if _, err := os.Stat(a.path); err == nil {
				a.reload("file changed")
			}
		}
	}
}

// prune deletes events past the retention once at start and then hourly.
func (a *app) prune(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		cutoff := time.Now().Add(-a.current.Store.Retention.D())
		n, err := a.store.Prune(ctx, cutoff)
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			a.log.Warn("retention pruning failed", "err", err)
		case n > 0:
			a.log.Info("retention: deleted old events", "events", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// examplePrefix marks the secrets of the shipped example config.
const examplePrefix = "example-"

// refuseExampleSecrets refuses to serve on a non-loopback address while a
// source still uses an example secret: the example config works out of the
// box on 127.0.0.1 and cannot silently become a real deployment.
func refuseExampleSecrets(cfg *bridge.Config) error {
	if err := refuseExampleConsole(cfg); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(cfg.Server.Listen)
	if err != nil {
		return nil // validated elsewhere; net.Listen will say what is wrong
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	for _, s := range cfg.Sources {
		vals := append([]bridge.Secret{s.Secret, s.Token}, s.Secrets...)
		for _, v := range vals {
			if strings.HasPrefix(v.Value(), examplePrefix) {
				return fmt.Errorf("%s:%d: source %q uses an example secret (it starts with %q) while server.listen %q is reachable from other machines: set a real secret (see the source's ${...} variable) or listen on 127.0.0.1",
					cfg.File, s.Line, s.Name, examplePrefix, cfg.Server.Listen)
			}
		}
	}
	return nil
}
