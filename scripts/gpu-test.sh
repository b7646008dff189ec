#!/usr/bin/env bash
# The GPU tests in one call, for a machine with an NVIDIA GPU (the lent device machine: CMake,
# Ninja, nvcc and Python there; no Node, no internet). Builds the engine's C++ tests for the GPU in
# hand, runs every ctest test (the GPU ones included: tests/test_cuda_*.cpp compare each CUDA op
# with the CPU op and train the golden cases on the GPU), then prints one table of every
# comparison. Logs go to $OUT (the device tool's folder) or native/build-gpu/out.
#
#   bash scripts/gpu-test.sh              build, run, table
#   GPU_TEST_SANITIZE=1 bash scripts/gpu-test.sh   also run the op tests under compute-sanitizer
set -uo pipefail
cd "$(dirname "$0")/.."
build=native/build-gpu
out=${OUT:-$build/out}
mkdir -p "$out"

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi >/dev/null 2>&1; then
  echo "gpu-test: no NVIDIA GPU here (nvidia-smi failed); the GPU tests need one." >&2
  exit 1
fi
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')

# cuBLASLt is loaded at run time: use the toolkit's, else the one PyTorch ships.
if [[ -z "${ATTUNE_CUBLASLT:-}" ]]; then
  for candidate in /usr/local/cuda/lib64/libcublasLt.so.13 \
    $(python3 -c 'import nvidia.cublas, os; [print(os.path.join(p, "lib", "libcublasLt.so.13")) for p in nvidia.cublas.__path__]' 2>/dev/null); do
    if [[ -f "$candidate" ]]; then export ATTUNE_CUBLASLT=$candidate; break; fi
  done
fi
echo "cuBLASLt: ${ATTUNE_CUBLASLT:-not found (the GPU tests will say so)}"

start=$(date +%s)
cmake -S native -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTUNE_CUDA_ARCHITECTURES="${arch}-real" \
  -DATTUNE_FUZZ_SANITIZE=OFF >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build "$build" --parallel "$(nproc)" >"$out/build.log" 2>&1 || { grep -E "error|Error" "$out/build.log" | head -40; exit 1; }
echo "built in $(( $(date +%s) - start )) s for sm_${arch}"

ctest --test-dir "$build" --output-on-failure --timeout 300 >"$out/ctest.log" 2>&1
ctest_status=$?
grep -E "tests passed|tests failed|\*\*\*|Failed|Skipped" "$out/ctest.log" | tail -25

# Every comparison row of the GPU tests, and their own logs (ctest keeps output only on failure).
: >"$out/gpu-ops.log"
for test in "$build"/test_cuda_*; do
  [[ -x "$test" ]] || continue
  if [[ "${GPU_TEST_SANITIZE:-0}" == 1 && "$test" != *trainer ]]; then
    compute-sanitizer --tool memcheck --error-exitcode 1 "$test" >>"$out/gpu-ops.log" 2>&1 || echo "SANITIZER FAILED: $test" | tee -a "$out/gpu-ops.log"
  else
    "$test" >>"$out/gpu-ops.log" 2>&1
  fi
done
echo
echo "| op | dtype | shape | error | limit | result |"
echo "|---|---|---|---|---|---|"
grep -E '^\| .* \| (ok|FAIL) \|$' "$out/gpu-ops.log" | sort -u -t'|' -k2,4 >"$out/gpu-table.md"
grep -E 'FAIL \|$' "$out/gpu-table.md" || true
echo "$(grep -c ' ok |$' "$out/gpu-table.md") comparisons ok, $(grep -c 'FAIL |$' "$out/gpu-table.md") failed (all rows: $out/gpu-table.md)"
grep -E "^  FAILED|^FAIL " "$out/gpu-ops.log" | head -40
exit $ctest_status
