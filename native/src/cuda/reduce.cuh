// Reductions inside a warp and a block, and grid-stride loops, shared by the kernels. The sums run
// in an order fixed by the lane and warp numbers (a butterfly within the warp, then warps 0, 1, …
// in order), so a kernel gives the same bits run after run; every lane of the warp (every thread
// of the block) must call them, and every caller gets the result.
#pragma once

#include <cstdint>

namespace attune::cuda {

constexpr unsigned kFullWarpMask = 0xffffffffu;
constexpr int kMaxWarpsPerBlock = 32;  // 1024 threads

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullWarpMask, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullWarpMask, v, offset));
  return v;
}

// `shared` holds blockDim.x / 32 values of block-shared memory (kMaxWarpsPerBlock always do);
// the leading barrier lets a kernel call this again with the same buffer.
template <typename T>
__device__ T block_sum(T v, T* shared) {
  v = warp_sum(v);
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const unsigned warps = blockDim.x >> 5;
  T result = shared[0];
  for (unsigned w = 1; w < warps; ++w) result += shared[w];
  return result;
}

__device__ inline float block_max(float v, float* shared) {
  v = warp_max(v);
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const unsigned warps = blockDim.x >> 5;
  float result = shared[0];
  for (unsigned w = 1; w < warps; ++w) result = fmaxf(result, shared[w]);
  return result;
}

// for (int64_t i = first_index(); i < n; i += grid_stride()): every element once, any grid size.
__device__ __forceinline__ int64_t first_index() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

}  // namespace attune::cuda
