#!/bin/sh
# Times the Go training/inference steps (vitbert bench) and the PyTorch
# reference (benchmarks/pytorch/bench.py, one thread) on the same machine, one
# (preset, mode) after the other so that both see the same load, and prints
# the ratio ours/PyTorch of the median step times (below 1: we are faster).
#
# Usage: benchmarks/compare.sh [PRESETS] [MODES]
#   PRESETS  comma list of tiny, small, base (default tiny,small)
#   MODES    comma list of joint, gradmask, infer-image, infer-text (default all)
# Environment: STEPS (timed steps, default 10), WARMUP (default 3),
#   REPEAT (rounds, default 1; the table shows every round), PYTHON
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

echo "machine: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; $("$PYTHON" -c 'import torch; print("torch", torch.__version__)'), 1 thread; Go GOMAXPROCS=$(nproc)"
echo "$STEPS timed steps after $WARMUP warm-up steps; median step times in ms"
printf '%-6s %-12s %10s %10s %7s %9s %9s %9s %9s\n' preset mode ours_ms torch_ms ratio ours_rss torch_rss ours_sps torch_sps
r=1
while [ "$r" -le "$REPEAT" ]; do
	for p in $(echo "$PRESETS" | tr ',' ' '); do
		for m in $(echo "$MODES" | tr ',' ' '); do
			# shellcheck disable=SC2086
			"$tmp/vitbert" bench --preset "$p" --mode "$m" --steps "$STEPS" --warmup "$WARMUP" $extra --json >"$tmp/ours.json"
			"$PYTHON" benchmarks/pytorch/bench.py --preset "$p" --mode "$m" --steps "$STEPS" --warmup "$WARMUP" \
				--threads 1 --json 2>/dev/null | tail -1 >"$tmp/torch.json"
			"$PYTHON" - "$tmp/ours.json" "$tmp/torch.json" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
t = json.load(open(sys.argv[2]))
print("%-6s %-12s %10.1f %10.1f %7.2f %9.0f %9.0f %9.1f %9.1f" % (
    o["preset"], o["mode"], o["median_ms"], t["median_ms"], o["median_ms"] / t["median_ms"],
    o["peak_rss_mb"], t["peak_rss_mb"], o["samples_per_s"], t["samples_per_s"]))
PY
		done
	done
	r=$((r + 1))
done
