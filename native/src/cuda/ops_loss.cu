// The cross-entropy loss and gradient (ops_loss.h). One block per row: three passes over the row,
// each a coalesced block-stride loop (max; Σ exp in double; the gradient), separated by block
// reductions. The row is re-read from memory (L2) instead of being kept on chip: V is up to ~256k,
// far more than shared memory, and this kernel is small next to the lm_head GEMM around it.
#include "cuda/ops_loss.h"

#include <cfloat>
#include <climits>
#include <cmath>

#include "cuda/cuda_status.h"
#include "cuda/dtype.cuh"
#include "cuda/reduce.cuh"

namespace attune::cuda {

namespace {

// Threads per row: enough to stream long rows; short rows (V = 5) leave most of them idle, which
// costs nothing that matters. A multiple of 32 (the reductions assume whole warps).
constexpr unsigned kRowThreads = 512;
constexpr unsigned kSumThreads = 1024;

// No __restrict__: dlogits may be logits. Safety of the in-place case: every read of the row that
// the loss needs (the target logit, the max pass, the sum pass) happens before the __syncthreads()
// inside block_sum; after it, each thread reads element i and then writes element i, and no
// element belongs to two threads.
template <typename T>
__global__ void cross_entropy_kernel(const T* logits, const int32_t* targets, int64_t V, float scale, T* dlogits,
                                     float* row_loss) {
  __shared__ float shared_max[kMaxWarpsPerBlock];
  __shared__ double shared_sum[kMaxWarpsPerBlock];
  const int64_t r = blockIdx.x;
  const T* x = logits + r * V;
  T* d = dlogits + r * V;
  const int32_t target = targets[r];  // the same for every thread: the branches below are uniform

  if (target < 0) {
    // Ignored row: no loss, no gradient (nothing of the row is read, so in place is trivially safe).
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) d[i] = from_float<T>(0.0f);
    if (threadIdx.x == 0) row_loss[r] = 0.0f;
    return;
  }
  const bool target_ok = target < V;
  // Read before any write (thread 0 is the only one that needs it).
  float target_logit = 0.0f;
  if (threadIdx.x == 0 && target_ok) target_logit = to_float(x[target]);

  // Pass 1: the row max, so that exp never overflows.
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, to_float(x[i]));
  const float max_logit = block_max(m, shared_max);

  // Pass 2: Σ exp(x − max). Each exponential is an fp32 value as on the CPU (expf of the fp32
  // difference); they are added in double, as the CPU op does (V is up to ~256k).
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += static_cast<double>(expf(to_float(x[i]) - max_logit));
  const double sum = block_sum(s, shared_sum);

  // From here on the row may be overwritten.
  if (threadIdx.x == 0) {
    row_loss[r] = target_ok ? static_cast<float>(log(sum) + static_cast<double>(max_logit) -
                                                 static_cast<double>(target_logit))
                            : NAN;
  }
  // Pass 3: the gradient. factor = fl32(scale / sum) as the CPU op; the same expf as pass 2, so
  // the probabilities sum to what pass 2 summed. __fmul_rn/__fsub_rn keep the product and the
  // subtraction separately rounded, as the CPU op computes them (nvcc would fuse them into an FMA).
  const float factor = static_cast<float>(static_cast<double>(scale) / sum);
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    float g = __fmul_rn(expf(to_float(x[i]) - max_logit), factor);
    if (i == target) g = __fsub_rn(g, scale);
    d[i] = from_float<T>(g);
  }
}

__global__ void sum_floats_kernel(const float* x, int64_t n, double* out, bool accumulate) {
  __shared__ double shared[kMaxWarpsPerBlock];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += static_cast<double>(x[i]);
  const double total = block_sum(s, shared);
  if (threadIdx.x == 0) *out = accumulate ? *out + total : total;
}

}  // namespace

template <typename T>
Status cross_entropy_forward_backward(const T* logits, const int32_t* targets, int64_t rows, int64_t V, float scale,
                                      T* dlogits, float* row_loss, cudaStream_t stream) {
  if (rows < 0) return Status::invalid_argument("cross_entropy_forward_backward: negative row count");
  if (V < 1) return Status::invalid_argument("cross_entropy_forward_backward: the vocabulary size must be at least 1");
  if (rows == 0) return Status();
  if (!logits || !targets || !dlogits || !row_loss) {
    return Status::invalid_argument("cross_entropy_forward_backward: null device pointer");
  }
  // One block per row: gridDim.x is at most 2^31 − 1 (chunks are far smaller in practice).
  if (rows > INT_MAX) return Status::invalid_argument("cross_entropy_forward_backward: too many rows for one launch");
  cross_entropy_kernel<T><<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(logits, targets, V, scale, dlogits,
                                                                                     row_loss);
  return check_launch("cross_entropy_forward_backward");
}

Status sum_floats(const float* x, int64_t n, double* out, bool accumulate, cudaStream_t stream) {
  if (n < 0) return Status::invalid_argument("sum_floats: negative size");
  if (!out || (n > 0 && !x)) return Status::invalid_argument("sum_floats: null device pointer");
  // Also for n == 0: the result (0, or *out unchanged) is still written in stream order.
  sum_floats_kernel<<<1, kSumThreads, 0, stream>>>(x, n, out, accumulate);
  return check_launch("sum_floats");
}

template Status cross_entropy_forward_backward<float>(const float*, const int32_t*, int64_t, int64_t, float, float*,
                                                      float*, cudaStream_t);
template Status cross_entropy_forward_backward<bf16>(const bf16*, const int32_t*, int64_t, int64_t, float, bf16*,
                                                     float*, cudaStream_t);

}  // namespace attune::cuda
