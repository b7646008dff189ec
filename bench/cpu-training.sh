#!/usr/bin/env bash
# CPU training benchmark, Attune vs transformers + peft, side by side in one run on the same
# machine: LoRA and DoRA (rank 16, alpha 32, all-linear, dropout 0, AdamW lr 2e-4, gradient
# checkpointing) on the ~100M-parameter bench Llama in fp32, the same text records in the same
# order, seq-len 256, batch 1, 6 optimizer steps; a run's tokens/s is the median over its steps
# 2..6 (step 1 is a warm-up). The development machine is shared, so each side runs --repeats
# times (default 3), Attune and peft alternating, each run waiting (up to a minute) for the CPUs
# to be quiet first; the table gives the median run and the range, and the note how much CPU
# other processes took during the runs. Prints a table; with --record, appends it to BENCHMARKS.md.
#
#   bash bench/cpu-training.sh [--threads N] [--repeats R] [--record]
#
# Attune takes its thread count from the CPUs it may run on, so with --threads N below the
# machine's count both sides run under `taskset -c 0-(N-1)` (and peft with N torch threads).
# Needs the Python environment (bash scripts/python-env.sh) and a built Attune (npm install, or
# npx electron-vite build after TypeScript changes).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
threads=$(nproc)
repeats=3
record=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --record) record=1; shift ;;
    *) echo "usage: bash bench/cpu-training.sh [--threads N] [--repeats R] [--record]" >&2; exit 2 ;;
  esac
done
[[ "$threads" =~ ^[1-9][0-9]*$ && $threads -le $(nproc) ]] || { echo "bench: --threads must be from 1 to $(nproc)" >&2; exit 2; }
[[ "$repeats" =~ ^[1-9][0-9]*$ ]] || { echo "bench: --repeats must be a whole number of at least 1" >&2; exit 2; }
python="$root/.venv/bin/python"
[[ -x "$python" ]] || { echo "bench: run 'bash scripts/python-env.sh' first" >&2; exit 1; }
[[ -f "$root/out/main/cli.js" ]] || { echo "bench: build Attune first (npx electron-vite build)" >&2; exit 1; }

steps=6
seq_len=256
batch=1
pin=()
[[ $threads -lt $(nproc) ]] && pin=(taskset -c "0-$((threads - 1))")

# The ~100M-parameter Llama of bench/cpu-inference.sh (made once) and 16 records of 256 tokens.
cache="${ATTUNE_BENCH_CACHE:-$root/.bench-cache}"
model="$cache/llama-100m-float32"
data="$cache/train-text-256x16.jsonl"
[[ -f "$model/config.json" ]] || "$python" "$root/bench/make_bench_model.py" "$model" --dtype float32 >&2
[[ -f "$data" ]] || "$python" "$root/bench/make_bench_data.py" "$data" --records 16 --tokens "$seq_len" --model "$model" >&2

work=$(mktemp -d "$cache/train-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# One measured run: waits for quiet CPUs, runs the command, and prints its JSON line with the peak
# RSS of its largest process (getrusage of the waited-for children: for Attune the engine worker),
# and the share of the machine's CPU time that other processes took meanwhile (/proc/stat's busy
# time less the run's own). For Attune it reads tokens/s and the losses from metrics.jsonl.
cat > "$work/measure.py" <<'PY'
import json, os, resource, statistics, subprocess, sys, time

def busy_and_total():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)

def others_share(seconds):
    b0, t0 = busy_and_total()
    time.sleep(seconds)
    b1, t1 = busy_and_total()
    return (b1 - b0) / max(1, t1 - t0)

impl, method, out = sys.argv[1:4]
cmd = sys.argv[4:]
waited = 0.0
while others_share(1.0) > 0.15 and waited < 60:
    waited += 1.0
tick = os.sysconf("SC_CLK_TCK")
b0, t0 = busy_and_total()
start = time.perf_counter()
done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - start
b1, t1 = busy_and_total()
if done.returncode != 0:
    sys.exit(f"bench: {impl} {method} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
own = (usage.ru_utime + usage.ru_stime) * tick
extra = {"peak_rss_bytes": usage.ru_maxrss * 1024,
         "others_cpu_share": round(max(0.0, (b1 - b0) - own) / max(1, t1 - t0), 3),
         "waited_for_quiet_s": waited, "wall_s": round(wall, 1)}
if impl == "attune":
    metrics = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl")) if line.strip()]
    metrics = [m for m in metrics if "tokens_per_s" in m]  # step lines (not eval lines)
    result = {"impl": "attune", "method": method,
              "tokens_per_s": statistics.median(m["tokens_per_s"] for m in metrics[1:]),
              "step_s": statistics.median(m["tokens"] / m["tokens_per_s"] for m in metrics[1:]),
              "losses": [m["loss"] for m in metrics],
              "step_s_runs": [round(m["tokens"] / m["tokens_per_s"], 3) for m in metrics]}
else:
    result = json.loads(done.stdout.strip().splitlines()[-1])
print(json.dumps({**result, **extra}))
PY

attune_run() {
  local method="$1"
  rm -rf "${work:?}/$method" "$work/$method-home"
  "${pin[@]}" "$python" "$work/measure.py" attune "$method" "$work/$method" \
    node "$root/bin/attune.js" train --home "$work/$method-home" --model "$model" --data "$data" --method "$method" \
    --out "$work/$method" --steps "$steps" --batch-size "$batch" --grad-accum 1 --seq-len "$seq_len" \
    --rank 16 --alpha 32 --targets all-linear --lr 2e-4 --dropout 0 --no-shuffle
}

# transformers' CPU numbers are only fair with its fast kernels: these variables slow numpy/torch
# down on some CPUs (see the workplace notes), so they are unset for this command alone.
peft_run() {
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "${pin[@]}" "$python" "$work/measure.py" peft "$1" "$work" \
    "$python" "$root/bench/peft_cpu_train.py" --model "$model" --data "$data" --method "$1" --steps "$steps" \
    --seq-len "$seq_len" --batch-size "$batch" --threads "$threads"
}

# Another build of Attune landing mid-run would mix two engines: say so.
build_id() { stat -c '%Y' "$root/out/main/engine-worker.js" "$root/native/build/Release/attune_engine.node" 2>/dev/null | xargs; }
build_before=$(build_id)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
results=()
for ((r = 1; r <= repeats; r++)); do
  for method in lora dora; do
    echo "bench: $method, run $r/$repeats, Attune…" >&2
    results+=("$(attune_run "$method")")
    echo "bench: $method, run $r/$repeats, peft…" >&2
    results+=("$(peft_run "$method")")
    printf '%s\n%s\n' "${results[-2]}" "${results[-1]}" >&2
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
[[ $(build_id) == "$build_before" ]] || echo "bench: warning: Attune was rebuilt during the run; run it again" >&2

table=$("$python" - "$threads" "$seq_len" "$batch" "$load_before" "$load_after" "${results[@]}" <<'PY'
import json, statistics, sys
threads, seq_len, batch, load_before, load_after = sys.argv[1:6]
runs = [json.loads(arg) for arg in sys.argv[6:]]
peft_info = next(r for r in runs if r["impl"] == "peft")

def pick(impl, method):
    return [r for r in runs if r["impl"] == impl and r["method"] == method]

def cell(rs):
    v = [r["tokens_per_s"] for r in rs]
    spread = f" ({min(v):.0f}–{max(v):.0f})" if len(v) > 1 else ""
    return statistics.median(v), f"{statistics.median(v):.1f}{spread}"

print(f"| ~100M Llama, fp32, {threads} threads, seq-len {seq_len}, batch {batch} | Attune tokens/s | "
      f"peft {peft_info['peft']} + transformers {peft_info['transformers']} (torch {peft_info['torch']}) tokens/s | "
      "Attune speed-up | peak RSS Attune / peft |")
print("|---|---|---|---|---|")
losses = []
for method in ("lora", "dora"):
    ours, theirs = pick("attune", method), pick("peft", method)
    a, a_cell = cell(ours)
    p, p_cell = cell(theirs)
    a_mem = max(r["peak_rss_bytes"] for r in ours)
    p_mem = max(r["peak_rss_bytes"] for r in theirs)
    print(f"| {method.upper()} (r 16, all-linear) | {a_cell} | {p_cell} | {a / p:.2f}× | "
          f"{a_mem / 1e9:.2f} / {p_mem / 1e9:.2f} GB ({a_mem / p_mem:.2f}×) |")
    losses.append(f"{method} {ours[0]['losses'][0]:.6f} / {theirs[0]['losses'][0]:.6f}")
others = [r["others_cpu_share"] for r in runs]
print()
print(f"Tokens/s: the median over steps 2–6 of each run, then the median of {len(pick('attune', 'lora'))} runs per side "
      f"(range in brackets). Step-1 loss, Attune / peft (same records, adapters not yet moved): {'; '.join(losses)}. "
      f"Load average (1, 5, 15 min) before: {load_before}; after: {load_after}; other processes took "
      f"{min(others):.0%}–{max(others):.0%} of the CPU time during the runs (median {statistics.median(others):.0%}).")
PY
)
echo "$table"
if [[ $record == 1 ]]; then
  {
    echo
    echo "### CPU training, $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
    echo
    echo "Command: \`bash bench/cpu-training.sh --threads $threads --repeats $repeats --record\` (Attune at $(git -C "$root" rev-parse --short HEAD))"
    echo
    echo "$table"
  } >> "$root/BENCHMARKS.md"
fi
