// RMSNorm kernels (ops_norm.h). Forward and the dx part of the backward run one block per row:
// the block reduces the row's sum (of squares, or of dy·w·x) in fp32 through warp shuffles and
// shared memory, then every thread rewrites the elements it read. The weight gradient, a sum over
// rows, is a separate column-reduction kernel launched before the dx kernel.
#include "cuda/ops_norm.h"

#include <algorithm>
#include <string>

#include "cuda/cuda_status.h"
#include "cuda/dtype.cuh"
#include "cuda/reduce.cuh"

namespace attune::cuda {

namespace {

// Rows per launch are covered by a grid-stride loop over rows, so gridDim.x stays under its limit.
constexpr long long kMaxBlocks = 1 << 16;

// Row kernels run with at most 256 threads a block (8 warps); __launch_bounds__ tells the compiler.
constexpr unsigned kMaxRowThreads = 256;

// Threads per row block: one warp for short rows, up to 256 (8 warps) for long ones. Always a
// multiple of 32, which block_sum needs (every lane of every warp takes part in the shuffles).
unsigned row_threads(int64_t H) {
  const int64_t warps = std::min<int64_t>((H + 31) / 32, kMaxRowThreads / 32);
  return static_cast<unsigned>(warps * 32);
}

// No __restrict__ on x/out or dy/dx: they may alias (in place). Within a row, the first pass reads
// every element, block_sum's barrier separates it from the second pass, and in the second pass
// each element is read and then written by the same thread, touched by no other.

template <typename T>
__global__ void __launch_bounds__(kMaxRowThreads)
    rmsnorm_forward_kernel(const T* x, const float* weight, float eps, int64_t tokens, int64_t H, T* out, float* rstd) {
  __shared__ float partial[kMaxWarpsPerBlock];
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    const T* row = x + t * H;
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
      const float v = to_float(row[j]);
      sum += v * v;
    }
    sum = block_sum(sum, partial);
    // 1/sqrtf (both correctly rounded) as the CPU's 1.0f / std::sqrt, rather than the
    // approximate rsqrtf.
    const float r = 1.0f / sqrtf(sum / static_cast<float>(H) + eps);
    if (rstd != nullptr && threadIdx.x == 0) rstd[t] = r;
    T* o = out + t * H;
    for (int64_t j = threadIdx.x; j < H; j += blockDim.x) o[j] = from_float<T>((to_float(row[j]) * r) * weight[j]);
  }
}

template <typename T>
__global__ void __launch_bounds__(kMaxRowThreads)
    rmsnorm_backward_dx_kernel(const T* dy, const T* x, const float* weight, const float* rstd, int64_t tokens,
                               int64_t H, T* dx, bool accumulate) {
  __shared__ float partial[kMaxWarpsPerBlock];
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    const T* g = dy + t * H;
    const T* row = x + t * H;
    T* d = dx + t * H;
    const float r = rstd[t];
    float dot = 0.0f;
    for (int64_t j = threadIdx.x; j < H; j += blockDim.x) dot += to_float(g[j]) * weight[j] * to_float(row[j]);
    dot = block_sum(dot, partial);
    // c = Σ_j dy_j·w_j·x_j · r³ / H
    const float c = dot * r * r * r / static_cast<float>(H);
    for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
      float v = r * (to_float(g[j]) * weight[j]) - c * to_float(row[j]);
      if (accumulate) v = to_float(d[j]) + v;
      d[j] = from_float<T>(v);
    }
  }
}

// dweight[i] += Σ_t dy[t,i]·x[t,i]·rstd[t]. A block of 32 × kRowLanes threads owns 32 adjacent
// columns: threadIdx.x picks the column (a warp reads 32 consecutive elements of a row,
// coalesced), threadIdx.y the rows it sums (y, y + kRowLanes, ...). The kRowLanes partial sums of
// a column are then added in a fixed order by one thread: the result is the same run to run.
// Unlike the row sums (at most H terms), this one runs over every token of the batch (tens of
// thousands), so it accumulates in double as the CPU op does; one double add per element is far
// from the limit even on GPUs with slow fp64, as the kernel waits on memory.
constexpr unsigned kRowLanes = 32;

// 1024 threads a block: the bound makes the compiler keep to 64 registers a thread, or the launch
// would fail for lack of registers.
template <typename T>
__global__ void __launch_bounds__(32 * kRowLanes)
    rmsnorm_backward_dweight_kernel(const T* dy, const T* x, const float* rstd, int64_t tokens, int64_t H,
                                    float* dweight) {
  __shared__ double partial[kRowLanes][32];
  const int64_t i = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  double sum = 0.0;
  if (i < H) {
    for (int64_t t = threadIdx.y; t < tokens; t += kRowLanes) {
      sum += static_cast<double>(to_float(dy[t * H + i]) * to_float(x[t * H + i]) * rstd[t]);
    }
  }
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && i < H) {
    double total = 0.0;
    for (unsigned lane = 0; lane < kRowLanes; ++lane) total += partial[lane][threadIdx.x];
    dweight[i] += static_cast<float>(total);
  }
}

Status invalid(const char* op, const char* why) { return Status::invalid_argument(std::string(op) + ": " + why); }

}  // namespace

template <typename T>
Status rmsnorm_forward(const T* x, const float* weight, float eps, int64_t tokens, int64_t H, T* out, float* rstd,
                       cudaStream_t stream) {
  if (tokens < 0 || H < 0) return invalid("rmsnorm_forward", "negative size");
  if (tokens == 0) return Status();
  if (H == 0) return invalid("rmsnorm_forward", "rows of zero elements have no norm");
  if (!x || !weight || !out) return invalid("rmsnorm_forward", "null device pointer");
  const unsigned blocks = static_cast<unsigned>(std::min<long long>(tokens, kMaxBlocks));
  rmsnorm_forward_kernel<T><<<blocks, row_threads(H), 0, stream>>>(x, weight, eps, tokens, H, out, rstd);
  return check_launch("rmsnorm_forward");
}

template <typename T>
Status rmsnorm_backward(const T* dy, const T* x, const float* weight, const float* rstd, int64_t tokens, int64_t H,
                        T* dx, bool accumulate, float* dweight, cudaStream_t stream) {
  if (tokens < 0 || H < 0) return invalid("rmsnorm_backward", "negative size");
  if (tokens == 0) return Status();
  if (H == 0) return invalid("rmsnorm_backward", "rows of zero elements have no norm");
  if (!dy || !x || !weight || !rstd || !dx) return invalid("rmsnorm_backward", "null device pointer");
  if (dweight != nullptr) {
    // First, while dy is intact: the dx kernel below may overwrite it (dx = dy). Same stream, so
    // the dx kernel starts after this one has finished.
    const unsigned column_blocks = static_cast<unsigned>((H + 31) / 32);
    rmsnorm_backward_dweight_kernel<T><<<column_blocks, dim3(32, kRowLanes), 0, stream>>>(dy, x, rstd, tokens, H,
                                                                                          dweight);
    ATTUNE_CUDA_TRY(check_launch("rmsnorm_backward (dweight)"));
  }
  const unsigned blocks = static_cast<unsigned>(std::min<long long>(tokens, kMaxBlocks));
  rmsnorm_backward_dx_kernel<T><<<blocks, row_threads(H), 0, stream>>>(dy, x, weight, rstd, tokens, H, dx, accumulate);
  return check_launch("rmsnorm_backward");
}

template Status rmsnorm_forward<float>(const float*, const float*, float, int64_t, int64_t, float*, float*,
                                       cudaStream_t);
template Status rmsnorm_forward<bf16>(const bf16*, const float*, float, int64_t, int64_t, bf16*, float*, cudaStream_t);
template Status rmsnorm_backward<float>(const float*, const float*, const float*, const float*, int64_t, int64_t,
                                        float*, bool, float*, cudaStream_t);
template Status rmsnorm_backward<bf16>(const bf16*, const bf16*, const float*, const float*, int64_t, int64_t, bf16*,
                                       bool, float*, cudaStream_t);

}  // namespace attune::cuda
