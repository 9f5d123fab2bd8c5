package main

import (
	"log/slog"
	"os"
)

// faultEnv names the environment variable of the crash tests' seam: set to
// a sink's fault-injection point (e.g. jira.after-remember), `bridge serve`
// kills itself with SIGKILL when a sink reaches that point, as a kill -9
// there would. It is never read from the config; leave it unset.
const faultEnv = "BRIDGE_TEST_FAULT"

// testFault is the bridge.SinkEnv.Fault of this process: nil unless
// BRIDGE_TEST_FAULT is set.
func testFault(log *slog.Logger) func(point string) {
	want := os.Getenv(faultEnv)
	if want == "" {
		return nil
	}
	return func(point string) {
		if point != want {
			return
		}
		log.Error("fault injection: killing the process", "point", point, "env", faultEnv)
		if p, err := os.FindProcess(os.Getpid()); err == nil && p.Kill() == nil {
			select {} // the signal is asynchronous: nothing runs on from the fault point
		}
		os.Exit(137) // as a SIGKILL would end the process
	}
}
