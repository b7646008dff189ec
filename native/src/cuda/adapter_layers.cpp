#include "cuda/adapter_layers.h"

#include <cuda_bf16.h>

#include "cuda/cuda_status.h"
#include "cuda/ops_adapter.h"
#include "cuda/ops_elementwise.h"

namespace attune::cuda {

namespace {

// y (=, or += when accumulate) x[rows,in]·W[out,in]ᵀ into an output of type `output`.
Status apply_weight(Gemm& gemm, const DeviceLinear& w, const void* x, GemmType input, int64_t rows, void* y, GemmType output,
                    bool accumulate) {
  return gemm.matmul(false, true, rows, w.out, w.in, 1.0f, x, w.weight.data(), input, accumulate ? 1.0f : 0.0f, y, output);
}

// x_d: x itself without dropout, else x ⊙ mask in scratch.dropped.
template <typename T>
Status dropped_input(const T* x, const float* mask, int64_t n, LinearScratch& scratch, cudaStream_t stream, const T** out) {
  if (mask == nullptr) {
    *out = x;
    return {};
  }
  ATTUNE_CUDA_TRY(ensure<T>(scratch.dropped, n, "the dropout-masked input"));
  ATTUNE_CUDA_TRY(apply_mask(x, mask, n, scratch.dropped.as<T>(), stream));
  *out = scratch.dropped.as<T>();
  return {};
}

}  // namespace

template <typename T>
Status linear_forward(Gemm& gemm, const DeviceLinear& w, const DeviceAdapter* a, const T* x, const float* mask, int64_t rows,
                      T* y, T* u, float* inner, LinearScratch& scratch, cudaStream_t stream) {
  constexpr GemmType type = gemm_type<T>();
  const float* bias = w.bias_or_null();
  if (a == nullptr || a->g == nullptr) {
    // Plain, or LoRA: y = x·Wᵀ + b + s·(x_d·Aᵀ)·Bᵀ
    ATTUNE_CUDA_TRY(apply_weight(gemm, w, x, type, rows, y, type, false));
    if (bias != nullptr) ATTUNE_CUDA_TRY(add_bias(y, bias, rows, w.out, stream));
    if (a == nullptr) return {};
    const T* xd = nullptr;
    ATTUNE_CUDA_TRY(dropped_input(x, mask, rows * w.in, scratch, stream, &xd));
    ATTUNE_CUDA_TRY(gemm.matmul(false, true, rows, a->rank, w.in, 1.0f, xd, a->A, type, 0.0f, u, type));
    return gemm.matmul(false, true, rows, w.out, a->rank, a->scaling, u, a->B, type, 1.0f, y, type);
  }
  // DoRA (adapter/dora.h): inner = W·x_d + s·B·u (fp32); y = g⊙inner + b, plus W·x − W·x_d with dropout.
  const T* xd = nullptr;
  ATTUNE_CUDA_TRY(dropped_input(x, mask, rows * w.in, scratch, stream, &xd));
  ATTUNE_CUDA_TRY(apply_weight(gemm, w, xd, type, rows, inner, GemmType::kF32, false));
  const float* wx = nullptr;
  const float* wxd = nullptr;
  if (mask != nullptr) {
    ATTUNE_CUDA_TRY(ensure<float>(scratch.wx, rows * w.out, "DoRA's W·x"));
    ATTUNE_CUDA_TRY(ensure<float>(scratch.wxd, rows * w.out, "DoRA's W·x_d"));
    ATTUNE_CUDA_TRY(apply_weight(gemm, w, x, type, rows, scratch.wx.data(), GemmType::kF32, false));
    ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(scratch.wxd.data(), inner, static_cast<size_t>(rows * w.out) * sizeof(float),
                                          cudaMemcpyDeviceToDevice, stream),
                          "copying DoRA's W·x_d"));
    wx = scratch.wx.as<float>();
    wxd = scratch.wxd.as<float>();
  }
  ATTUNE_CUDA_TRY(gemm.matmul(false, true, rows, a->rank, w.in, 1.0f, xd, a->A, type, 0.0f, u, type));
  ATTUNE_CUDA_TRY(gemm.matmul(false, true, rows, w.out, a->rank, a->scaling, u, a->B, type, 1.0f, inner, GemmType::kF32));
  return dora_output(inner, wx, wxd, a->g, bias, rows, w.out, y, stream);
}

template <typename T>
Status linear_backward(Gemm& gemm, const DeviceLinear& w, const DeviceAdapter* a, const T* dy, const T* x, const float* mask,
                       const T* u, const float* inner, int64_t rows, T* dx, bool accumulate, LinearScratch& scratch,
                       cudaStream_t stream) {
  constexpr GemmType type = gemm_type<T>();
  const float beta = accumulate ? 1.0f : 0.0f;
  if (a == nullptr) return gemm.matmul(false, false, rows, w.in, w.out, 1.0f, dy, w.weight.data(), type, beta, dx, type);

  const bool dora = a->g != nullptr;
  // The gradient reaching the LoRA branch: dy (LoRA) or g⊙dy (DoRA).
  const T* dy_branch = dy;
  if (dora) {
    ATTUNE_CUDA_TRY(dora_magnitude_grad(dy, inner, a->norm, rows, w.out, a->dmagnitude, stream));
    ATTUNE_CUDA_TRY(ensure<T>(scratch.scaled, rows * w.out, "DoRA's scaled gradient"));
    ATTUNE_CUDA_TRY(scale_columns(dy, a->g, 0.0f, rows, w.out, scratch.scaled.as<T>(), stream));
    dy_branch = scratch.scaled.as<T>();
  }
  // du = s·dy_branch·B [rows,r]; dB += s·dy_branchᵀ·u; dA += duᵀ·x_d
  ATTUNE_CUDA_TRY(ensure<T>(scratch.du, rows * a->rank, "the adapter's du"));
  T* du = scratch.du.as<T>();
  ATTUNE_CUDA_TRY(gemm.matmul(false, false, rows, a->rank, w.out, a->scaling, dy_branch, a->B, type, 0.0f, du, type));
  ATTUNE_CUDA_TRY(gemm.matmul(true, false, w.out, a->rank, rows, a->scaling, dy_branch, u, type, 1.0f, a->dB, GemmType::kF32));
  const T* xd = nullptr;
  ATTUNE_CUDA_TRY(dropped_input(x, mask, rows * w.in, scratch, stream, &xd));
  ATTUNE_CUDA_TRY(gemm.matmul(true, false, a->rank, w.in, rows, 1.0f, du, xd, type, 1.0f, a->dA, GemmType::kF32));

  if (mask == nullptr) {
    // dx = dy_branch·W + du·A   (LoRA: dy·W + du·A; DoRA: (g⊙dy)·W + du·A)
    ATTUNE_CUDA_TRY(gemm.matmul(false, false, rows, w.in, w.out, 1.0f, dy_branch, w.weight.data(), type, beta, dx, type));
    return gemm.matmul(false, false, rows, w.in, a->rank, 1.0f, du, a->A, type, 1.0f, dx, type);
  }
  // Dropout: dx = dy·W + mask ⊙ (du·A) (LoRA), or dy·W + mask ⊙ (((g − 1)⊙dy)·W + du·A) (DoRA).
  ATTUNE_CUDA_TRY(gemm.matmul(false, false, rows, w.in, w.out, 1.0f, dy, w.weight.data(), type, beta, dx, type));
  ATTUNE_CUDA_TRY(ensure<T>(scratch.tmp, rows * w.in, "the adapter's input gradient"));
  T* branch = scratch.tmp.as<T>();
  float branch_beta = 0.0f;
  if (dora) {
    T* g_minus_one = scratch.scaled.as<T>();  // g⊙dy is no longer needed
    ATTUNE_CUDA_TRY(scale_columns(dy, a->g, -1.0f, rows, w.out, g_minus_one, stream));
    ATTUNE_CUDA_TRY(gemm.matmul(false, false, rows, w.in, w.out, 1.0f, g_minus_one, w.weight.data(), type, 0.0f, branch, type));
    branch_beta = 1.0f;
  }
  ATTUNE_CUDA_TRY(gemm.matmul(false, false, rows, w.in, a->rank, 1.0f, du, a->A, type, branch_beta, branch, type));
  ATTUNE_CUDA_TRY(apply_mask(branch, mask, rows * w.in, branch, stream));
  return add_inplace(dx, branch, rows * w.in, stream);
}

#define ATTUNE_INSTANTIATE(T)                                                                                               \
  template Status linear_forward<T>(Gemm&, const DeviceLinear&, const DeviceAdapter*, const T*, const float*, int64_t, T*, \
                                    T*, float*, LinearScratch&, cudaStream_t);                                              \
  template Status linear_backward<T>(Gemm&, const DeviceLinear&, const DeviceAdapter*, const T*, const T*, const float*,    \
                                     const T*, const float*, int64_t, T*, bool, LinearScratch&, cudaStream_t);
ATTUNE_INSTANTIATE(float)
ATTUNE_INSTANTIATE(__nv_bfloat16)
#undef ATTUNE_INSTANTIATE

}  // namespace attune::cuda
