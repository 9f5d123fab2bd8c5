package main

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"

	"bridge/bridge"
	"bridge/rules"
	"bridge/sinks/file"
	"bridge/sinks/httpsink"
	"bridge/sinks/jira"
	"bridge/sinks/slack"
	"bridge/sinks/splunk"
	"bridge/sinks/syslog"
)

// sinkTypes is every sink type the binary knows, by its config `type`.
func sinkTypes() map[string]bridge.SinkType {
	return map[string]bridge.SinkType{
		"jira":       jira.Type(),
		"slack":      slack.Type(),
		"splunk_hec": splunk.Type(),
		"syslog":     syslog.Type(),
		"http":       httpsink.Type(),
		"file":       file.Type(),
	}
}

// loaded is a config file with everything built from it that does not
// touch the outside world: sources and compiled rules.
type loaded struct {
	cfg   *bridge.Config
	rules *rules.Set
	rt    *bridge.Runtime
}

// loadConfig loads, validates and compiles a config file; the error is
// bridge.Problems listing every mistake, sorted by line.
func loadConfig(path string) (*loaded, error) {
	types := sinkTypes()
	cfg, err := bridge.Load(path, types)
	var problems bridge.Problems
	if err != nil {
		if !errors.As(err, &problems) || cfg == nil {
			return nil, err
		}
	}
	infos := map[string]rules.SinkInfo{}
	for _, s := range cfg.Sinks {
		if t, ok := types[s.Type]; ok && s.Config != nil {
			infos[s.Name] = rules.SinkInfo{Type: &t, Config: s.Config}
		} else if s.Name != "" {
			// Its type is reported already: its actions' templates are
			// still checked, their keys not, and the sink is not unknown.
			infos[s.Name] = rules.SinkInfo{}
		}
	}
	if cfg.SinksUnread {
		// Load said once that the sinks could not be read; every action
		// naming one would otherwise add "unknown sink".
		for _, r := range cfg.Rules {
			for _, a := range r.Actions {
				if _, ok := infos[a.Sink]; !ok && a.Sink != "" {
					infos[a.Sink] = rules.SinkInfo{}
				}
			}
		}
	}
	set, rps := rules.Compile(path, cfg.Rules, infos)
	problems = append(problems, rps...)
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
		return nil, problems
	}
	rt := &bridge.Runtime{Config: cfg, Sources: map[string]*bridge.Source{}, Rules: set}
	for _, sc := range cfg.Sources {
		src, err := bridge.NewSource(sc)
		if err != nil {
			return nil, bridge.Problems{{File: path, Line: sc.Line, Msg: fmt.Sprintf("source %q: %v", sc.Name, err)}}
		}
		rt.Sources[sc.Name] = src
	}
	return &loaded{cfg: cfg, rules: set, rt: rt}, nil
}

// sinkEnv is what a sink gets from the bridge.
func sinkEnv(e *bridge.SinkEntry, cfg *bridge.Config, store bridge.Store, log *slog.Logger) bridge.SinkEnv {
	env := bridge.SinkEnv{
		Name:    e.Name,
		Logger:  log.With("sink", e.Name),
		Timeout: e.Timeout.D(),
		BaseDir: cfg.BaseDir,
		Version: version,
		Fault:   testFault(log),
	}
	if store != nil {
		env.State = store.SinkState(e.Name)
		env.Locks = store.SinkLocks(e.Name)
	}
	return env
}
