// The small kernels of the LoRA / DoRA adapter layers on the GPU (adapter/lora.h, adapter/dora.h
// on the CPU); the products around them go through cuBLASLt (cuda/adapter_layers.h composes both).
// Shapes as there: x [T,in], y [T,out], A [r,in], B [out,r], magnitude m and norm n [out].
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "attune/status.h"

namespace attune::cuda {

// mask[n] = adapter::dropout_mask(seed, offset, p, n) bit for bit (the same counter-based stream,
// adapter/dropout_stream.h): each element kept with probability 1 − p and scaled by keep_scale =
// fl32(1 / (1 − p)) (computed by the caller in double, as the CPU does), else 0. 0 < p < 1.
Status dropout_mask(uint64_t seed, uint64_t offset, float p, float keep_scale, int64_t n, float* mask, cudaStream_t stream);

// out[n] = x[n] · mask[n] (the dropout mask of adapter::dropout_mask, fp32). out may be x.
template <typename T>
Status apply_mask(const T* x, const float* mask, int64_t n, T* out, cudaStream_t stream);

// out[t,o] = (g[o] + offset) · dy[t,o] for rows × cols: DoRA's g⊙dy (offset 0) and (g − 1)⊙dy
// (offset −1). out may be dy.
template <typename T>
Status scale_columns(const T* dy, const float* g, float offset, int64_t rows, int64_t cols, T* out, cudaStream_t stream);

// DoRA's output from its fp32 parts (dora_forward): y[t,o] = g[o]·inner[t,o] + bias[o], plus
// wx[t,o] − wxd[t,o] when dropout is on (wx = W·x, wxd = W·x_d; both null when it is off).
// bias may be null.
template <typename T>
Status dora_output(const float* inner, const float* wx, const float* wxd, const float* g, const float* bias, int64_t rows,
                   int64_t cols, T* y, cudaStream_t stream);

// dm[o] += Σ_t dy[t,o] · inner[t,o] / norm[o]: the magnitude's gradient (dora_backward).
template <typename T>
Status dora_magnitude_grad(const T* dy, const float* inner, const float* norm, int64_t rows, int64_t cols, float* dm,
                           cudaStream_t stream);

// DoRA's per-row weight norm in the factored form of adapter::dora_weight_norm, from
// wa[r,out] = A·Wᵀ, gram[r,r] = A·Aᵀ, B[out,r] and w_norm_sq[out] = ‖W_o‖² (sums in double):
//   norm[o] = √max(0, ‖W_o‖² + 2s·Σ_k B[o,k]·wa[k,o] + s²·Σ_k,l B[o,k]·gram[k,l]·B[o,l])
// and g[o] = magnitude[o] / norm[o] (fp32, as peft's magnitude / weight_norm).
Status dora_norm(const float* wa, const float* gram, const float* B, const float* w_norm_sq, const float* magnitude,
                 float scaling, int64_t out, int64_t rank, float* norm, float* g, cudaStream_t stream);

}  // namespace attune::cuda
