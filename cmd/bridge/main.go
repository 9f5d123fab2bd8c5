// Command bridge receives vendor webhooks, stores them durably, evaluates
// rules and delivers the resulting actions to Jira, Slack and SIEMs.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// version is the bridge's version, printed by `bridge version` and sent in
// User-Agent headers and CEF lines.
const version = "0.1.0"

func main() {
	cobra.EnableCommandSorting = false // the help lists commands in newRoot's order
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const about = `bridge: receive vendor webhooks, keep them, and turn them into Jira tickets,
Slack messages and SIEM records.`

// run runs a command line and returns the exit code: 0 when it did its
// job, 1 when it failed (it said why on stderr), 2 when the command line
// is wrong (an unknown command or flag, a missing or extra argument).
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(append([]string{}, args...)) // never nil: cobra would read os.Args
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.InitDefaultHelpCmd()
	if c, rest, err := root.Find(args); err == nil {
		// Before cobra would show a help: bridge bogus -h is no command.
		// (The shells' completion scripts call the hidden __complete that
		// cobra adds when it runs.)
		word := firstWord(rest)
		if word != "" && c.HasSubCommands() && !(c == root && strings.HasPrefix(word, cobra.ShellCompRequestCmd)) {
			if err := c.Args(c, []string{word}); err != nil {
				return usageFailed(stderr, c, err)
			}
		}
		if err := checkSingleDash(c, rest); err != nil {
			return usageFailed(stderr, c, err)
		}
	}
	c, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	return usageFailed(stderr, c, err)
}

// firstWord is the first argument of a command that only holds others
// (bridge, bridge antly) that is not a flag or a flag's value: the name of
// a command it does not have.
func firstWord(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		case a == "-h" || a == "--help" || a == "--version" || strings.Contains(a, "="):
		case strings.HasPrefix(a, "-"):
			i++ // a flag of the command below, and its value
		default:
			return a
		}
	}
	return ""
}

// usageFailed prints a command-line mistake on one line, and where the
// command's help is; it returns exit code 2.
func usageFailed(stderr io.Writer, c *cobra.Command, err error) int {
	if c.Name() == "help" && c.Parent() == c.Root() {
		c = c.Root() // bridge help bogus: the list of commands is the help to see
	}
	fmt.Fprintf(stderr, "%s: %v\nrun '%s' for usage\n", c.CommandPath(), err, helpCommandLine(c))
	return 2
}

// helpCommandLine is how to ask for c's help: bridge help serve.
func helpCommandLine(c *cobra.Command) string {
	path := strings.TrimPrefix(c.CommandPath(), c.Root().Name())
	return "bridge help" + path
}

// newRoot builds the command tree, in the order the help lists it.
func newRoot() *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:   "bridge",
		Short: "receive vendor webhooks, keep them, and turn them into Jira tickets, Slack messages and SIEM records",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			return unknownCommand(c, args[0])
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if showVersion {
				return exit(printVersion(c.OutOrStdout()))
			}
			fmt.Fprint(c.ErrOrStderr(), rootHelp(c))
			return exitCode(2)
		},
		SilenceErrors:              true,
		SilenceUsage:               true,
		SuggestionsMinimumDistance: 2,
		CompletionOptions:          cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.Flags().BoolVar(&showVersion, "version", false, "print the version, as bridge version does")
	root.SetFlagErrorFunc(flagError)
	root.SetHelpFunc(printHelp)
	root.AddCommand(
		serveCommand(),
		validateCommand(),
		testCommand(),
		sendCommand(),
		eventsCommand(),
		deliveriesCommand(),
		replayCommand(),
		hashPasswordCommand(),
		migrateCommand(),
		storeCommand(),
		antlyCommand(),
		benchCommand(),
		checkCommand("jira"),
		checkCommand("slack"),
		versionCommand(),
		schemaCommand(),
		healthcheckCommand(),
		completionCommand(),
	)
	root.SetHelpCommand(helpCommand())
	walk(root, func(c *cobra.Command) {
		c.DisableFlagsInUseLine = true
		c.Flags().SortFlags = false // in the order the command adds them: -c first
	})
	return root
}

// walk calls fn on c and every command under it.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}

// unknownCommand refuses name as a command of c, with the nearest ones.
func unknownCommand(c *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q", name)
	if s := c.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", orList(s))
	}
	return usagef("%s", msg)
}

// groupCommand is a command that only holds others: bridge store import,
// bridge antly subscribe.
func groupCommand(use, short string, subs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{
		Use:   use,
		Short: short,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			if len(c.Commands()) == 1 {
				return usagef("unknown command %q: the only command is %s", args[0], c.Commands()[0].Name())
			}
			return usagef("unknown command %q: the commands are %s", args[0], strings.Join(subNames(c), ", "))
		},
		RunE: func(c *cobra.Command, _ []string) error {
			return usagef("give a command: %s", orList(subNames(c)))
		},
		// The flags belong to the command below: an unknown one is no
		// reason to miss that the command is unknown.
		FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true},
	}
	g.AddCommand(subs...)
	return g
}

// subNames are the names of c's commands, in their order.
func subNames(c *cobra.Command) []string {
	var names []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	return names
}

// helpCommand is `bridge help [COMMAND...]`.
func helpCommand() *cobra.Command {
	return &cobra.Command{
		Use:                   "help [COMMAND]",
		DisableFlagsInUseLine: true,
		Short:                 "a command's description, its flags one line each, and an example",
		Example:               "  bridge help serve\n  bridge help antly subscribe",
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				return unknownCommand(target, rest[0])
			}
			target.InitDefaultHelpFlag() // as -h would: the help lists it
			return target.Help()
		},
		ValidArgsFunction: func(c *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			target, _, err := c.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return subNames(target), cobra.ShellCompDirectiveNoFileComp
		},
	}
}

// printHelp is every command's help: -h, --help and bridge help COMMAND.
func printHelp(c *cobra.Command, _ []string) {
	w := c.OutOrStdout()
	if !c.HasParent() {
		fmt.Fprint(w, rootHelp(c))
		return
	}
	fmt.Fprintf(w, "%s: %s\n", c.CommandPath(), c.Short)
	if c.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Long))
	}
	fmt.Fprintln(w, "\nUsage:")
	if c.HasAvailableSubCommands() {
		fmt.Fprint(w, commandTable(c))
	} else {
		fmt.Fprintf(w, "  %s\n", c.UseLine())
	}
	if fs := c.LocalFlags(); fs.HasAvailableFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
	}
	if c.Example != "" {
		fmt.Fprintf(w, "\nExample:\n%s\n", strings.TrimRight(c.Example, "\n"))
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(w, "\nRun '%s COMMAND' for a command's flags and an example.\n", helpCommandLine(c))
	}
}

// rootHelp is bridge's help: every command with what it does.
func rootHelp(root *cobra.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nUsage:\n%s", about, commandTable(root))
	fmt.Fprintf(&b, `
The config file (-c, --config FILE) defaults to $BRIDGE_CONFIG, then bridge.yaml.
Run 'bridge help COMMAND' or 'bridge COMMAND -h' for a command's flags and an
example; 'bridge --version' prints what 'bridge version' does.
`)
	return b.String()
}

// usageColumn is where the command table's descriptions start.
const usageColumn = 46

// commandTable lists every command under c that runs (not those that
// only group others), with its usage line and what it does.
func commandTable(c *cobra.Command) string {
	var b strings.Builder
	var leaves func(*cobra.Command)
	leaves = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if !s.IsAvailableCommand() && s.Name() != "help" {
				continue
			}
			if s.HasAvailableSubCommands() {
				leaves(s)
				continue
			}
			line := "  " + s.UseLine()
			if len(line) >= usageColumn {
				line += "\n" + strings.Repeat(" ", usageColumn)
			} else {
				line += strings.Repeat(" ", usageColumn-len(line))
			}
			b.WriteString(line + s.Short + "\n")
		}
	}
	leaves(c)
	return b.String()
}

// completionShells are the shells `bridge completion` writes a script for.
func completionShells() []string { return []string{"bash", "zsh", "fish", "powershell"} }

// completionCommand is `bridge completion SHELL`.
func completionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "print the shell's completion script for bridge's commands and flags",
		Long: `Print a script that completes bridge's commands, flags and their values
(--source and --sink from the config given with -c, --vendor, --status...)
in the shell. Load it in the current shell, or install it where the shell
looks for completions:

  bash:        source <(bridge completion bash)
               bridge completion bash > /etc/bash_completion.d/bridge
               (needs the bash-completion package)
  zsh:         bridge completion zsh > "${fpath[1]}/_bridge"   (then restart zsh;
               needs autoload -U compinit; compinit in ~/.zshrc)
  fish:        bridge completion fish > ~/.config/fish/completions/bridge.fish
  powershell:  bridge completion powershell | Out-String | Invoke-Expression`,
		Example:   "  bridge completion bash > /etc/bash_completion.d/bridge\n  source <(bridge completion bash)",
		ValidArgs: completionShells(),
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 || !slices.Contains(completionShells(), args[0]) {
				return usagef("give one shell: %s", orList(completionShells()))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			root, w := c.Root(), c.OutOrStdout()
			var err error
			switch args[0] {
			case "bash":
				err = root.GenBashCompletionV2(w, true)
			case "zsh":
				err = root.GenZshCompletion(w)
			case "fish":
				err = root.GenFishCompletion(w, true)
			case "powershell":
				err = root.GenPowerShellCompletionWithDesc(w)
			}
			if err != nil {
				return exit(fail(c.ErrOrStderr(), "completion: %v", err))
			}
			return nil
		},
	}
}
