// The elementwise CUDA ops (ops_elementwise.h). Each is memory-bound: one load per input and one
// store per output, computed in fp32. The kernels use plain, coalesced scalar accesses and
// grid-stride loops over 64-bit indices (T·I passes 2^31 for long batches), so any size and any
// alignment are handled by the same code path.
#include "cuda/ops_elementwise.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "cuda/cuda_status.h"
#include "cuda/dtype.cuh"
#include "cuda/reduce.cuh"

namespace attune::cuda {

namespace {

constexpr unsigned kThreads = 256;
// Grid-stride loops: at most this many blocks (hundreds of thousands of threads, enough to keep any
// current GPU's memory system busy); the loop covers whatever is left. Keeps gridDim.x far under
// its 2^31 − 1 limit whatever n is.
constexpr long long kMaxBlocks = 1 << 16;

// Blocks of kThreads for n elements (n > 0), capped at kMaxBlocks.
unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::min<long long>(blocks_for(n, kThreads), kMaxBlocks)); }

// Size checks shared by the launchers: negative sizes and null pointers with work to do are the
// caller's mistake, reported by op name.
Status negative_size(const char* op) { return Status::invalid_argument(std::string(op) + ": negative size"); }
Status null_pointer(const char* op) { return Status::invalid_argument(std::string(op) + ": null device pointer"); }

// No __restrict__ on any pointer below: the in-place uses (out = gate, dgate = gate, x += x, ...)
// alias them. Every element is read completely before anything of it is written, and no element
// is touched by more than one thread, so aliasing element-for-element is safe.

template <typename T>
__global__ void swiglu_forward_kernel(const T* gate, const T* up, int64_t count, T* out) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    const float g = to_float(gate[i]);
    const float u = to_float(up[i]);
    // As the CPU op: g / (1 + e^−g) · u. For g → −∞, e^−g = inf and the quotient is −0, not NaN.
    out[i] = from_float<T>(g / (1.0f + expf(-g)) * u);
  }
}

template <typename T>
__global__ void swiglu_backward_kernel(const T* dout, const T* gate, const T* up, int64_t count, T* dgate, T* dup) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    // All three inputs are read before either output is written (dgate may be gate, dup may be up).
    const float d = to_float(dout[i]);
    const float g = to_float(gate[i]);
    const float u = to_float(up[i]);
    const float sig = 1.0f / (1.0f + expf(-g));
    const float silu = g * sig;
    dgate[i] = from_float<T>(d * u * (sig * (1.0f + g * (1.0f - sig))));
    dup[i] = from_float<T>(d * silu);
  }
}

template <typename T>
__global__ void add_inplace_kernel(T* x, const T* y, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) x[i] = from_float<T>(to_float(x[i]) + to_float(y[i]));
}

// One block per row (grid-stride over rows, so any row count fits the grid), the threads striding
// over the columns: consecutive threads touch consecutive elements of y and of bias.
template <typename T>
__global__ void add_bias_kernel(T* y, const float* bias, int64_t rows, int64_t cols) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    T* row = y + r * cols;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) row[j] = from_float<T>(to_float(row[j]) + bias[j]);
  }
}

template <typename T>
__global__ void scale_inplace_kernel(T* x, float scale, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) x[i] = from_float<T>(to_float(x[i]) * scale);
}

template <typename From, typename To>
__global__ void convert_kernel(const From* __restrict__ src, To* __restrict__ dst, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) dst[i] = from_float<To>(to_float(src[i]));
}

// An embedding table element as fp32, per file dtype. Widening bf16 and f16 is exact, as
// bf16_to_f32 / f16_to_f32 on the CPU.
__device__ __forceinline__ float table_value(const float* table, int64_t i) { return table[i]; }
__device__ __forceinline__ float table_value(const bf16* table, int64_t i) { return __bfloat162float(table[i]); }
__device__ __forceinline__ float table_value(const __half* table, int64_t i) { return __half2float(table[i]); }

// One block per token (grid-stride over tokens), the threads striding over the row: reads one
// contiguous table row and writes one contiguous output row, both coalesced.
template <typename T, typename Src>
__global__ void embedding_forward_kernel(const int32_t* ids, int64_t tokens, const Src* table, int64_t H, T* out) {
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    const Src* row = table + static_cast<int64_t>(ids[t]) * H;
    T* o = out + t * H;
    for (int64_t j = threadIdx.x; j < H; j += blockDim.x) o[j] = from_float<T>(table_value(row, j));
  }
}

}  // namespace

template <typename T>
Status swiglu_forward(const T* gate, const T* up, int64_t count, T* out, cudaStream_t stream) {
  if (count < 0) return negative_size("swiglu_forward");
  if (count == 0) return Status();
  if (!gate || !up || !out) return null_pointer("swiglu_forward");
  swiglu_forward_kernel<T><<<grid_for(count), kThreads, 0, stream>>>(gate, up, count, out);
  return check_launch("swiglu_forward");
}

template <typename T>
Status swiglu_backward(const T* dout, const T* gate, const T* up, int64_t count, T* dgate, T* dup,
                       cudaStream_t stream) {
  if (count < 0) return negative_size("swiglu_backward");
  if (count == 0) return Status();
  if (!dout || !gate || !up || !dgate || !dup) return null_pointer("swiglu_backward");
  swiglu_backward_kernel<T><<<grid_for(count), kThreads, 0, stream>>>(dout, gate, up, count, dgate, dup);
  return check_launch("swiglu_backward");
}

template <typename T>
Status add_inplace(T* x, const T* y, int64_t n, cudaStream_t stream) {
  if (n < 0) return negative_size("add_inplace");
  if (n == 0) return Status();
  if (!x || !y) return null_pointer("add_inplace");
  add_inplace_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(x, y, n);
  return check_launch("add_inplace");
}

template <typename T>
Status add_bias(T* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return negative_size("add_bias");
  if (rows == 0 || cols == 0) return Status();
  if (!y || !bias) return null_pointer("add_bias");
  const unsigned blocks = static_cast<unsigned>(std::min<long long>(rows, kMaxBlocks));
  add_bias_kernel<T><<<blocks, kThreads, 0, stream>>>(y, bias, rows, cols);
  return check_launch("add_bias");
}

template <typename T>
Status scale_inplace(T* x, float scale, int64_t n, cudaStream_t stream) {
  if (n < 0) return negative_size("scale_inplace");
  if (n == 0) return Status();
  if (!x) return null_pointer("scale_inplace");
  scale_inplace_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(x, scale, n);
  return check_launch("scale_inplace");
}

template <typename From, typename To>
Status convert(const From* src, To* dst, int64_t n, cudaStream_t stream) {
  if (n < 0) return negative_size("convert");
  if (n == 0) return Status();
  if (!src || !dst) return null_pointer("convert");
  convert_kernel<From, To><<<grid_for(n), kThreads, 0, stream>>>(src, dst, n);
  return check_launch("convert");
}

template <typename T>
Status embedding_forward(const int32_t* ids, int64_t tokens, const void* table, cpu::WeightType type, int64_t H,
                         T* out, cudaStream_t stream) {
  if (tokens < 0 || H < 0) return negative_size("embedding_forward");
  if (tokens == 0 || H == 0) return Status();
  if (!ids || !table || !out) return null_pointer("embedding_forward");
  const unsigned blocks = static_cast<unsigned>(std::min<long long>(tokens, kMaxBlocks));
  switch (type) {
    case cpu::WeightType::F32:
      embedding_forward_kernel<T, float>
          <<<blocks, kThreads, 0, stream>>>(ids, tokens, static_cast<const float*>(table), H, out);
      break;
    case cpu::WeightType::BF16:
      embedding_forward_kernel<T, bf16>
          <<<blocks, kThreads, 0, stream>>>(ids, tokens, static_cast<const bf16*>(table), H, out);
      break;
    case cpu::WeightType::F16:
      embedding_forward_kernel<T, __half>
          <<<blocks, kThreads, 0, stream>>>(ids, tokens, static_cast<const __half*>(table), H, out);
      break;
    default:
      return Status::invalid_argument("embedding_forward: unknown table dtype");
  }
  return check_launch("embedding_forward");
}

#define ATTUNE_INSTANTIATE_ELEMENTWISE(T)                                                                      \
  template Status swiglu_forward<T>(const T*, const T*, int64_t, T*, cudaStream_t);                            \
  template Status swiglu_backward<T>(const T*, const T*, const T*, int64_t, T*, T*, cudaStream_t);             \
  template Status add_inplace<T>(T*, const T*, int64_t, cudaStream_t);                                         \
  template Status add_bias<T>(T*, const float*, int64_t, int64_t, cudaStream_t);                               \
  template Status scale_inplace<T>(T*, float, int64_t, cudaStream_t);                                          \
  template Status embedding_forward<T>(const int32_t*, int64_t, const void*, cpu::WeightType, int64_t, T*, \
                                       cudaStream_t);

ATTUNE_INSTANTIATE_ELEMENTWISE(float)
ATTUNE_INSTANTIATE_ELEMENTWISE(bf16)
#undef ATTUNE_INSTANTIATE_ELEMENTWISE

template Status convert<float, bf16>(const float*, bf16*, int64_t, cudaStream_t);
template Status convert<bf16, float>(const bf16*, float*, int64_t, cudaStream_t);
template Status convert<float, float>(const float*, float*, int64_t, cudaStream_t);
template Status convert<bf16, bf16>(const bf16*, bf16*, int64_t, cudaStream_t);

}  // namespace attune::cuda
