#!/bin/sh
# Times the Go training/inference steps (vitbert bench) and the PyTorch
# reference (benchmarks/pytorch/bench.py, one thread) on the same machine, one
# (preset, mode) after the other so that both see the same load, and prints
# the ratio ours/PyTorch of the median step times (below 1: we are faster),
# and of the CPU time per step (user + system, all threads): on a machine
# shared with other work the CPU ratio is the steadier one. It prints the CPU
# (lscpu model name) and the reference's OpenBLAS kernels and allocator:
# bench.py sets OPENBLAS_CORETYPE where OpenBLAS would run kernels older than
# the CPU's (one in the environment is kept unless it is older too), and the
# reference runs with an allocator that keeps the memory it frees (tcmalloc,
# else glibc tunables: bench.py's malloc_env) unless LD_PRELOAD or
# GLIBC_TUNABLES is set.
#
# Usage: benchmarks/compare.sh [PRESETS] [MODES]
#   PRESETS  comma list of tiny, small, base (default tiny,small)
#   MODES    comma list of joint, gradmask, infer-image, infer-text (default all)
# Environment: STEPS (timed steps, default 10), WARMUP (default 3),
#   REPEAT (rounds, default 1; the table shows every round, then, with more
#   than one, each ratio's median and range over the rounds), PYTHON
#   (default /usr/bin/python3), GOFLAGS for the build, BATCH (base: texts and
#   images per step, default the preset's).
set -eu
cd "$(dirname "$0")/.."
PRESETS=${1:-tiny,small}
MODES=${2:-joint,gradmask,infer-image,infer-text}
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-3}
REPEAT=${REPEAT:-1}
PYTHON=${PYTHON:-/usr/bin/python3}
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} GOEXPERIMENT=${GOEXPERIMENT:-simd}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/vitbert" ./cmd/vitbert
extra=""
if [ -n "${BATCH:-}" ]; then extra="--batch $BATCH"; fi

# The reference's allocator (bench.py restarts itself with it when run as a
# script; here it is imported, so its environment is set for it): an
# assignment for env, empty when the environment already chooses one.
malloc=""
if [ -z "${LD_PRELOAD:-}${GLIBC_TUNABLES:-}" ]; then
	malloc=$("$PYTHON" - <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ref", "benchmarks/pytorch/bench.py")
ref = importlib.util.module_from_spec(spec)
sys.argv = [sys.argv[0], "--threads", "1"]
spec.loader.exec_module(ref)
print("%s=%s" % ref.malloc_env())
PY
)
fi

# The reference's CPU, BLAS kernels and allocator as bench.py sets them up.
env ${malloc:+"$malloc"} "$PYTHON" - >"$tmp/machine.txt" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ref", "benchmarks/pytorch/bench.py")
ref = importlib.util.module_from_spec(spec)
sys.argv = [sys.argv[0], "--threads", "1"]
spec.loader.exec_module(ref)
print("torch %s, 1 thread, %s" % (ref.torch.__version__, ref.blas_note()))
PY
echo "machine: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; Go GOMAXPROCS=$(nproc)"
echo "reference: $(cat "$tmp/machine.txt")"
echo "$STEPS timed steps after $WARMUP warm-up steps; median step times and CPU time per step in ms; peak RSS in MB; the OpenBLAS core and allocator of each reference run"
printf '%-6s %-12s %9s %9s %6s %9s %9s %6s %9s %9s %s\n' preset mode ours_ms torch_ms ratio ours_cpu torch_cpu ratio ours_rss torch_rss torch_blas_malloc
r=1
while [ "$r" -le "$REPEAT" ]; do
	for p in $(echo "$PRESETS" | tr ',' ' '); do
		for m in $(echo "$MODES" | tr ',' ' '); do
			# shellcheck disable=SC2086
			"$tmp/vitbert" bench --preset "$p" --mode "$m" --steps "$STEPS" --warmup "$WARMUP" $extra --json >"$tmp/ours.json"
			env ${malloc:+"$malloc"} "$PYTHON" - "$p" "$m" "$STEPS" "$WARMUP" >"$tmp/torch.json" <<'PY'
# Times the reference's Trainer.step like its run_one, adding the CPU time.
import importlib.util, json, resource, statistics, sys, time
spec = importlib.util.spec_from_file_location("ref", "benchmarks/pytorch/bench.py")
ref = importlib.util.module_from_spec(spec)
sys.argv = [sys.argv[0], "--threads", "1"] + sys.argv[1:]
spec.loader.exec_module(ref)
preset, mode, steps, warmup = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
ref.torch.set_num_threads(1)
cfg = ref.PRESETS[preset]
tr = ref.Trainer(cfg, mode, "linear", 1, True)
for _ in range(warmup):
    tr.step()
times = []
c0 = time.process_time()
for _ in range(steps):
    t0 = time.perf_counter()
    out = tr.step()
    float(out.reshape(-1)[0])
    times.append(time.perf_counter() - t0)
cpu = (time.process_time() - c0) / steps
med = statistics.median(times)
print(json.dumps({"preset": preset, "mode": mode, "median_ms": med * 1e3, "cpu_ms": cpu * 1e3,
                  "samples_per_s": ref.samples_per_step(cfg, mode) / med,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "blas_core": ref.BLAS_CORE, "malloc": ref.malloc_in_use()}))
PY
			"$PYTHON" - "$tmp/ours.json" "$tmp/torch.json" "$tmp/ratios.txt" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
t = json.load(open(sys.argv[2]))
print("%-6s %-12s %9.1f %9.1f %6.2f %9.1f %9.1f %6.2f %9.0f %9.0f %s" % (
    o["preset"], o["mode"], o["median_ms"], t["median_ms"], o["median_ms"] / t["median_ms"],
    o["cpu_ms"], t["cpu_ms"], o["cpu_ms"] / t["cpu_ms"], o["peak_rss_mb"], t["peak_rss_mb"],
    "%s, %s" % (t["blas_core"], t["malloc"])))
with open(sys.argv[3], "a") as f:
    f.write("%s %s %.4f %.4f\n" % (o["preset"], o["mode"], o["median_ms"] / t["median_ms"], o["cpu_ms"] / t["cpu_ms"]))
PY
		done
	done
	r=$((r + 1))
done
# Over several rounds, the median ratio of each (preset, mode) and its range:
# one round's ratio moves by tens of percent on a 2-core machine.
if [ "$REPEAT" -gt 1 ]; then
	"$PYTHON" - "$tmp/ratios.txt" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    p, m, w, c = line.split()
    rows.setdefault((p, m), []).append((float(w), float(c)))
print("\nover %d rounds: median ratio ours/PyTorch [min, max]" % max(len(v) for v in rows.values()))
print("%-6s %-12s %20s %20s" % ("preset", "mode", "wall", "cpu"))
for (p, m), v in rows.items():
    w, c = [x[0] for x in v], [x[1] for x in v]
    print("%-6s %-12s %6.2f [%4.2f, %4.2f] %6.2f [%4.2f, %4.2f]" % (
        p, m, statistics.median(w), min(w), max(w), statistics.median(c), min(c), max(c)))
PY
fi
