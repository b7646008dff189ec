#!/usr/bin/env bash
# Builds the engine (its C++ tests and the attune-engine CLI) for the NVIDIA GPU in hand, into
# native/build-gpu, and finds cuBLASLt; sourced by scripts/gpu-test.sh and bench/gpu/run.sh.
# Needs $out (a folder for its logs), and builds only $gpu_target when that is set; after it: $gpu_build (the build folder), ATTUNE_CUBLASLT
# exported when found.
gpu_build=native/build-gpu
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi >/dev/null 2>&1; then
  echo "no NVIDIA GPU here (nvidia-smi failed): this needs one." >&2
  exit 1
fi
mkdir -p "$out"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
gpu_arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')

# cuBLASLt is loaded at run time: use the toolkit's, else the one PyTorch ships.
if [[ -z "${ATTUNE_CUBLASLT:-}" ]]; then
  for candidate in /usr/local/cuda/lib64/libcublasLt.so.13 \
    $(python3 -c 'import nvidia.cublas, os; [print(os.path.join(p, "lib", "libcublasLt.so.13")) for p in nvidia.cublas.__path__]' 2>/dev/null); do
    if [[ -f "$candidate" ]]; then export ATTUNE_CUBLASLT=$candidate; break; fi
  done
fi
echo "cuBLASLt: ${ATTUNE_CUBLASLT:-not found (GPU work will say so)}"

build_start=$(date +%s)
cmake -S native -B "$gpu_build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTUNE_CUDA_ARCHITECTURES="${gpu_arch}-real" \
  -DATTUNE_FUZZ_SANITIZE=OFF >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build "$gpu_build" --parallel "$(nproc)" ${gpu_target:+--target "$gpu_target"} >"$out/build.log" 2>&1 || { grep -E "error|Error" "$out/build.log" | head -40; exit 1; }
echo "built in $(( $(date +%s) - build_start )) s for sm_${gpu_arch}"
