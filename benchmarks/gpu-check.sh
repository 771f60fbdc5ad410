#!/bin/bash
# Checks on one NVIDIA GPU what the CPU test suite cannot: the data-parallel
# step on a one-device mesh against the plain step, and a bf16 training step
# compiling and running under XLA. Writes logs (and, when a bf16 compilation
# times out, XLA's pass-by-pass dump as a tarball) to OUTDIR.
#
# Usage: benchmarks/gpu-check.sh OUTDIR
# Environment: VITBERT (binary built with -tags xla; default ./vitbert),
#   TRAIN_TEST (test binary: CGO_ENABLED=1 go test -c -tags xla -o train.test
#   ./train; skipped when absent; default ./train.test), PLUGIN (PJRT CUDA
#   plugin; default: the one in the jax CUDA pip package), PYTHON (default
#   python3), BF16_TIMEOUT (seconds for the bf16 step, default 150).
set -u
OUTDIR=${1:?usage: benchmarks/gpu-check.sh OUTDIR}
VITBERT=${VITBERT:-./vitbert}
TRAIN_TEST=${TRAIN_TEST:-./train.test}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUTDIR"
if [ -z "${PLUGIN:-}" ]; then
	PLUGIN=$("$PYTHON" -c "import jax_plugins.xla_cuda13 as p,os;print(os.path.join(os.path.dirname(p.__file__),'xla_cuda_plugin.so'))")
fi
export GOMLX_NO_AUTO_INSTALL=1 GOPJRT_CUDA_CHECKS=0 GOMLX_BACKEND="xla:$PLUGIN"
status=0
step() { echo "== $*"; }

step "data-parallel step on a one-device mesh (train tests)"
if [ -x "$TRAIN_TEST" ]; then
	timeout 300 "$TRAIN_TEST" -test.run 'DataParallel|RefusesUnavailable|MeshDevices' -test.v 2>&1 | tee "$OUTDIR/train-test.log" | grep -E '^(=== RUN|--- |PASS|FAIL|ok)' || true
	grep -q '^--- FAIL' "$OUTDIR/train-test.log" && status=1
else
	echo "no $TRAIN_TEST: skipped"
fi

step "pretrain tiny, 6 masked steps: plain and on a one-device mesh"
for v in plain mesh; do
	flags=""
	[ "$v" = mesh ] && flags="--devices 1 --mesh"
	# shellcheck disable=SC2086
	timeout 300 "$VITBERT" pretrain --preset tiny --steps 6 --gradmask --mask-ratio 0.5 --mask-step 0.25 \
		--out "$OUTDIR/pretrain-$v" $flags >"$OUTDIR/pretrain-$v.log" 2>&1 || { echo "pretrain $v failed"; status=1; }
	tail -1 "$OUTDIR/pretrain-$v/metrics.jsonl" 2>/dev/null
done

step "bench tiny: plain and on a one-device mesh"
"$VITBERT" bench --preset tiny --mode joint,gradmask --steps 10 --warmup 3 --json | tee "$OUTDIR/bench-plain.jsonl"
"$VITBERT" bench --preset tiny --mode joint,gradmask --steps 10 --warmup 3 --devices 1 --mesh --json | tee "$OUTDIR/bench-mesh.jsonl"

step "bf16 training step (tiny, then base at 64 + 64)"
if ! timeout "${BF16_TIMEOUT:-150}" "$VITBERT" bench --preset tiny --mode joint --precision bf16 --steps 5 --warmup 2 --in-process --json | tee "$OUTDIR/bench-bf16.jsonl"; then
	echo "bf16 tiny step did not finish in ${BF16_TIMEOUT:-150} s: dumping XLA's passes"
	status=1
	rm -rf "$OUTDIR/xla-dump"
	XLA_FLAGS="--xla_dump_to=$OUTDIR/xla-dump --xla_dump_hlo_pass_re=.*" timeout 120 "$VITBERT" bench --preset tiny \
		--mode joint --precision bf16 --steps 1 --warmup 0 --in-process >/dev/null 2>&1
	ls -t "$OUTDIR/xla-dump" 2>/dev/null | head -5
	tar czf "$OUTDIR/xla-dump.tgz" -C "$OUTDIR" xla-dump 2>/dev/null && rm -rf "$OUTDIR/xla-dump"
else
	"$VITBERT" bench --preset base --mode joint,gradmask --batch 64 --precision bf16 --steps 10 --warmup 3 --json | tee -a "$OUTDIR/bench-bf16.jsonl"
fi
exit $status
