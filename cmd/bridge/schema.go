package main

import (
	"io"

	"github.com/spf13/cobra"

	"bridge/bridge"
)

func schemaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "the config file's JSON Schema (> docs/bridge.schema.json)",
		Long: `Print the config file's JSON Schema, generated from the config types and
the sink types this binary knows; docs/bridge.schema.json is its output, for
editors (the yaml-language-server line at the top of rules.example.yaml).`,
		Example:           "  bridge schema > docs/bridge.schema.json",
		Args:              noArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(cmdSchema(c.OutOrStdout(), c.ErrOrStderr()))
		},
	}
}

// cmdSchema prints the config file's JSON Schema.
func cmdSchema(stdout, stderr io.Writer) int {
	b, err := bridge.JSONSchema(sinkTypes())
	if err != nil {
		return fail(stderr, "%v", err)
	}
	stdout.Write(b)
	return 0
}
