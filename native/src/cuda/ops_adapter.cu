#include "adapter/dropout_stream.h"
#include "cuda/cuda_status.h"
#include "cuda/dtype.cuh"
#include "cuda/ops_adapter.h"

namespace attune::cuda {

namespace {

constexpr unsigned kThreads = 256;

__global__ void dropout_mask_kernel(uint64_t key, uint64_t offset, float p, float keep_scale, int64_t n, float* mask) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) mask[i] = adapter::dropout_uniform(key, offset + static_cast<uint64_t>(i)) < p ? 0.0f : keep_scale;
}

template <typename T>
__global__ void apply_mask_kernel(const T* x, const float* mask, int64_t n, T* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = from_float<T>(to_float(x[i]) * mask[i]);
}

template <typename T>
__global__ void scale_columns_kernel(const T* dy, const float* g, float offset, int64_t rows, int64_t cols, T* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < rows * cols) out[i] = from_float<T>((g[i % cols] + offset) * to_float(dy[i]));
}

template <typename T>
__global__ void dora_output_kernel(const float* inner, const float* wx, const float* wxd, const float* g, const float* bias,
                                   int64_t rows, int64_t cols, T* y) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * cols) return;
  const int64_t o = i % cols;
  float v = g[o] * inner[i];
  if (wx != nullptr) v += wx[i] - wxd[i];
  if (bias != nullptr) v += bias[o];
  y[i] = from_float<T>(v);
}

// One thread per column: consecutive threads read consecutive elements of a row (coalesced).
template <typename T>
__global__ void dora_magnitude_grad_kernel(const T* dy, const float* inner, const float* norm, int64_t rows, int64_t cols,
                                           float* dm) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= cols) return;
  float sum = 0;
  for (int64_t t = 0; t < rows; ++t) sum += to_float(dy[t * cols + o]) * inner[t * cols + o];
  dm[o] += sum / norm[o];
}

__global__ void dora_norm_kernel(const float* wa, const float* gram, const float* B, const float* w_norm_sq,
                                 const float* magnitude, double s, int64_t out, int64_t rank, float* norm, float* g) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= out) return;
  const float* b = B + o * rank;
  double cross = 0, delta = 0;
  for (int64_t k = 0; k < rank; ++k) {
    cross += static_cast<double>(b[k]) * wa[k * out + o];
    double gb = 0;
    for (int64_t l = 0; l < rank; ++l) gb += static_cast<double>(gram[k * rank + l]) * b[l];
    delta += b[k] * gb;
  }
  const double sq = static_cast<double>(w_norm_sq[o]) + 2.0 * s * cross + s * s * delta;
  const float n = static_cast<float>(sqrt(sq > 0 ? sq : 0.0));
  norm[o] = n;
  g[o] = magnitude[o] / n;
}

Status check_sizes(int64_t a, int64_t b, const char* op) {
  if (a < 0 || b < 0) return Status::invalid_argument(std::string(op) + " was given a negative size");
  return {};
}

}  // namespace

Status dropout_mask(uint64_t seed, uint64_t offset, float p, float keep_scale, int64_t n, float* mask, cudaStream_t stream) {
  ATTUNE_CUDA_TRY(check_sizes(n, 0, "dropout_mask"));
  if (!(p > 0.0f && p < 1.0f)) return Status::invalid_argument("dropout_mask needs a probability between 0 and 1");
  if (n == 0) return {};
  dropout_mask_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(adapter::dropout_key(seed), offset, p, keep_scale, n, mask);
  return check_launch("dropout_mask");
}

template <typename T>
Status apply_mask(const T* x, const float* mask, int64_t n, T* out, cudaStream_t stream) {
  ATTUNE_CUDA_TRY(check_sizes(n, 0, "apply_mask"));
  if (n == 0) return {};
  apply_mask_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(x, mask, n, out);
  return check_launch("apply_mask");
}

template <typename T>
Status scale_columns(const T* dy, const float* g, float offset, int64_t rows, int64_t cols, T* out, cudaStream_t stream) {
  ATTUNE_CUDA_TRY(check_sizes(rows, cols, "scale_columns"));
  if (rows * cols == 0) return {};
  scale_columns_kernel<<<blocks_for(rows * cols, kThreads), kThreads, 0, stream>>>(dy, g, offset, rows, cols, out);
  return check_launch("scale_columns");
}

template <typename T>
Status dora_output(const float* inner, const float* wx, const float* wxd, const float* g, const float* bias, int64_t rows,
                   int64_t cols, T* y, cudaStream_t stream) {
  ATTUNE_CUDA_TRY(check_sizes(rows, cols, "dora_output"));
  if ((wx == nullptr) != (wxd == nullptr)) return Status::invalid_argument("dora_output needs both W·x and W·x_d, or neither");
  if (rows * cols == 0) return {};
  dora_output_kernel<<<blocks_for(rows * cols, kThreads), kThreads, 0, stream>>>(inner, wx, wxd, g, bias, rows, cols, y);
  return check_launch("dora_output");
}

template <typename T>
Status dora_magnitude_grad(const T* dy, const float* inner, const float* norm, int64_t rows, int64_t cols, float* dm,
                           cudaStream_t stream) {
  ATTUNE_CUDA_TRY(check_sizes(rows, cols, "dora_magnitude_grad"));
  if (cols == 0) return {};
  dora_magnitude_grad_kernel<<<blocks_for(cols, kThreads), kThreads, 0, stream>>>(dy, inner, norm, rows, cols, dm);
  return check_launch("dora_magnitude_grad");
}

Status dora_norm(const float* wa, const float* gram, const float* B, const float* w_norm_sq, const float* magnitude,
                 float scaling, int64_t out, int64_t rank, float* norm, float* g, cudaStream_t stream) {
  ATTUNE_CUDA_TRY(check_sizes(out, rank, "dora_norm"));
  if (out == 0) return {};
  dora_norm_kernel<<<blocks_for(out, kThreads), kThreads, 0, stream>>>(wa, gram, B, w_norm_sq, magnitude, scaling, out, rank,
                                                                       norm, g);
  return check_launch("dora_norm");
}

#define ATTUNE_INSTANTIATE(T)                                                                                           \
  template Status apply_mask<T>(const T*, const float*, int64_t, T*, cudaStream_t);                                    \
  template Status scale_columns<T>(const T*, const float*, float, int64_t, int64_t, T*, cudaStream_t);                 \
  template Status dora_output<T>(const float*, const float*, const float*, const float*, const float*, int64_t, int64_t, \
                                 T*, cudaStream_t);                                                                     \
  template Status dora_magnitude_grad<T>(const T*, const float*, const float*, int64_t, int64_t, float*, cudaStream_t);
ATTUNE_INSTANTIATE(float)
ATTUNE_INSTANTIATE(bf16)
#undef ATTUNE_INSTANTIATE

}  // namespace attune::cuda
