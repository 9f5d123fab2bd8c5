// Command bridge receives vendor webhooks, stores them durably, evaluates
// rules and delivers the resulting actions to Jira, Slack and SIEMs.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is the bridge's version, printed by `bridge version` and sent in
// User-Agent headers and CEF lines.
const version = "0.1.0"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `bridge: receive vendor webhooks, keep them, and turn them into Jira tickets,
Slack messages and SIEM records.

Usage:
  bridge serve -c FILE [--dry-run]            run the server
  bridge validate -c FILE                     check a config file
  bridge test -c FILE TESTS.yaml              run rule tests
  bridge test -c FILE --source NAME PAYLOAD.json
                                              show what one payload becomes
  bridge send (--url URL --vendor V [--secret S] [--token T] [--token-header H] | -c FILE --source NAME) PAYLOAD.json
  bridge events -c FILE [--source S] [--limit N] [--json]
  bridge deliveries -c FILE [--status S] [--event ID] [--limit N] [--json]
  bridge replay -c FILE (DELIVERY_ID... | --failed)
  bridge hash-password [--cost N]             read a console password (terminal or stdin), print its bcrypt hash
  bridge migrate -c FILE                      create or upgrade the PostgreSQL store's schema
  bridge store import -c FILE SQLITE_PATH     copy an SQLite store into the PostgreSQL store
                                              (stop the serve that uses SQLITE_PATH first)
  bridge antly subscribe|unsubscribe|sync -c FILE --source NAME
  bridge bench --url URL --vendor V [--secret S] [-n N] [-c C] [--rate R] [PAYLOAD.json]
  bridge jira check -c FILE [--sink NAME]
  bridge slack check -c FILE [--sink NAME]
  bridge version                              the version, VCS revision and Go version
  bridge schema                               the config file's JSON Schema (docs/bridge.schema.json)
  bridge healthcheck [--url URL]              GET URL (default http://127.0.0.1:8080/healthz), exit 0 on 200

The config file defaults to $BRIDGE_CONFIG, then bridge.yaml.
`

// run dispatches a command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(args []string, stdout, stderr io.Writer) int{
		"serve":      cmdServe,
		"validate":   cmdValidate,
		"test":       cmdTest,
		"send":       cmdSend,
		"events":     cmdEvents,
		"deliveries": cmdDeliveries,
		"replay":     cmdReplay,
		"migrate":    cmdMigrate,
		"store":      cmdStore,
		"antly":      cmdAntly,
		"bench":      cmdBench,
		"jira":       cmdJira,
		"slack":      cmdSlack,

		// What the binary is, and what deployments ask of it.
		"version":     cmdVersion,
		"schema":      cmdSchema,
		"healthcheck": cmdHealthcheck,

		// The console's users (console.users).
		"hash-password": cmdHashPassword,
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "bridge: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return cmd(args[1:], stdout, stderr)
}
