package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// cmdFlags is a subcommand's flag set with the flags every command shares.
type cmdFlags struct {
	*flag.FlagSet
	config    string
	logFormat string
	logLevel  string
}

func newFlags(name string, stderr io.Writer) *cmdFlags {
	fs := flag.NewFlagSet("bridge "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &cmdFlags{FlagSet: fs}
	def := os.Getenv("BRIDGE_CONFIG")
	if def == "" {
		def = "bridge.yaml"
	}
	fs.StringVar(&f.config, "config", def, "config file")
	fs.StringVar(&f.config, "c", def, "config file (shorthand)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return f
}

// parse parses flags given before, between and after positional arguments
// and returns the positional ones.
func (f *cmdFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			return nil, err
		}
		rest := f.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		i := 0
		for i < len(rest) && !strings.HasPrefix(rest[i], "-") {
			i++
		}
		pos = append(pos, rest[:i]...)
		if i == len(rest) {
			return pos, nil
		}
		args = rest[i:]
	}
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
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format: %q is not text or json", f.logFormat)
	}
}

// fail prints an error the way every command does and returns exit code 1.
func fail(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "bridge: "+format+"\n", args...)
	return 1
}
