package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/gomlx/compute"
	"github.com/vitbert/vitbert/bench"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/train"
)

func init() {
	register("bench", "time training and inference steps of fixed model sizes (ours vs the PyTorch reference)", runBench)
}

const benchUsage = `[--preset tiny,small,base] [--mode joint,gradmask,pcgrad,cagrad,infer-image,infer-text] [--steps N] [--warmup N] [--devices N [--mesh]] [--json]

Times one step of the joint pre-training (frozen text and image teachers
forward, distillation losses on MLM and image classes, AdamW), of the same
step with gradient masking (random 0/1 mask of ratio 0.5 on the shared
encoder, active), with PCGrad and with CAGrad (c = 0.4) combining the two
task gradients, and of the student's forward passes, on random inputs.
Every (preset, mode) runs in its own child process so that its peak memory is
its own.

Reported per (preset, mode): median step time after warm-up, samples/s (texts
+ images per step / median), achieved GFLOP/s, peak RSS (VmHWM) and compile
time (first step minus median), and the CPU time per timed step (user +
system, all threads), steadier than wall-clock time on a shared machine.

GFLOP/s = FLOPs / median / 1e9, where FLOPs counts 2·m·n·k for every matrix
product of the forward pass — Q, K, V, output and MLP projections, attention
QKᵀ and AV, the patch projection, the heads (the MLM head at the masked
positions only) — times 3 for a training step (forward + 2 backward
products), plus one forward of each frozen teacher. Element-wise work is not
counted.

benchmarks/compare.sh runs this and the PyTorch reference
(benchmarks/pytorch/bench.py, one thread) one after the other and prints the
ratios ours/PyTorch of step time and CPU time.

Memory: the pure-Go backend's buffers live on the Go heap, which by default
may grow to twice its live size before a collection; --memory-limit (default
min(7GiB, 3/4 of RAM), or GOMEMLIMIT) makes the collector keep the heap under
that soft limit, which the base preset needs to train in 8 GB.

Devices: --devices N (N > 1) runs the training modes data-parallel over N
devices of the backend (XLA only, docs/gpu.md), the global batch being the
preset's (or --batch) split evenly; --mesh runs that distributed step even on
one device (--devices 1 --mesh). The inference modes run on one device.

Presets (vocabulary 30522, distillation on both tasks):
  tiny   2 layers, D=128, 4 heads, MLP 512; texts 64; images 32×32×3 / 4; batch 16+16
  small  4 layers, D=256, 4 heads, MLP 1024; texts 128; images 32×32×3 / 4; batch 32+32
  base   12 layers, D=768, 12 heads, MLP 3072; texts 128; images 224×224×3 / 16; 1000 classes; batch 8+8`

func runBench(args []string) error {
	fs := newFlags("bench", benchUsage)
	presets := fs.String("preset", "tiny", "comma-separated presets: tiny, small, base")
	modes := fs.String("mode", strings.Join(bench.Modes, ","), "comma-separated modes: "+strings.Join(bench.Modes, ", "))
	backend := fs.String("backend", "", "compute backend, as GOMLX_BACKEND (go, xla:cuda, xla:/path/plugin.so); default GOMLX_BACKEND or go")
	asJSON := fs.Bool("json", false, "print one JSON object per (preset, mode)")
	steps := fs.IntIn("steps", 10, train.AtLeast(1), "timed steps")
	warmup := fs.IntIn("warmup", 3, train.AtLeast(0), "untimed steps after the first (compiling) one")
	batch := fs.IntIn("batch", 0, train.AtLeast(1), "texts and images per step (default: the preset's)")
	seed := fs.Int64("seed", 1, "seed of inputs, weights and masks")
	precision := fs.String("precision", "f32", "matrix products in f32, or bf16 (mixed precision: float32 weights, optimiser state, norms, softmax and losses)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the timed steps to this file (single preset and mode)")
	inProcess := fs.Bool("in-process", false, "run every benchmark in this process (peak RSS is then cumulative)")
	memLimit := fs.String("memory-limit", "auto", "Go heap soft limit (e.g. 6GiB, 512MiB; off: none; auto: GOMEMLIMIT if set, else min(7GiB, 3/4 of RAM))")
	devices := fs.IntIn("devices", 0, train.AtLeast(0).With("0: the backend's default device"), "training modes: data-parallel over this many devices (XLA, docs/gpu.md)")
	mesh := fs.Bool("mesh", false, "training modes: use the data-parallel (device-mesh) step even for one device")
	child := fs.Bool("child", false, "internal: run one benchmark and print its JSON result")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ps, err := bench.ParseList(*presets, append(bench.Presets, "micro"), "preset")
	if err != nil {
		return err
	}
	ms, err := bench.ParseList(*modes, bench.Modes, "mode")
	if err != nil {
		return err
	}
	if *cpuprofile != "" && len(ps)*len(ms) != 1 {
		return fmt.Errorf("--cpuprofile needs exactly one preset and one mode")
	}
	if *backend != "" {
		if err := os.Setenv(compute.ConfigEnvVar, *backend); err != nil {
			return err
		}
	}
	limit, err := memoryLimit(*memLimit)
	if err != nil {
		return err
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	prec, err := model.ParsePrecision(*precision)
	if err != nil {
		return fmt.Errorf("--precision: %w", err)
	}
	if err := startHook(); err != nil {
		return err
	}
	opt := bench.Options{Steps: *steps, Warmup: *warmup, Seed: *seed, Precision: prec, Devices: *devices, Mesh: *mesh}
	out := os.Stdout

	one := func(name, mode string) (*bench.Result, error) {
		p, err := bench.Lookup(name)
		if err != nil {
			return nil, err
		}
		if fs.Given("batch") {
			p.TextBatch, p.ImageBatch = *batch, *batch
		}
		b, err := newBackend()
		if err != nil {
			return nil, err
		}
		defer b.Finalize()
		if *cpuprofile != "" {
			f, err := os.Create(*cpuprofile)
			if err != nil {
				return nil, fmt.Errorf("creating %s: %w", *cpuprofile, err)
			}
			defer f.Close()
			opt.CPUProfile = f
		}
		return bench.Run(b, p, mode, opt)
	}
	if *child {
		if len(ps) != 1 || len(ms) != 1 {
			return fmt.Errorf("--child runs one preset and one mode")
		}
		r, err := one(ps[0], ms[0])
		if err != nil {
			return err
		}
		return json.NewEncoder(out).Encode(r)
	}

	if !*asJSON {
		dp := ""
		if *devices > 1 || *mesh {
			dp = fmt.Sprintf(", training data-parallel over %d device(s)", max(*devices, 1))
		}
		fmt.Fprintf(out, "vitbert bench: %s, %s products, GOMAXPROCS=%d, %s, %d warm-up + %d timed steps%s\n",
			backendName(), prec, runtime.GOMAXPROCS(0), cpuModel(), *warmup, *steps, dp)
		printHeader(out)
	}
	fork := !*inProcess && len(ps)*len(ms) > 1
	for _, name := range ps {
		for _, mode := range ms {
			var r *bench.Result
			if fork {
				r, err = runChild(name, mode, args)
			} else {
				r, err = one(name, mode)
			}
			if err != nil {
				return err
			}
			if *asJSON {
				r.TimesMs = nil
				if err := json.NewEncoder(out).Encode(r); err != nil {
					return err
				}
			} else {
				printRow(out, r)
			}
		}
	}
	return nil
}

// memoryLimit parses --memory-limit: a size with a B, KiB, MiB, GiB (or KB,
// MB, GB) suffix, "off" (0: no limit), or "auto".
func memoryLimit(s string) (int64, error) {
	switch s {
	case "off", "0":
		return 0, nil
	case "auto", "":
		if os.Getenv("GOMEMLIMIT") != "" {
			return 0, nil // the runtime already applies it
		}
		limit := int64(7) << 30
		if total := totalMemory(); total > 0 {
			limit = min(limit, total/4*3)
		}
		return limit, nil
	}
	units := []struct {
		suffix string
		scale  float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			x, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || x <= 0 {
				return 0, fmt.Errorf("--memory-limit %q: want a positive size such as 6GiB", s)
			}
			return int64(x * u.scale), nil
		}
	}
	return 0, fmt.Errorf("--memory-limit %q: want a size with a unit (GiB, MiB, KiB, GB, MB, KB, B), auto or off", s)
}

// totalMemory is MemTotal from /proc/meminfo in bytes (0 if unknown).
func totalMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				if kb, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}

// runChild runs one (preset, mode) in a fresh process of this binary.
func runChild(preset, mode string, args []string) (*bench.Result, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this executable: %w", err)
	}
	var childArgs []string
	skip := false
	for _, a := range args {
		if skip {
			skip = false
			continue
		}
		name := strings.TrimLeft(a, "-")
		base, _, hasValue := strings.Cut(name, "=")
		switch base {
		case "preset", "mode":
			skip = !hasValue
			continue
		case "json", "in-process":
			continue
		}
		childArgs = append(childArgs, a)
	}
	childArgs = append([]string{"bench", "--child", "--preset", preset, "--mode", mode}, childArgs...)
	cmd := exec.Command(exe, childArgs...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("benchmark %s/%s: %w", preset, mode, err)
	}
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	var r bench.Result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return nil, fmt.Errorf("benchmark %s/%s: reading the result %q: %w", preset, mode, lines[len(lines)-1], err)
	}
	return &r, nil
}

func printHeader(w io.Writer) {
	fmt.Fprintf(w, "%-6s %-12s %10s %9s %9s %9s %10s %9s %10s %11s %11s\n",
		"preset", "mode", "median_ms", "min_ms", "max_ms", "cpu_ms", "samples/s", "GFLOP/s", "GFLOP/step", "peak_rss_mb", "compile_ms")
}

func printRow(w io.Writer, r *bench.Result) {
	fmt.Fprintf(w, "%-6s %-12s %10.1f %9.1f %9.1f %9.1f %10.1f %9.1f %10.3f %11.1f %11.0f\n",
		r.Preset, r.Mode, r.MedianMs, r.MinMs, r.MaxMs, r.CPUMs, r.SamplesPerSec, r.GFLOPs, r.GFLOP, r.PeakRSSMB, r.CompileMs)
}

func backendName() string {
	env, set := os.LookupEnv(compute.ConfigEnvVar)
	if config, ok := backendConfig(env, set, compute.List(), runtime.GOMAXPROCS(0)); ok {
		return "backend " + config
	}
	return "backend " + strings.Join(compute.List(), "/") + " (default)"
}

// cpuModel is lscpu's "Model name" (from /proc/cpuinfo).
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v) + " ×" + strconv.Itoa(runtime.NumCPU())
		}
	}
	return runtime.GOARCH
}
