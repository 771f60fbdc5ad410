#!/bin/bash
# Times vitbert (XLA backend) and the PyTorch reference on one NVIDIA GPU,
# one case after the other, and writes every result as a JSON line.
#
# Usage: benchmarks/gpu.sh OUTDIR [PRESET] [MODES] [BATCH]
#   PRESET  tiny, small or base (default base)
#   MODES   comma list (default joint,gradmask)
#   BATCH   texts and images per step (default 64)
# Environment: VITBERT (binary built with -tags xla; default ./vitbert),
#   PLUGIN (PJRT CUDA plugin; default: the one in the jax CUDA pip package),
#   STEPS (default 10), WARMUP (default 3), PYTHON (default python3),
#   TORCH_VARIANTS (default "f32 tf32 bf16 compile-bf16": eager float32,
#   eager with TF32, eager with bf16 autocast, torch.compile with bf16
#   autocast; "compile-tf32" is accepted too), OURS_PRECISIONS (default
#   "f32 bf16").
set -u
OUTDIR=${1:?usage: benchmarks/gpu.sh OUTDIR [PRESET] [MODES] [BATCH]}
PRESET=${2:-base}
MODES=${3:-joint,gradmask}
BATCH=${4:-64}
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-3}
PYTHON=${PYTHON:-python3}
VITBERT=${VITBERT:-./vitbert}
cd "$(dirname "$0")/.."
mkdir -p "$OUTDIR"
if [ -z "${PLUGIN:-}" ]; then
	PLUGIN=$("$PYTHON" -c "import jax_plugins.xla_cuda13 as p,os;print(os.path.join(os.path.dirname(p.__file__),'xla_cuda_plugin.so'))")
fi
export GOMLX_NO_AUTO_INSTALL=1 GOPJRT_CUDA_CHECKS=0 GOMLX_BACKEND="xla:$PLUGIN"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUTDIR/gpu.txt"
for prec in ${OURS_PRECISIONS:-f32 bf16}; do
	echo "== vitbert $PRESET $MODES batch $BATCH precision $prec"
	"$VITBERT" bench --preset "$PRESET" --mode "$MODES" --batch "$BATCH" --steps "$STEPS" \
		--warmup "$WARMUP" --precision "$prec" --json | tee -a "$OUTDIR/ours.jsonl"
done
for v in ${TORCH_VARIANTS:-f32 tf32 bf16 compile-bf16}; do
	flags=""
	case "$v" in
	f32) ;;
	tf32) flags="--tf32" ;;
	bf16) flags="--amp bf16" ;;
	compile-bf16) flags="--compile --amp bf16" ;;
	compile-tf32) flags="--compile --tf32" ;;
	*) echo "unknown torch variant $v" >&2; exit 2 ;;
	esac
	echo "== torch $PRESET $MODES batch $BATCH $v"
	# shellcheck disable=SC2086
	"$PYTHON" benchmarks/pytorch/bench.py --device cuda --preset "$PRESET" --mode "$MODES" \
		--batch "$BATCH" --steps "$STEPS" --warmup "$WARMUP" $flags --json | tee -a "$OUTDIR/torch.jsonl"
done
