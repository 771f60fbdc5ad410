#!/usr/bin/env bash
# The small reproduction (report preset "small": 4 blocks, D=256, the tiny
# reproduction's real data and protocol) with its pre-training on one GPU and
# its probes and fine-tuning back on the CPU.
#
#   On the GPU machine (a vitbert built with -tags xla, the data sets fetched):
#     GOMLX_BACKEND=xla:cuda GOMLX_NO_AUTO_INSTALL=1 VITBERT=./vitbert-xla \
#       DATA=data/cache OUT=runs/small benchmarks/repro-small-gpu.sh gpu
#   Then, with OUT copied back, on the CPU machine:
#     OUT=runs/small benchmarks/repro-small-gpu.sh cpu
#
# The gpu stage stops itself after BUDGET_S seconds (default 540, inside ten
# minutes of GPU time): SIGTERM makes the running pre-training save a
# checkpoint, and running the stage again resumes where it stopped (finished
# runs are skipped). The cpu stage skips every finished pre-training run and
# scores the models; it refuses to pre-train what the GPU did not finish
# unless ALLOW_CPU_PRETRAIN=1. On 2 CPU cores (Intel Xeon with AVX-512) the
# cpu stage takes about four hours, estimated from step times measured there:
# three MNIST epochs of the small model are 12 minutes a cell (0.26 s per
# step of 64), and there are 11 such cells.
set -euo pipefail
stage=${1:?usage: repro-small-gpu.sh gpu|cpu}
OUT=${OUT:-runs/small}
DATA=${DATA:-data/cache}
VITBERT=${VITBERT:-bin/vitbert}
case "$stage" in
gpu)
	: "${GOMLX_BACKEND:?set GOMLX_BACKEND to the XLA plugin (e.g. xla:cuda)}"
	start=$(date +%s)
	set +e
	timeout --signal=TERM --kill-after=60 "${BUDGET_S:-540}" \
		"$VITBERT" reproduce --preset small --data "$DATA" --out "$OUT" --stage pretrain --quiet
	rc=$?
	set -e
	echo "gpu stage: exit $rc after $(($(date +%s) - start)) s"
	if [ "$rc" = 124 ]; then
		echo "the time budget ran out: run the gpu stage again to resume"
	fi
	exit "$rc"
	;;
cpu)
	if [ "${ALLOW_CPU_PRETRAIN:-0}" != 1 ]; then
		missing=$(python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
plan = json.load(open(os.path.join(out, "plan.json")))
for run in plan["pretraining_runs"]:
    if not os.path.exists(os.path.join(out, run["dir"], "model", "config.json")):
        print(run["dir"])
PY
)
		if [ -n "$missing" ]; then
			echo "pre-training not finished (run the gpu stage again, or set ALLOW_CPU_PRETRAIN=1):" >&2
			echo "$missing" >&2
			exit 1
		fi
	fi
	"$VITBERT" reproduce --preset small --data "$DATA" --out "$OUT"
	;;
*)
	echo "usage: repro-small-gpu.sh gpu|cpu" >&2
	exit 2
	;;
esac
