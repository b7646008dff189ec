#!/usr/bin/env bash
# The GPU tests in one call, for a machine with an NVIDIA GPU (the lent device machine: CMake,
# Ninja, nvcc and Python there; no Node, no internet). Builds the engine's C++ tests for the GPU in
# hand, runs every ctest test (the GPU ones included: tests/test_cuda_*.cpp compare each CUDA op
# with the CPU op and train the golden cases on the GPU), then prints one table of every
# comparison. Logs go to native/build-gpu/logs; with $OUT set (the device tool's folder, which
# brings back at most 8 files) the table and one archive of the logs are copied there.
#
#   bash scripts/gpu-test.sh              build, run, table
#   GPU_TEST_SANITIZE=1 bash scripts/gpu-test.sh   also run the op tests under compute-sanitizer
set -uo pipefail
cd "$(dirname "$0")/.."
out=native/build-gpu/logs
source scripts/gpu-build.sh
build=$gpu_build

# The CPU tests through ctest; the GPU tests once each, directly, to keep their tables.
ctest --test-dir "$build" --output-on-failure --timeout 300 -LE gpu >"$out/ctest.log" 2>&1
status=$?
grep -E "tests passed|tests failed" "$out/ctest.log" | tail -3
: >"$out/gpu-ops.log"
for test in "$build"/test_cuda_*; do
  [[ -x "$test" ]] || continue
  name=$(basename "$test")
  started=$(date +%s)
  if [[ "${GPU_TEST_SANITIZE:-0}" == 1 && "$name" != *trainer ]]; then
    compute-sanitizer --tool memcheck --error-exitcode 1 "$test" >"$out/$name.log" 2>&1
  else
    "$test" >"$out/$name.log" 2>&1
  fi
  code=$?
  cat "$out/$name.log" >>"$out/gpu-ops.log"
  if [[ $code -eq 0 ]]; then result=passed; else result="FAILED (exit $code)"; status=1; fi
  echo "$name: $result in $(( $(date +%s) - started )) s"
done

echo
grep -E '^\| .* \| (ok|FAIL) \|$' "$out/gpu-ops.log" >"$out/gpu-table.md"
echo "$(grep -c ' ok |$' "$out/gpu-table.md") comparisons ok, $(grep -c 'FAIL |$' "$out/gpu-table.md") failed (every row: $out/gpu-table.md)"
if grep -q 'FAIL |$' "$out/gpu-table.md"; then
  echo "| op | dtype | shape | error | limit | result |"
  echo "|---|---|---|---|---|---|"
  grep 'FAIL |$' "$out/gpu-table.md" | head -60
fi
grep -hE "^  FAILED|^FAIL |SKIPPED" "$out"/test_cuda_*.log | head -40
if [[ -n "${OUT:-}" ]]; then
  cp "$out/gpu-table.md" "$OUT/" && tar czf "$OUT/gpu-test-logs.tar.gz" -C "$out" .
fi
exit $status
