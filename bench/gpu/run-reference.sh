#!/usr/bin/env bash
# The reference side of Attune's GPU benchmarks, in one device call (README.md here): ceilings,
# random-weight models with the shapes of Llama-3.2-1B, Qwen3-0.6B and Llama-3.1-8B, transformers +
# peft training rows (LoRA/DoRA, seq 512/2048, checkpointing on/off) and transformers decode
# rows (none/LoRA), then the merged table. Everything lands under $OUT:
#   ceilings.json  models.jsonl  train.jsonl  decode.jsonl  report.md  log.txt
#
#   bash bench/gpu/run-reference.sh              # on the GPU machine (python3 there holds torch)
#   OUT=/tmp/ref bash bench/gpu/run-reference.sh --cpu-tiny   # here: the same steps, toy shapes, CPU
#
# Time (H100 estimate, README.md): about 5 minutes. Rows that matter most run first; the 8B's
# extra rows (seq 2048 without checkpointing, seq 512) are skipped once $ATTUNE_BENCH_BUDGET_S
# (default 420) seconds have gone, so the call ends inside the device's 10-minute limit.
# With ATTUNE_ENGINE=path/to/attune-engine, Attune's rows (bench-train / bench-decode, README.md)
# run beside peft's in the same call, same models, same ceilings.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${OUT:?set OUT to the folder that receives the results}"
mkdir -p "$out"
budget="${ATTUNE_BENCH_BUDGET_S:-420}"
engine="${ATTUNE_ENGINE:-}"

if [[ "${1:-}" == "--cpu-tiny" ]]; then
  device=cpu python="${PYTHON:-$root/.venv/bin/python}"
  small=tiny qwen=tiny-qwen3 big=tiny-untied   # stand-ins for llama-3.2-1b, qwen3-0.6b, llama-3.1-8b
  runs=64:on,64:off,128:on,128:off big_core=128:on big_extras=128:off,64:on,64:off train_steps=(--warmup 1 --steps 2)
  decode_args=(--prompt 32 --new-tokens 8 --warmup 1 --repeats 2) big_decode_args=("${decode_args[@]}")
  models="${ATTUNE_BENCH_MODELS:-$out/models}"
elif [[ $# -eq 0 ]]; then
  device=cuda python="${PYTHON:-python3}"
  small=llama-3.2-1b qwen=qwen3-0.6b big=llama-3.1-8b
  runs=512:on,512:off,2048:on,2048:off big_core=2048:on big_extras=2048:off,512:on,512:off
  train_steps=(--warmup 3 --steps 10)
  decode_args=(--prompt 512 --new-tokens 128 --warmup 2 --repeats 5)
  big_decode_args=(--prompt 512 --new-tokens 128 --warmup 1 --repeats 3)  # 8B generate() calls are slow
  models="${ATTUNE_BENCH_MODELS:-/tmp/attune-bench-models}"   # 20 GB: not under $OUT
else
  echo "usage: OUT=DIR bash bench/gpu/run-reference.sh [--cpu-tiny]" >&2
  exit 2
fi
export PYTHONUNBUFFERED=1
gpu="$root/bench/gpu"
log="$out/log.txt"
ceil="$out/ceilings.json"
for f in "$log" "$ceil" "$out/models.jsonl" "$out/train.jsonl" "$out/decode.jsonl"; do : > "$f"; done  # one run, one set
failed=0

# One step: its command's stdout (JSON lines) appended to a results file, stderr to the log,
# start and duration logged; a failing step is recorded and the run goes on with the next.
step() {
  local name="$1" dest="$2"
  shift 2
  local t0=$SECONDS
  echo "== $name (at ${t0} s)" | tee -a "$log" >&2
  if ! "$@" >> "$dest" 2>> "$log"; then
    echo "!! $name failed (see log.txt)" | tee -a "$log" >&2
    failed=1
  fi
  echo "   $name took $((SECONDS - t0)) s" | tee -a "$log" >&2
}
late() { [[ $SECONDS -ge $budget ]]; }
deadline() { echo $(( $(date +%s) + budget - SECONDS )); }

# Attune's rows for one model, when an engine is given: the peft rows' settings plus 4-bit bases.
# A third argument "always" runs them past the budget too (the 8B's core rows).
attune_train() {
  [[ -n "$engine" ]] || return 0
  local shape="$1" run_list="$2" always="${3:-}" run m
  for run in ${run_list//,/ }; do for m in lora dora qlora qdora; do
    if [[ -z "$always" ]] && late; then
      echo "   attune train $shape $m $run skipped: past the ${budget} s budget" | tee -a "$log" >&2
      continue
    fi
    step "attune train $shape $m $run" "$out/train.jsonl" "$engine" bench-train --model "$models/$shape" \
      --method "$m" --seq "${run%:*}" --batch 1 --checkpointing "${run#*:}" --rank 16 "${train_steps[@]}"
  done; done
}
attune_decode() {
  [[ -n "$engine" ]] || return 0
  local shape="$1" a
  shift
  for a in none lora; do
    step "attune decode $shape $a" "$out/decode.jsonl" "$engine" bench-decode --model "$models/$shape" --adapter "$a" \
      --rank 16 "$@"
  done
}

{
  date -u +"start %Y-%m-%dT%H:%M:%SZ"
  [[ $device == cuda ]] && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
  "$python" -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)'
  git -C "$root" rev-parse --short HEAD 2>/dev/null | sed 's/^/attune at /'
} >> "$log" 2>&1

step "ceilings" "$ceil" "$python" "$gpu/ceilings.py" --device "$device"
step "models $small $qwen" "$out/models.jsonl" "$python" "$gpu/make_models.py" "$models" --shape "$small" --shape "$qwen" --device "$device"

for shape in "$small" "$qwen"; do
  step "peft train $shape" "$out/train.jsonl" "$python" "$gpu/peft_train.py" --models "$models" --shape "$shape" \
    --device "$device" --runs "$runs" "${train_steps[@]}" --ceilings "$ceil"
  attune_train "$shape" "$runs"
done
step "transformers decode $small" "$out/decode.jsonl" "$python" "$gpu/transformers_decode.py" --models "$models" \
  --shape "$small" --device "$device" "${decode_args[@]}" --ceilings "$ceil"
attune_decode "$small" "${decode_args[@]}"

step "models $big" "$out/models.jsonl" "$python" "$gpu/make_models.py" "$models" --shape "$big" --device "$device"
# The 8B's core rows (seq 2048, checkpointing on) run whatever the time; its decode next.
step "peft train $big core" "$out/train.jsonl" "$python" "$gpu/peft_train.py" --models "$models" --shape "$big" \
  --device "$device" --runs "$big_core" "${train_steps[@]}" --ceilings "$ceil"
attune_train "$big" "$big_core" always
step "transformers decode $big" "$out/decode.jsonl" "$python" "$gpu/transformers_decode.py" --models "$models" \
  --shape "$big" --device "$device" "${big_decode_args[@]}" --ceilings "$ceil"
attune_decode "$big" "${big_decode_args[@]}"
# Extras, while the budget lasts: past the deadline peft_train.py prints each row as skipped.
step "peft train $big extras" "$out/train.jsonl" "$python" "$gpu/peft_train.py" --models "$models" --shape "$big" \
  --device "$device" --runs "$big_extras" "${train_steps[@]}" --ceilings "$ceil" --deadline "$(deadline)"
attune_train "$big" "$big_extras"
step "report" /dev/null "$python" "$gpu/report.py" "$ceil" "$out/models.jsonl" "$out/train.jsonl" "$out/decode.jsonl" --out "$out/report.md"
echo "== done in $SECONDS s" | tee -a "$log" >&2
cat "$out/report.md"
exit $failed
