#!/usr/bin/env bash
# CPU inference benchmark, Attune vs transformers, side by side in one run on the same machine,
# same model files, same thread count: prefill tokens/s over a 512-token prompt and decode
# ms/token (greedy, KV cache). Prints a table; with --record, appends it to BENCHMARKS.md.
#
#   bash bench/cpu-inference.sh [--threads N] [--dtype float32|bfloat16] [--record]
#
# Needs the Python environment (bash scripts/python-env.sh) and the engine CLI
# (node scripts/build-native.mjs --test builds native/build-tests/attune-engine).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
threads=$(nproc)
dtype=float32
record=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --dtype) dtype="$2"; shift 2 ;;
    --record) record=1; shift ;;
    *) echo "usage: bash bench/cpu-inference.sh [--threads N] [--dtype float32|bfloat16] [--record]" >&2; exit 2 ;;
  esac
done
python="$root/.venv/bin/python"
engine="$root/native/build-tests/attune-engine"
[[ -x "$python" ]] || { echo "bench: run 'bash scripts/python-env.sh' first" >&2; exit 1; }
[[ -x "$engine" ]] || { echo "bench: run 'node scripts/build-native.mjs --test' first" >&2; exit 1; }

# A ~100M-parameter Llama (hidden 768, 12 layers, vocab 32000), random weights, made once.
model="${ATTUNE_BENCH_CACHE:-$root/.bench-cache}/llama-100m-$dtype"
[[ -f "$model/config.json" ]] || "$python" "$root/bench/make_bench_model.py" "$model" --dtype "$dtype" >&2

# transformers' CPU numbers are only fair with its fast kernels: these variables slow numpy/torch
# down on some CPUs (see the workplace notes), so they are unset for this command alone.
ours=$("$engine" bench-inference --model "$model" --threads "$threads")
theirs=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$root/bench/transformers_cpu.py" --model "$model" --threads "$threads" --dtype "$dtype")

table=$("$python" - "$ours" "$theirs" "$threads" "$dtype" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
threads, dtype = sys.argv[3], sys.argv[4]
rows = [
    ("prefill tokens/s (512-token prompt)", ours["prefill_tokens_per_s"], theirs["prefill_tokens_per_s"], ours["prefill_tokens_per_s"] / theirs["prefill_tokens_per_s"]),
    ("decode ms/token (greedy, KV cache)", ours["decode_ms_per_token"], theirs["decode_ms_per_token"], theirs["decode_ms_per_token"] / ours["decode_ms_per_token"]),
]
print(f"| ~100M Llama, {dtype}, {threads} threads | Attune | transformers {theirs.get('transformers', '')} (torch {theirs.get('torch', '')}) | Attune speed-up |")
print("|---|---|---|---|")
for name, a, b, ratio in rows:
    print(f"| {name} | {a:.1f} | {b:.1f} | {ratio:.2f}× |")
PY
)
echo "$table"
if [[ $record == 1 ]]; then
  {
    echo
    echo "### CPU inference, $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
    echo
    echo "Command: \`bash bench/cpu-inference.sh --threads $threads --dtype $dtype --record\`"
    echo
    echo "$table"
  } >> "$root/BENCHMARKS.md"
fi
