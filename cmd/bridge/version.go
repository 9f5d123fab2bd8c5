package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"bridge/bridge"
)

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "the version, VCS revision and commit time, Go version",
		Long: `Print the release version, the commit the binary was built from (+dirty for
uncommitted changes; unknown for go run and builds without VCS information),
its time, the Go toolchain and the platform: what to quote in a bug report.
bridge --version prints the same.`,
		Example:           "  bridge version",
		Args:              noArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(printVersion(c.OutOrStdout()))
		},
	}
}

// printVersion prints the release version, the VCS commit and its time, and
// the Go toolchain: what an operator quotes in a bug report.
func printVersion(stdout io.Writer) int {
	b := bridge.ReadBuildInfo(version)
	fmt.Fprintf(stdout, "bridge %s\n", b.Version)
	fmt.Fprintf(stdout, "  revision:    %s\n", b.Revision)
	fmt.Fprintf(stdout, "  commit time: %s\n", b.Time)
	fmt.Fprintf(stdout, "  go version:  %s\n", b.GoVersion)
	fmt.Fprintf(stdout, "  platform:    %s\n", b.Platform)
	return 0
}
