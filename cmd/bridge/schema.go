package main

import (
	"fmt"
	"io"

	"bridge/bridge"
)

// cmdSchema prints the config file's JSON Schema, generated from the config
// types and the sink types this binary knows; docs/bridge.schema.json is
// its output, for editors (the yaml-language-server line at the top of
// rules.example.yaml).
func cmdSchema(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: bridge schema > docs/bridge.schema.json")
		return 2
	}
	b, err := bridge.JSONSchema(sinkTypes())
	if err != nil {
		return fail(stderr, "%v", err)
	}
	stdout.Write(b)
	return 0
}
