// What the attention kernels' two files share (ops_attention.cu: the forwards, ops_attention_backward.cu:
// the backward; ops_attention.h declares them): the block shape, the warp reductions, the tile
// loader, and on the host the shape checks, the head-dim dispatch, the softmax scale and the
// shared-memory opt-in.
// Kernels stay in their files; this header only holds helpers (device functions inlined into them,
// inline host functions), in namespace attention_detail so that the files' own anonymous-namespace
// names cannot collide with them.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "attune/status.h"
#include "cuda/cuda_status.h"
#include "cuda/dtype.cuh"

namespace attune::cuda::attention_detail {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarps = 4;              // warps per block of the tile kernels
constexpr int kThreads = kWarps * 32;  // threads per block of the tile kernels
constexpr int kKeyTile = 32;           // keys per tile where a lane owns a key
// Blocks per SM the tile kernels are compiled for: what ~49 KB of shared memory per block allows at
// the largest tiles. It caps registers at 128 per thread; without it ptxas picks a lower target
// and spills a few bytes in some instantiations.
constexpr int kMinBlocksPerSm = 4;
constexpr size_t kDefaultSharedBytes = 48 * 1024;  // more needs cudaFuncSetAttribute
// Positions and row numbers are ints in the kernels, with room for a tile past the end.
constexpr int64_t kMaxRows = int64_t{1} << 30;

// The head dims the kernels are compiled for, as the error message lists them. A lane owns the
// columns lane, lane + 32, ... of a row ((D + 31) / 32 of them): for D = 16 and 80 some lanes own
// fewer (lanes 16..31 none at D = 16), and every column access checks c < D.
constexpr const char* kSupportedHeadDims = "16, 32, 64, 80, 96, 128, 256";

inline bool head_dim_supported(int64_t dim) {
  return dim == 16 || dim == 32 || dim == 64 || dim == 80 || dim == 96 || dim == 128 || dim == 256;
}

inline Status unsupported_dim(const char* op, int64_t dim) {
  return Status::invalid_argument(std::string(op) + ": head dim " + std::to_string(dim) +
                                  " is not supported (supported: " + kSupportedHeadDims + ")");
}

// Calls f(std::integral_constant<int, dim>) for a supported head dim (the same list as
// head_dim_supported), else returns unsupported_dim.
template <typename F>
Status dispatch_head_dim(const char* op, int64_t dim, F&& f) {
  switch (dim) {
    case 16: return f(std::integral_constant<int, 16>());
    case 32: return f(std::integral_constant<int, 32>());
    case 64: return f(std::integral_constant<int, 64>());
    case 80: return f(std::integral_constant<int, 80>());
    case 96: return f(std::integral_constant<int, 96>());
    case 128: return f(std::integral_constant<int, 128>());
    case 256: return f(std::integral_constant<int, 256>());
    default: return unsupported_dim(op, dim);
  }
}

// Shapes every attention op accepts: counts in range for int positions and the launch grid.
// has_past: the op takes a cache offset `past` (the forwards); the backward has none (past = 0)
// and its messages do not mention it.
inline Status check_shape(const char* op, int64_t tokens, int64_t past, int64_t heads, int64_t kv_heads, int64_t dim,
                          bool has_past) {
  const std::string name(op);
  if (tokens < 0 || past < 0) {
    return Status::invalid_argument(name + (has_past ? ": tokens and past must be >= 0" : ": tokens must be >= 0"));
  }
  if (heads < 1 || kv_heads < 1 || heads % kv_heads != 0) {
    return Status::invalid_argument(name + ": heads (" + std::to_string(heads) +
                                    ") must be a positive multiple of kv_heads (" + std::to_string(kv_heads) + ")");
  }
  if (!head_dim_supported(dim)) return unsupported_dim(op, dim);
  if (kv_heads > 65535) return Status::invalid_argument(name + ": more than 65535 kv_heads");
  if (tokens >= kMaxRows || past >= kMaxRows || heads >= kMaxRows || past + tokens >= kMaxRows ||
      tokens * heads >= kMaxRows) {
    return Status::invalid_argument(name + (has_past ? ": past + tokens and tokens * heads must be below 2^30"
                                                     : ": tokens * heads must be below 2^30"));
  }
  return Status();
}

// The scores' scale, 1/√dim, as the CPU ops compute it: the forward and the backward must agree
// (the backward recomputes the probabilities from the forward's lse).
inline float softmax_scale(int dim) { return 1.0f / std::sqrt(static_cast<float>(dim)); }

// Lets `kernel` use `bytes` of dynamic shared memory (beyond 48 KB it must opt in), or says why not.
inline Status allow_shared_memory(const void* kernel, size_t bytes, const char* op) {
  if (bytes <= kDefaultSharedBytes) return Status();
  int device = 0, limit = 0;
  ATTUNE_CUDA_TRY(check(cudaGetDevice(&device), op));
  ATTUNE_CUDA_TRY(check(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), op));
  if (bytes > static_cast<size_t>(limit)) {
    return Status::invalid_argument(std::string(op) + ": needs " + std::to_string(bytes) +
                                    " bytes of shared memory per block for this head dim; this GPU allows " +
                                    std::to_string(limit));
  }
  return check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)), op);
}

// Butterfly reductions: every lane ends with the same value (a + b == b + a exactly in IEEE).
__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, offset));
  return x;
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}

// Rows [first, first + Rows) of head `head` of x[*, heads, D] into dst[Rows][Stride] as fp32,
// zeros for rows at or after `end`. The block's kThreads threads read consecutive elements of a row
// (coalesced). Stride D + 1 pads rows that 32 lanes read "one row per lane" at the same column:
// D + 1 is odd for every supported D, so the 32 rows fall in 32 different banks.
template <typename T, int D, int Rows, int Stride>
__device__ __forceinline__ void load_rows(const T* __restrict__ x, int first, int end, int heads, int head,
                                          float* __restrict__ dst) {
  static_assert(Stride >= D, "a row must fit its stride");
  for (int idx = static_cast<int>(threadIdx.x); idx < Rows * D; idx += kThreads) {
    const int j = idx / D;
    const int c = idx - j * D;
    const int row = first + j;
    dst[j * Stride + c] = row < end ? to_float(x[(static_cast<int64_t>(row) * heads + head) * D + c]) : 0.0f;
  }
}

}  // namespace attune::cuda::attention_detail
