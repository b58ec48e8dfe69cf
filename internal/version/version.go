// Package version is the build's version, shared by the hub and fleetctl.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at link time (-ldflags "-X github.com/inferfleet/inferfleet/internal/version.Version=v1.2.3",
// as `make build` does from git describe); without it, the module version Go recorded.
var Version = ""

// Info is what a binary knows of its build.
type Info struct {
	Version   string `json:"version"`
	GitCommit string `json:"gitCommit,omitempty"`
	// GitTreeState is "dirty" when the build had uncommitted changes, else "clean".
	GitTreeState string `json:"gitTreeState,omitempty"`
	BuildDate    string `json:"buildDate,omitempty"`
	GoVersion    string `json:"goVersion"`
	Platform     string `json:"platform"`
}

// Get returns the running binary's build information.
func Get() Info {
	info := Info{Version: Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.GitCommit = s.Value
			case "vcs.time":
				info.BuildDate = s.Value
			case "vcs.modified":
				info.GitTreeState = map[string]string{"true": "dirty", "false": "clean"}[s.Value]
			}
		}
	}
	if info.Version == "" {
		info.Version = "v0.0.0-dev"
	}
	return info
}

// String is the version on one line: "v1.2.3 (commit 0123abc, dirty, go1.26.8 linux/amd64)".
func (i Info) String() string {
	s := i.Version + " ("
	if i.GitCommit != "" {
		c := i.GitCommit
		if len(c) > 12 {
			c = c[:12]
		}
		s += "commit " + c + ", "
		if i.GitTreeState == "dirty" {
			s += "dirty, "
		}
	}
	return s + fmt.Sprintf("%s %s)", i.GoVersion, i.Platform)
}
