// Elementwise CUDA ops and the embedding lookup: SwiGLU forward and backward, residual add, bias
// add, scaling, dtype conversion, and the embedding gather. The same semantics as the CPU ops of
// the same name (cpu/ops.h, cpu/ops_backward.h) on T = float or bf16 activations: every kernel
// loads T, computes in fp32 and rounds once on store (cuda/dtype.cuh).
//
// All pointers are device pointers. Sizes are checked before launching: a negative size or a null
// pointer with a nonzero size is Status::invalid_argument, a size of zero launches nothing. Each
// launcher only enqueues work on `stream`; a launch failure is reported by check_launch(), a
// failure while the kernel runs by the next synchronizing CUDA call.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "attune/status.h"
#include "cpu/gemm.h"  // cpu::WeightType

namespace attune::cuda {

// out[count] = silu(gate[count]) · up[count], silu(g) = g·σ(g) (cpu::swiglu_forward). count = T·I.
// out may be the same buffer as gate or up (each element is read before it is written).
template <typename T>
Status swiglu_forward(const T* gate, const T* up, int64_t count, T* out, cudaStream_t stream);

// dout, gate, up, dgate, dup: [count] (cpu::swiglu_backward):
//   dgate = dout·up·σ(g)·(1 + g·(1 − σ(g))), dup = dout·silu(g)   (both overwritten)
// dgate may be the same buffer as gate, dup as up (in place): each element reads all of its inputs
// before writing either output.
template <typename T>
Status swiglu_backward(const T* dout, const T* gate, const T* up, int64_t count, T* dgate, T* dup,
                       cudaStream_t stream);

// x[n] += y[n] (cpu::add_inplace). x may be y (then x doubles).
template <typename T>
Status add_inplace(T* x, const T* y, int64_t n, cudaStream_t stream);

// y[rows, cols] += bias[cols] on every row; bias is fp32 (as cpu::linear's bias, which the GPU
// path adds after the matrix product instead of before it).
template <typename T>
Status add_bias(T* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream);

// x[n] *= scale (computed in fp32, rounded once to T).
template <typename T>
Status scale_inplace(T* x, float scale, int64_t n, cudaStream_t stream);

// dst[n] = src[n] converted: float → bf16 rounds to nearest even, bf16 → float is exact.
// Instantiated for <float, bf16>, <bf16, float>, and the plain copies <float, float> and
// <bf16, bf16> (so code templated on T can call convert<float, T> for either T).
// src and dst must not overlap.
template <typename From, typename To>
Status convert(const From* src, To* dst, int64_t n, cudaStream_t stream);

// out[tokens, H] = rows ids[t] of table[V, H], the table in its file dtype (F32, BF16 or F16), as T
// (cpu::embedding_forward; the CPU op calls the row count T). ids: int32 device [tokens]; as on
// the CPU, the ids are checked against V by the caller: the kernel does not know V.
template <typename T>
Status embedding_forward(const int32_t* ids, int64_t tokens, const void* table, cpu::WeightType type, int64_t H,
                         T* out, cudaStream_t stream);

}  // namespace attune::cuda
