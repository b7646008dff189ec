// The CPU backend's model ops (fp32), llm.c style: plain functions, the shapes in the first
// comment, every buffer passed in. Forward ops save what their backward will need (e.g. RMSNorm's
// reciprocal std). Linear layers live in gemm.h.
#pragma once

#include <cstdint>

#include "cpu/gemm.h"
#include "cpu/thread_pool.h"

namespace attune::cpu {

// out[T,H] = rows `ids[t]` of table[V,H] (F32/BF16/F16 as stored), as fp32. ids are checked
// against V by the caller.
void embedding_forward(ThreadPool& pool, const int32_t* ids, int64_t T, const void* table, WeightType type, int64_t H,
                       float* out);

// out[T,H] = x[T,H] · rsqrt(mean(x²) + eps) · weight[H]; rstd[T] (may be null) keeps the
// reciprocal std for the backward. Hugging Face computes the norm in fp32 too.
void rmsnorm_forward(ThreadPool& pool, const float* x, const float* weight, float eps, int64_t T, int64_t H, float* out,
                     float* rstd);

// x[T, heads, dim] rotated in place, rotate-half convention: for i < dim/2,
// (a, b) = (x[i], x[i + dim/2]) → (a·cos − b·sin, b·cos + a·sin), with cos/sin from the tables
// [max_positions, dim/2] at row positions[t].
void rope_forward(ThreadPool& pool, float* x, const int32_t* positions, int64_t T, int64_t heads, int64_t dim,
                  const float* cos_table, const float* sin_table);

// Causal grouped-query attention against a cache.
// q[T, heads, dim]; k, v: [S, kv_heads, dim] where rows [0, past + T) are filled and query t sits
// at position past + t (so it sees keys 0..past+t). out[T, heads, dim]. Softmax in fp32 with the
// scale 1/√dim, as the reference's eager attention.
void attention_forward(ThreadPool& pool, const float* q, const float* k, const float* v, int64_t T, int64_t past,
                       int64_t heads, int64_t kv_heads, int64_t dim, float* out);

// out[T,I] = silu(gate[T,I]) · up[T,I]
void swiglu_forward(ThreadPool& pool, const float* gate, const float* up, int64_t count, float* out);

// x[n] += y[n]
void add_inplace(ThreadPool& pool, float* x, const float* y, int64_t n);

// Cross-entropy of logits[T,V] (fp32) against targets[T] (−100 = ignored): returns the sum of
// −log softmax(logits[t])[targets[t]] over the counted positions and adds their count to *count.
double cross_entropy_sum(ThreadPool& pool, const float* logits, const int32_t* targets, int64_t T, int64_t V,
                         int64_t* count);

}  // namespace attune::cpu
