// The linear layers of the decoder on the GPU, with their LoRA or DoRA adapter when targeted:
// forward and backward, the GPU twin of train/trainer.cpp's AdaptedLinear over adapter/lora.h and
// adapter/dora.h (the same formulas, the same saved tensors). Products go through cuBLASLt in the
// compute type T with fp32 accumulation; the adapters' fp32 masters feed the products as copies in
// T (bf16 autocast's behaviour), and their gradients accumulate in fp32.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <type_traits>

#include "cuda/cublaslt.h"
#include "cuda/device_memory.h"
#include "cuda/device_model.h"

namespace attune::cuda {

// One module's adapter on the GPU (all device pointers).
struct DeviceAdapter {
  int64_t rank = 0;
  float scaling = 1;
  const void* A = nullptr;  // [r, in] in the compute type
  const void* B = nullptr;  // [out, r] in the compute type
  float* dA = nullptr;      // fp32 gradients, added to
  float* dB = nullptr;
  // DoRA only (else null): g = m / n per output row, n = ‖W + s·B·A‖ (a constant for the step),
  // and the magnitude's gradient.
  const float* norm = nullptr;
  const float* g = nullptr;
  float* dmagnitude = nullptr;
};

// Scratch buffers grown on demand, kept between calls.
struct LinearScratch {
  DeviceBuffer dropped, tmp, du, scaled, wx, wxd;
};

// y[rows,out] = the layer applied to x[rows,in]. With an adapter, keeps u[rows,r] = x_d·Aᵀ and,
// for DoRA, inner[rows,out] (fp32) for the backward. mask [rows,in] (fp32 dropout mask) or null.
template <typename T>
Status linear_forward(Gemm& gemm, const DeviceLinear& w, const DeviceAdapter* adapter, const T* x, const float* mask,
                      int64_t rows, T* y, T* u, float* inner, LinearScratch& scratch, cudaStream_t stream);

// dx (=, or += when accumulate) ← dy through the layer; the adapter's gradients +=.
template <typename T>
Status linear_backward(Gemm& gemm, const DeviceLinear& w, const DeviceAdapter* adapter, const T* dy, const T* x,
                       const float* mask, const T* u, const float* inner, int64_t rows, T* dx, bool accumulate,
                       LinearScratch& scratch, cudaStream_t stream);

// Grows `buffer` to hold at least `count` elements of E (named `what` in an out-of-memory error).
template <typename E>
Status ensure(DeviceBuffer& buffer, int64_t count, const std::string& what) {
  const int64_t bytes = count * static_cast<int64_t>(sizeof(E));
  return buffer.bytes() >= bytes ? Status() : buffer.allocate(bytes, what);
}

// The GemmType of T (float or bf16).
template <typename T>
constexpr GemmType gemm_type() {
  return std::is_same_v<T, __nv_bfloat16> ? GemmType::kBF16 : GemmType::kF32;
}

}  // namespace attune::cuda
