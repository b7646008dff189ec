// RMSNorm on the GPU, forward and backward: the same semantics as cpu::rmsnorm_forward
// (cpu/ops.h) and cpu::rmsnorm_backward (cpu/ops_backward.h) on T = float or bf16 activations,
// with the weight, the saved reciprocal std and the weight gradient in fp32. The sums over a row
// run in fp32 (the CPU op sums in double), the weight gradient's sum over all tokens in double;
// every value is rounded once, on store.
//
// All pointers are device pointers. A negative size or a null required pointer with work to do
// is Status::invalid_argument; tokens == 0 launches nothing. H == 0 is refused (the mean of an
// empty row is undefined), except with tokens == 0.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "attune/status.h"

namespace attune::cuda {

// x, out: T[tokens, H]; weight: fp32 [H]; rstd: fp32 [tokens] or null (cpu::rmsnorm_forward; the
// CPU op calls the row count T):
//   r = 1 / sqrt(mean(x²) + eps), out = (x·r)·weight, rstd[t] = r.
// out may be the same buffer as x (each row is read completely before it is written).
template <typename T>
Status rmsnorm_forward(const T* x, const float* weight, float eps, int64_t tokens, int64_t H, T* out, float* rstd,
                       cudaStream_t stream);

// dy, x, dx: T[tokens, H]; weight: fp32 [H]; rstd: fp32 [tokens] as saved by rmsnorm_forward;
// dweight: fp32 [H] or null (cpu::rmsnorm_backward):
//   dx = r·(w⊙dy) − x·(r³/H)·Σ_j dy_j·w_j·x_j   (overwritten, or added to dx when accumulate)
//   dweight += Σ_t dy_t ⊙ x_t·r_t               (only when dweight is not null; always accumulated)
// dx may be the same buffer as dy when accumulate is false (in place). dweight is computed first,
// by its own kernel, while dy is intact; its column sums run in a fixed order (deterministic).
template <typename T>
Status rmsnorm_backward(const T* dy, const T* x, const float* weight, const float* rstd, int64_t tokens, int64_t H,
                        T* dx, bool accumulate, float* dweight, cudaStream_t stream);

}  // namespace attune::cuda
