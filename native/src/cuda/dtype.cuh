// Element types of the CUDA kernels: activations are stored as T (float or bf16) and every kernel
// computes in fp32, converting on load and rounding once on store (round to nearest even), as the
// reference's bf16 autocast does.
#pragma once

#include <cuda_bf16.h>

namespace attune::cuda {

using bf16 = __nv_bfloat16;

__host__ __device__ __forceinline__ float to_float(float v) { return v; }
__host__ __device__ __forceinline__ float to_float(bf16 v) { return __bfloat162float(v); }

template <typename T>
__host__ __device__ __forceinline__ T from_float(float v);
template <>
__host__ __device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__host__ __device__ __forceinline__ bf16 from_float<bf16>(float v) {
  return __float2bfloat16_rn(v);
}

// Blocks of `threads` covering n elements, for one-thread-per-element kernels.
inline unsigned blocks_for(long long n, unsigned threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace attune::cuda
