package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vitbert/vitbert/bench"
)

func TestBenchCommand(t *testing.T) {
	out, err := capture(t, runBench, "--preset", "micro", "--mode", "joint,infer-text", "--in-process",
		"--json", "--steps", "1", "--warmup", "0")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got %q", out)
	}
	p, _ := bench.Lookup("micro")
	for i, mode := range []string{"joint", "infer-text"} {
		var r bench.Result
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if r.Preset != "micro" || r.Mode != mode || !(r.MedianMs > 0) {
			t.Errorf("line %d: %+v", i+1, r)
		}
		if want := p.FLOPs(mode) / 1e9; r.GFLOP != float64(int64(want*1000+0.5))/1000 {
			t.Errorf("%s: %g GFLOP per step, want %g", mode, r.GFLOP, want)
		}
	}

	out, err = capture(t, runBench, "--preset", "micro", "--mode", "gradmask", "--steps", "1", "--warmup", "0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "median_ms") || !strings.Contains(out, "micro  gradmask") {
		t.Errorf("table output:\n%s", out)
	}

	for _, bad := range [][]string{
		{"--preset", "huge"},
		{"--mode", "train"},
		{"--steps", "0"},
		{"--preset", "micro", "--cpuprofile", "x.prof"},
	} {
		if _, err := capture(t, runBench, bad...); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"6GiB", 6 << 30, true},
		{"512MiB", 512 << 20, true},
		{"1.5GB", 1500000000, true},
		{"off", 0, true},
		{"12", 0, false},
		{"-1GiB", 0, false},
		{"lots", 0, false},
	}
	for _, tc := range tests {
		got, err := memoryLimit(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("memoryLimit(%q) = %d, %v; want %d (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if auto, err := memoryLimit("auto"); err != nil || auto < 0 || auto > 7<<30 {
		t.Errorf("memoryLimit(auto) = %d, %v", auto, err)
	}
}

func TestBackendConfig(t *testing.T) {
	tests := []struct {
		env        string
		set        bool
		registered []string
		procs      int
		want       string
		ok         bool
	}{
		{"", false, []string{"go"}, 2, "go:num_executors=2", true},
		{"", false, []string{"go"}, 64, "go:num_executors=8", true},
		{"", false, []string{"go"}, 0, "go:num_executors=1", true},
		{"", false, []string{"go", "xla"}, 2, "", false},
		{"go", true, []string{"go", "xla"}, 4, "go:num_executors=4", true},
		{"go:", true, []string{"go"}, 2, "go:num_executors=2", true},
		{"go:parallelism=3", true, []string{"go"}, 2, "go:parallelism=3,num_executors=2", true},
		{"go:parallelism=3,num_executors=5", true, []string{"go"}, 2, "go:parallelism=3,num_executors=5", true},
		{"go:ops_sequential", true, []string{"go"}, 2, "go:ops_sequential", true},
		{"xla:cuda", true, []string{"go", "xla"}, 2, "xla:cuda", true},
	}
	for _, tc := range tests {
		got, ok := backendConfig(tc.env, tc.set, tc.registered, tc.procs)
		if got != tc.want || ok != tc.ok {
			t.Errorf("backendConfig(%q, %v, %v, %d) = %q, %v; want %q, %v",
				tc.env, tc.set, tc.registered, tc.procs, got, ok, tc.want, tc.ok)
		}
	}
}

// A backend that is not compiled in (or a plugin that does not exist) is an
// error naming GOMLX_BACKEND, not a panic.
func TestNewBackendMissingIsError(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", "xla:/nonexistent/pjrt_plugin.so")
	b, err := newBackend()
	if err == nil {
		b.Finalize()
		t.Fatal("opening a missing XLA plugin gave no error")
	}
	if !strings.Contains(err.Error(), "GOMLX_BACKEND") {
		t.Errorf("error %q does not name GOMLX_BACKEND", err)
	}
	if strings.Contains(err.Error(), "can't find backend") && !strings.Contains(err.Error(), "-tags xla") {
		t.Errorf("error %q does not say how to get the XLA backend", err)
	}
}
