// The CPU engine's matrix products: Linear layers forward and backward, and a general fp32 GEMM.
// All matrices are row-major with fp32 accumulation. Large products run a cache-blocked, packed
// GEMM with a register-tiled SIMD micro-kernel; products with one to a few rows (decode) stream
// the weights once instead, since they are memory-bound. The SIMD level is picked at run time.
#pragma once

#include <cstdint>

#include "cpu/thread_pool.h"

namespace attune::cpu {

// The dtype of a weight matrix as stored in its file. bf16 and f16 are converted to fp32 a block
// at a time while packing, never into a full fp32 copy.
enum class WeightType { F32, BF16, F16 };

// y[T,out] = x[T,in] · W[out,in]ᵀ (+ bias[out]) (+= when accumulate). W is in its file dtype, in
// Hugging Face Linear layout; bias may be null.
void linear(ThreadPool& pool, const float* x, const void* w, WeightType wtype, const float* bias,
            float* y, int64_t T, int64_t in, int64_t out, bool accumulate = false);

// dx[T,in] (+)= dy[T,out] · W[out,in]
void linear_backward_input(ThreadPool& pool, const float* dy, const void* w, WeightType wtype, float* dx,
                           int64_t T, int64_t in, int64_t out, bool accumulate);

// dW[out,in] (+)= dy[T,out]ᵀ · x[T,in]   (fp32 dW, for adapter weights)
void linear_backward_weight(ThreadPool& pool, const float* dy, const float* x, float* dw, int64_t T, int64_t in,
                            int64_t out, bool accumulate);

// C[M,N] = alpha · op(A)·op(B) + beta · C, op(X) = Xᵀ when trans_x; op(A) is [M,K], op(B) [K,N].
// beta == 0 overwrites C without reading it (NaNs in C do not survive).
void gemm_f32(ThreadPool& pool, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The instruction-set level of the kernels. kAuto picks the best this CPU supports.
enum class SimdPath { kAuto, kGeneric, kAvx2, kAvx512 };

// For tests and benchmarks: makes every later call use `path`. Returns false, changing nothing,
// when this build or CPU cannot run it. Not thread-safe against concurrent products.
bool force_simd_path(SimdPath path);
// The path in use now ("generic", "avx2", "avx512").
const char* simd_path_name();

}  // namespace attune::cpu
