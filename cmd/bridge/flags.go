package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"bridge/bridge"
)

// cmdFlags are the flags several commands share: -c/--config and, for
// serve, the logger's.
type cmdFlags struct {
	config    string
	logFormat string
	logLevel  string
}

// configDefault is the config file when -c is not given: $BRIDGE_CONFIG,
// then bridge.yaml.
func configDefault() string {
	if p := os.Getenv("BRIDGE_CONFIG"); p != "" {
		return p
	}
	return "bridge.yaml"
}

// addConfigFlag gives c the -c/--config flag, into f.config.
func addConfigFlag(c *cobra.Command, f *cmdFlags) {
	c.Flags().StringVarP(&f.config, "config", "c", configDefault(), "the config `FILE` (default: $BRIDGE_CONFIG, else bridge.yaml)")
	c.Flags().Lookup("config").DefValue = "" // the help says where the default comes from
	c.MarkFlagFilename("config", "yaml", "yml")
}

// addLogFlags gives c --log-format and --log-level.
func addLogFlags(c *cobra.Command, f *cmdFlags) {
	addChoice(c, &f.logFormat, "log-format", "text", []string{"text", "json"}, "the log's `FORMAT`: text or json")
	addChoice(c, &f.logLevel, "log-level", "info", []string{"debug", "info", "warn", "error"}, "the least `LEVEL` logged: debug, info, warn or error")
}

// logger builds the process logger from --log-format and --log-level.
func (f *cmdFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", f.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsText})), nil
	default:
		return nil, fmt.Errorf("--log-format: %q is not text or json", f.logFormat)
	}
}

// vendors are the values of --vendor: the vendors the bridge can verify
// and normalize.
func vendors() []string {
	return []string{bridge.VendorAgility, bridge.VendorSecureagentics, bridge.VendorAntly}
}

// choice is a string flag that takes one of a few values; any other is
// refused while the command line is parsed.
type choice struct {
	value   *string
	allowed []string
}

func (c *choice) String() string { return *c.value }
func (c *choice) Type() string   { return "string" }

func (c *choice) Set(s string) error {
	if !slices.Contains(c.allowed, s) {
		return errors.New(orList(c.allowed))
	}
	*c.value = s
	return nil
}

// addChoice gives c a flag that takes one of allowed, and completes them.
func addChoice(c *cobra.Command, p *string, name, def string, allowed []string, usage string) {
	*p = def
	c.Flags().Var(&choice{value: p, allowed: allowed}, name, usage)
	c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp))
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// exitCode is a command's exit status as an error: a command returns it
// when it has already said what went wrong on stderr.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// exit turns a command's exit code into what RunE returns.
func exit(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}

// usagef is a mistake in the command line: run prints it on one line with
// a pointer to the command's help, and exits 2. Every error a command
// returns that is not an exitCode is one.
func usagef(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// fail prints an error the way every command does and returns exit code 1.
func fail(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "bridge: "+format+"\n", args...)
	return 1
}

// noArgs is the Args of commands that take no positional argument.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return unexpectedArg(c, args[0])
	}
	return nil
}

// unexpectedArg refuses a positional argument; one that looks like a
// config file, on a command that reads one, is pointed to -c.
func unexpectedArg(c *cobra.Command, arg string) error {
	if c.Flags().Lookup("config") != nil && looksLikeConfig(arg) {
		return usagef("unexpected argument %s: did you mean -c %s?", arg, arg)
	}
	return usagef("unexpected argument %q", arg)
}

// looksLikeConfig reports whether a command-line word names a YAML file.
func looksLikeConfig(arg string) bool {
	return strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml")
}

// flagError rewords pflag's parse errors; a long flag written with one
// dash (the standard flag package's -source) is pointed to --source.
func flagError(c *cobra.Command, err error) error {
	var notExist *pflag.NotExistError
	var noValue *pflag.ValueRequiredError
	var invalid *pflag.InvalidValueError
	switch {
	case errors.As(err, &notExist):
		if group := notExist.GetSpecifiedShortnames(); group != "" {
			return singleDash(c, "-"+group)
		}
		return usagef("unknown flag --%s", notExist.GetSpecifiedName())
	case errors.As(err, &noValue):
		f := noValue.GetFlag()
		return usagef("%s needs a value", flagName(f))
	case errors.As(err, &invalid):
		f := invalid.GetFlag()
		return usagef("%s: %q is not %s", flagName(f), invalid.GetValue(), wantFor(f, invalid))
	}
	return err
}

// singleDash is the error for a word of one dash and several letters that
// is not a flag: "-source" where --source is one is pointed to it.
func singleDash(c *cobra.Command, word string) error {
	name, _, _ := strings.Cut(strings.TrimPrefix(word, "-"), "=")
	if len(name) > 1 && c.Flags().Lookup(name) != nil {
		return usagef("%s: long flags take two dashes: --%s", word, name)
	}
	return usagef("unknown flag %s", word)
}

// checkSingleDash finds, before parsing, a long flag written with one dash
// that pflag would otherwise read as a shorthand and its value: -config
// would be -c with the value "onfig".
func checkSingleDash(c *cobra.Command, args []string) error {
	fs := c.Flags()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return nil
		}
		if !strings.HasPrefix(a, "-") || len(a) < 2 {
			continue
		}
		long := strings.HasPrefix(a, "--")
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !long && len(name) > 1 && fs.Lookup(name) != nil {
			return singleDash(c, a)
		}
		var f *pflag.Flag
		if long {
			f = fs.Lookup(name)
		} else if len(name) == 1 {
			f = fs.ShorthandLookup(name)
		}
		if f != nil && f.NoOptDefVal == "" && !hasValue {
			i++ // the flag's value, whatever it looks like
		}
	}
	return nil
}

// flagName is how the help writes a flag: -c, --config or --source.
func flagName(f *pflag.Flag) string {
	if f.Shorthand != "" {
		return "-" + f.Shorthand + ", --" + f.Name
	}
	return "--" + f.Name
}

// wantFor says what a flag of f's type takes: "a whole number".
func wantFor(f *pflag.Flag, err *pflag.InvalidValueError) string {
	if _, ok := f.Value.(*choice); ok {
		return errors.Unwrap(err).Error()
	}
	switch f.Value.Type() {
	case "int":
		return "a whole number"
	case "float64":
		return "a number"
	case "duration":
		return "a duration such as 500ms, 10s or 2m"
	case "bool":
		return "true or false"
	}
	return errors.Unwrap(err).Error()
}

// configFor loads the config that the command line being completed names
// (-c, else the default), for completing --source and --sink; nil when it
// cannot be read. A config with problems still names its sources and sinks.
func configFor(c *cobra.Command) *bridge.Config {
	path := configDefault()
	if f := c.Flags().Lookup("config"); f != nil {
		path = f.Value.String()
	}
	cfg, _ := bridge.Load(path, sinkTypes())
	return cfg
}

// completeSources completes --source with the config's source names.
func completeSources(c *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var names []cobra.Completion
	if cfg := configFor(c); cfg != nil {
		for _, s := range cfg.Sources {
			names = append(names, s.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeSinks completes --sink with the config's sinks of sinkType (of
// every type when it is empty).
func completeSinks(sinkType string) cobra.CompletionFunc {
	return func(c *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var names []cobra.Completion
		if cfg := configFor(c); cfg != nil {
			for _, s := range cfg.Sinks {
				if sinkType == "" || s.Type == sinkType {
					names = append(names, s.Name)
				}
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeFiles completes a positional argument with files of these
// extensions.
func completeFiles(ext ...string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return ext, cobra.ShellCompDirectiveFilterFileExt
	}
}
