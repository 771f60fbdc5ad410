package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	"golang.org/x/sys/cpu"
)

func init() {
	register("version", "print the build: module version, commit, Go version, SIMD and XLA", runVersion)
}

// buildVersion is set by the release build (-ldflags "-X main.buildVersion=v1.2.3");
// otherwise the module version from the build information is used.
var buildVersion = ""

// buildInfo is what `vitbert version` reports.
type buildInfo struct {
	Version   string // module version, "(devel)" for a build from a checkout
	Commit    string // VCS revision, "+dirty" when the tree had changes
	CommitAt  string // VCS commit time
	GoVersion string
	Platform  string // GOOS/GOARCH
	SIMD      bool   // built with GOEXPERIMENT=simd
	XLA       bool   // the XLA backend is compiled in (-tags xla)
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: "(unknown)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		SIMD: simdCompiled, XLA: slices.Contains(compute.List(), "xla")}
	if info, ok := debug.ReadBuildInfo(); ok {
		b.Version = info.Main.Version
		dirty := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.time":
				b.CommitAt = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && b.Commit != "" {
			b.Commit += "+dirty"
		}
	}
	if buildVersion != "" {
		b.Version = buildVersion
	}
	return b
}

func (b buildInfo) write(w io.Writer) {
	commit := b.Commit
	if commit == "" {
		commit = "(unknown: built without VCS information)"
	} else if b.CommitAt != "" {
		commit += " (" + b.CommitAt + ")"
	}
	yes := map[bool]string{true: "yes", false: "no"}
	fmt.Fprintf(w, "vitbert %s\n", b.Version)
	fmt.Fprintf(w, "  commit:   %s\n", commit)
	fmt.Fprintf(w, "  go:       %s %s\n", b.GoVersion, b.Platform)
	fmt.Fprintf(w, "  simd:     %s (GOEXPERIMENT=simd)\n", yes[b.SIMD])
	fmt.Fprintf(w, "  xla:      %s (-tags xla)\n", yes[b.XLA])
}

func runVersion(args []string) error {
	fs := newFlags("version", "")
	if err := fs.ParseNoArgs(args); err != nil {
		return err
	}
	readBuildInfo().write(os.Stdout)
	return nil
}

// simdWarning is the warning for a binary built without GOEXPERIMENT=simd on
// an amd64 CPU whose AVX2 or AVX-512 the pure-Go backend would use, or "".
func simdWarning(goarch string, built, avx2, avx512 bool) string {
	if built || goarch != "amd64" || !(avx2 || avx512) {
		return ""
	}
	ext := "AVX2"
	if avx512 {
		ext = "AVX-512"
	}
	return strings.TrimSpace(fmt.Sprintf(`vitbert: warning: this binary was built without GOEXPERIMENT=simd; the CPU has %s,
which the pure-Go backend uses only in a SIMD build (2-13x faster). Rebuild with
'make build', or: GOEXPERIMENT=simd go install github.com/vitbert/vitbert/cmd/vitbert@latest`, ext))
}

// warnIfSlowBuild prints simdWarning for this binary and CPU on stderr.
func warnIfSlowBuild() {
	if w := simdWarning(runtime.GOARCH, simdCompiled, cpu.X86.HasAVX2, cpu.X86.HasAVX512F); w != "" {
		fmt.Fprintln(os.Stderr, w)
	}
}
