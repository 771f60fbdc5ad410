package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSIMDWarning(t *testing.T) {
	cases := []struct {
		arch                string
		built, avx2, avx512 bool
		want                string // substring, "" for no warning
	}{
		{"amd64", false, true, false, "AVX2"},
		{"amd64", false, true, true, "AVX-512"},
		{"amd64", true, true, true, ""},    // SIMD build: nothing to say
		{"amd64", false, false, false, ""}, // old CPU: SIMD would not help
		{"arm64", false, false, false, ""},
	}
	for _, c := range cases {
		got := simdWarning(c.arch, c.built, c.avx2, c.avx512)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("simdWarning(%s, built=%v, avx2=%v, avx512=%v) = %q, want it to contain %q", c.arch, c.built, c.avx2, c.avx512, got, c.want)
		}
		if got != "" && !strings.Contains(got, "GOEXPERIMENT=simd") {
			t.Errorf("warning does not say how to rebuild: %q", got)
		}
	}
}

func TestVersionReport(t *testing.T) {
	b := readBuildInfo()
	if b.SIMD != simdCompiled || b.GoVersion == "" || b.Platform == "" {
		t.Fatalf("build info %+v", b)
	}
	var out bytes.Buffer
	buildInfo{Version: "v1.2.3", Commit: "abc123+dirty", CommitAt: "2026-01-02T03:04:05Z", GoVersion: "go1.27.3",
		Platform: "linux/amd64", SIMD: true, XLA: false}.write(&out)
	for _, want := range []string{"vitbert v1.2.3", "commit:   abc123+dirty (2026-01-02T03:04:05Z)", "go:       go1.27.3 linux/amd64",
		"simd:     yes", "xla:      no"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, out.String())
		}
	}
}
