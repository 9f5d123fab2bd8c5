package bridge

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBuildInfoFrom(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	platform := runtime.GOOS + "/" + runtime.GOARCH
	vcs := func(modified string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.1", Settings: []debug.BuildSetting{
			{Key: "-trimpath", Value: "true"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: modified},
		}}
	}
	for _, c := range []struct {
		name string
		bi   *debug.BuildInfo
		want BuildInfo
	}{
		{"clean tree", vcs("false"), BuildInfo{"1.2.3", rev, "2026-01-02T03:04:05Z", "go1.26.1", platform}},
		{"uncommitted changes", vcs("true"), BuildInfo{"1.2.3", rev + "+dirty", "2026-01-02T03:04:05Z", "go1.26.1", platform}},
		{"no VCS information (go run, go test, -buildvcs=false)", &debug.BuildInfo{GoVersion: "go1.26.1"},
			BuildInfo{"1.2.3", Unknown, Unknown, "go1.26.1", platform}},
		{"no build information", nil, BuildInfo{"1.2.3", Unknown, Unknown, runtime.Version(), platform}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := buildInfoFrom("1.2.3", c.bi); got != c.want {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestBuildInfoMetric(t *testing.T) {
	m := NewMetrics(nil)
	m.SetBuildInfo(BuildInfo{Version: "1.2.3", Revision: "abc+dirty", Time: "2026-01-02T03:04:05Z", GoVersion: "go1.26.1", Platform: "linux/amd64"})
	want := `# HELP bridge_build_info The bridge's build: its version, VCS revision and Go version. Always 1.
# TYPE bridge_build_info gauge
bridge_build_info{goversion="go1.26.1",revision="abc+dirty",version="1.2.3"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "bridge_build_info"); err != nil {
		t.Error(err)
	}
}
