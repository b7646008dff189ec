#!/usr/bin/env bash
# The engine's CUDA code on the CPU, for machines without an NVIDIA GPU: builds every
# native/src/cuda/*.cu and the GPU tests (native/tests/test_cuda_*.cpp) against the CUDA emulator
# in native/tools/cuda_emu and the engine's CPU sources, runs each test, and prints its result and
# one table of every comparison (the rows of native/tests/cuda_test.h).
#
# AN EMULATED PASS IS NOT A GPU PASS. The emulator runs each CUDA thread as a fiber on one CPU
# core, one block at a time; threads give way only at __syncthreads and warp collectives. So:
# products are not fused into FMAs as nvcc does (a*b+c rounds twice here), expf/logf are glibc's
# and not CUDA's, the cuBLASLt stand-in sums in double, nothing runs concurrently (a data race
# between two threads' plain accesses never shows as one), and nothing is timed. It is a pre-check
# that catches indexing, synchronisation, launch-limit and semantic bugs (wrong results, reads of
# never-written memory, writes past a buffer, deadlocks, bad warp masks, host pointers given to
# kernels, a buffer used by two streams with nothing ordering them, calls a CUDA graph capture
# forbids) before scarce GPU time; scripts/gpu-test.sh on a GPU is the real test. See
# native/tools/cuda_emu/README.md.
#
#   bash scripts/cuda-emulate.sh                 build, run every test, print the table
#   bash scripts/cuda-emulate.sh norm trainer    only test_cuda_norm and test_cuda_trainer
#   CUDA_EMU_SKIP="cuda_generator test_cuda_generator" bash scripts/cuda-emulate.sh
#                                                leave sources or tests out by name
#   CUDA_EMU_JOBS=1                              compile jobs (default: the number of cores)
#   CUDA_EMU_TIMEOUT=600                         seconds per test (default 1200)
#   EMU_SEED=7                                   another order of threads and blocks
# About 3 minutes from scratch on 2 cores (1 to build, 2 to run), 2 once built.
# Needs x86-64 Linux (the fibers switch with x86-64 assembly), CMake, a C++17 compiler, Python 3
# and the CUDA Toolkit's headers (CUDA_HOME or /usr/local/cuda; no nvcc, driver or libraries).
# Build outputs and logs go to native/build-emu.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "$(uname -s)" != Linux || "$(uname -m)" != x86_64 ]]; then
  echo "cuda-emulate: skipped: the CUDA emulator runs on x86-64 Linux only (its fiber switch is x86-64 assembly); this is $(uname -s) $(uname -m)"
  exit 0
fi

build=native/build-emu
logs=$build/logs
mkdir -p "$logs"
jobs=${CUDA_EMU_JOBS:-$(nproc)}
started=$(date +%s)
notice="An emulated pass is not a GPU pass (no FMA fusion, glibc's expf, no concurrency or timing): run scripts/gpu-test.sh on a GPU."
echo "cuda-emulate: the CUDA kernels and GPU tests on the CPU emulator. $notice"

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
skip=${CUDA_EMU_SKIP:-}
if ! cmake -S native/tools/cuda_emu -B "$build" "${generator[@]}" -DCUDA_EMU_SKIP="${skip// /;}" >"$logs/configure.log" 2>&1; then
  tail -20 "$logs/configure.log"
  echo "cuda-emulate: configuring failed (it needs the CUDA Toolkit's headers: set CUDA_HOME)"
  exit 1
fi
if ! cmake --build "$build" --parallel "$jobs" --target emu_selftest engine_emu fake_cublaslt cuda_test_support >"$logs/build.log" 2>&1; then
  grep -E "error|Error" "$logs/build.log" | head -40
  echo "cuda-emulate: the engine did not compile for the emulator (log: $logs/build.log)"
  exit 1
fi
echo "cuda-emulate: engine built in $(( $(date +%s) - started )) s"
if ! "$build/emu_selftest" >"$logs/emu_selftest.log" 2>&1; then
  cat "$logs/emu_selftest.log"
  echo "cuda-emulate: the emulator itself is broken (native/tools/cuda_emu/selftest.cu)"
  exit 1
fi
echo "cuda-emulate: $(tail -1 "$logs/emu_selftest.log")"

tests=()
if [[ $# -gt 0 ]]; then
  for name in "$@"; do tests+=("test_cuda_${name#test_cuda_}"); done
else
  for source in native/tests/test_cuda_*.cpp; do
    name=$(basename "$source" .cpp)
    [[ " $skip " == *" $name "* ]] || tests+=("$name")
  done
fi

export ATTUNE_CUBLASLT="$PWD/$build/libfake_cublaslt.so"
status=0
results=()
: >"$logs/all.log"
for name in "${tests[@]}"; do
  test_started=$(date +%s)
  if ! cmake --build "$build" --parallel "$jobs" --target "$name" >"$logs/$name.build.log" 2>&1; then
    results+=("$name: DID NOT COMPILE (log: $logs/$name.build.log)")
    echo "${results[-1]}"
    grep -E "error" "$logs/$name.build.log" | head -10
    status=1
    continue
  fi
  built=$(date +%s)
  timeout "${CUDA_EMU_TIMEOUT:-1200}" "$build/$name" >"$logs/$name.log" 2>&1
  code=$?
  cat "$logs/$name.log" >>"$logs/all.log"
  rows=$(grep -cE '^\| .* \| (ok|FAIL) \|$' "$logs/$name.log")
  case $code in
    0) result="passed" ;;
    124) result="TIMED OUT"; status=1 ;;
    *) result="FAILED (exit $code)"; status=1 ;;
  esac
  results+=("$name: $result, $rows comparisons, built in $(( built - test_started )) s, ran in $(( $(date +%s) - built )) s")
  echo "${results[-1]}"
  grep -hE "^  FAILED|^EMU (ERROR|FATAL)|^fake cuBLASLt" "$logs/$name.log" | head -12
done

# Every comparison, then the recap: each test's result, the failed comparisons, the totals.
grep -E '^\| .* \| (ok|FAIL) \|$' "$logs/all.log" >"$logs/table.md"
header="| op | dtype | shape | error | limit | result |"$'\n'"|---|---|---|---|---|---|"
echo
echo "$header"
cat "$logs/table.md"
echo
printf '%s\n' "${results[@]}"
if grep -q 'FAIL |$' "$logs/table.md"; then
  echo
  echo "Failed comparisons:"
  echo "$header"
  grep 'FAIL |$' "$logs/table.md"
fi
echo
echo "cuda-emulate: $(grep -c ' ok |$' "$logs/table.md") comparisons ok, $(grep -c 'FAIL |$' "$logs/table.md") failed, in $(( $(date +%s) - started )) s (logs: $logs)"
echo "cuda-emulate: $notice"
exit $status
