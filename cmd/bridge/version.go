package main

import (
	"fmt"
	"io"

	"bridge/bridge"
)

// cmdVersion prints the release version, the VCS commit and its time, and
// the Go toolchain: what an operator quotes in a bug report.
func cmdVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: bridge version")
		return 2
	}
	b := bridge.ReadBuildInfo(version)
	fmt.Fprintf(stdout, "bridge %s\n", b.Version)
	fmt.Fprintf(stdout, "  revision:    %s\n", b.Revision)
	fmt.Fprintf(stdout, "  commit time: %s\n", b.Time)
	fmt.Fprintf(stdout, "  go version:  %s\n", b.GoVersion)
	fmt.Fprintf(stdout, "  platform:    %s\n", b.Platform)
	return 0
}
