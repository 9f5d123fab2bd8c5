package bridge

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Unknown is what BuildInfo says of a field the binary does not carry: a
// binary built by `go run`, `go test` or with -buildvcs=false has no VCS
// information, and the bridge says so rather than guess.
const Unknown = "unknown"

// BuildInfo says which build of the bridge is running, for `bridge version`
// and the bridge_build_info metric.
type BuildInfo struct {
	// Version is the release version, the binary's own constant.
	Version string
	// Revision is the VCS commit the binary was built from, with "+dirty"
	// when the work tree had uncommitted changes; Unknown without VCS
	// information.
	Revision string
	// Time is the commit's time (RFC 3339, from vcs.time). Go stamps no
	// build time, so that builds are reproducible; Unknown without VCS
	// information.
	Time string
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
	// Platform is GOOS/GOARCH.
	Platform string
}

// ReadBuildInfo returns the running binary's build information, with
// version as its release version.
func ReadBuildInfo(version string) BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return buildInfoFrom(version, bi)
}

// buildInfoFrom reads the VCS settings of bi (nil when the binary has no
// build information).
func buildInfoFrom(version string, bi *debug.BuildInfo) BuildInfo {
	b := BuildInfo{
		Version:   version,
		Revision:  Unknown,
		Time:      Unknown,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi == nil {
		return b
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				b.Revision = s.Value
			}
		case "vcs.time":
			if s.Value != "" {
				b.Time = s.Value
			}
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && b.Revision != Unknown {
		b.Revision += "+dirty"
	}
	return b
}

// SetBuildInfo registers bridge_build_info{version,revision,goversion} 1,
// as Prometheus projects export their build. Call it once.
func (m *Metrics) SetBuildInfo(b BuildInfo) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "bridge_build_info",
		Help: "The bridge's build: its version, VCS revision and Go version. Always 1.",
		ConstLabels: prometheus.Labels{
			"version":   b.Version,
			"revision":  b.Revision,
			"goversion": b.GoVersion,
		},
	})
	g.Set(1)
	m.Registry.MustRegister(g)
}
