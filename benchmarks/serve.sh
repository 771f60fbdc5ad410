#!/bin/sh
# Load benchmark of vitbert serve on loopback: a tiny-preset model (one
# pre-training step, so the weights are the preset's shapes), served once with
# dynamic batching and once with --max-batch 1; CLIENTS concurrent clients
# send fill-mask requests (texts of MIN_WORDS to MAX_WORDS words) until
# REQUESTS are done or DURATION has passed. Prints throughput, p50/p95/p99 latency, errors, and the
# server's resident memory after warm-up and after the run, for each mode.
#
# Usage: benchmarks/serve.sh
# Environment: CLIENTS (default 32), REQUESTS (default 3000), DURATION
#   (default 60s), MAX_BATCH (default 32), MAX_WAIT (default 5ms), PORT
#   (default 18431), ENDPOINT (fill-mask or embed, default fill-mask),
#   MODEL (a model directory instead of the fresh tiny one), MIN_WORDS and
#   MAX_WORDS (default 4 and 12: one 16-token bucket; longer texts cost
#   superlinearly more per token on the pure-Go backend, which batching
#   amortises less), ONLY_BATCHING=1 (skip the --max-batch 1 run, e.g. for
#   a long memory soak: DURATION=600s REQUESTS=1000000).
set -eu
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-32}
REQUESTS=${REQUESTS:-3000}
DURATION=${DURATION:-60s}
MAX_BATCH=${MAX_BATCH:-32}
MAX_WAIT=${MAX_WAIT:-5ms}
PORT=${PORT:-18431}
ENDPOINT=${ENDPOINT:-fill-mask}
MIN_WORDS=${MIN_WORDS:-4}
MAX_WORDS=${MAX_WORDS:-12}
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} GOEXPERIMENT=${GOEXPERIMENT:-simd}

tmp=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
go build -o "$tmp/vitbert" ./cmd/vitbert
if [ -z "${MODEL:-}" ]; then
	"$tmp/vitbert" pretrain --preset tiny --steps 1 --out "$tmp/run" --quiet >/dev/null
	MODEL="$tmp/run/model"
fi

# Request bodies: 64 sentences of MIN_WORDS to MAX_WORDS words, one [MASK] each.
words="the a model of images and texts learns one shared encoder for both kinds while each side keeps its own embeddings"
i=0
while [ $i -lt 64 ]; do
	n=$((MIN_WORDS + (i * 7) % (MAX_WORDS - MIN_WORDS + 1)))
	s=$(echo "$words $words $words" | tr ' ' '\n' | head -n $n | tr '\n' ' ')
	if [ "$ENDPOINT" = "fill-mask" ]; then
		printf '{"inputs": "%s [MASK] end.", "top_k": 5}\n' "$s"
	else
		printf '{"inputs": "%s", "pooling": "mean"}\n' "$s"
	fi
	i=$((i + 1))
done >"$tmp/bodies.jsonl"

rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# batch_totals prints the sum and count of the batch-size histogram.
batch_totals() {
	curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^vitbert_batch_size_sum/ {s += $2} /^vitbert_batch_size_count/ {c += $2} END {print s, c}'
}

run_mode() { # label max_batch
	"$tmp/vitbert" serve --model "$MODEL" --addr "127.0.0.1:$PORT" --max-batch "$2" --max-wait "$MAX_WAIT" \
		--max-inputs 64 2>"$tmp/serve.log" &
	pid=$!
	tries=0
	until curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1; do
		tries=$((tries + 1))
		if [ $tries -gt 600 ] || ! kill -0 "$pid" 2>/dev/null; then cat "$tmp/serve.log"; exit 1; fi
		sleep 0.5
	done
	# Warm-up load, then the measured run.
	"$tmp/vitbert" serve-load --url "http://127.0.0.1:$PORT/v1/$ENDPOINT" --body "$tmp/bodies.jsonl" \
		--clients "$CLIENTS" --requests 200 --duration 30s >/dev/null
	before=$(rss $pid)
	b0=$(batch_totals)
	cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	out=$("$tmp/vitbert" serve-load --url "http://127.0.0.1:$PORT/v1/$ENDPOINT" --body "$tmp/bodies.jsonl" \
		--clients "$CLIENTS" --requests "$REQUESTS" --duration "$DURATION" --json)
	after=$(rss $pid)
	cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	batches=$(echo "$b0 $(batch_totals)" | awk '{if ($4 > $2) printf "%.1f", ($3 - $1) / ($4 - $2); else print "-"}')
	kill -TERM "$pid"
	wait "$pid" || true
	pid=""
	echo "$out" | python3 -c "
import json, sys
r = json.load(sys.stdin)
cpu = ($cpu1 - $cpu0) / $(getconf CLK_TCK)
print('| $1 | %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %d | %s | %.1f | %s | %s |' % (
    r['requests'], $CLIENTS, r['seconds'], r['per_second'], r['p50_ms'], r['p95_ms'], r['p99_ms'], r['errors'],
    '$batches', 1000 * cpu / max(1, r['requests'] - r['errors']), '$before', '$after'))
if r['errors']:
    print('first error:', r['first_error'], file=sys.stderr)
"
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); endpoint /v1/$ENDPOINT; model $MODEL"
echo
echo "| mode | requests | clients | seconds | req/s | p50 ms | p95 ms | p99 ms | errors | mean batch | server CPU ms/req | RSS MB after warm-up | RSS MB after run |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
run_mode "batching (--max-batch $MAX_BATCH --max-wait $MAX_WAIT)" "$MAX_BATCH"
if [ "${ONLY_BATCHING:-0}" != 1 ]; then
	run_mode "no batching (--max-batch 1)" 1
fi
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
