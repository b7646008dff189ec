// A compute backend: one implementation per kind of device, behind one interface (ggml-style), so
// model code calls ops without knowing where they run. Only `cpu` exists so far; `cuda` joins
// with its first ops and must then match `cpu` op by op (the same signatures, the same results
// within each dtype's tolerance). Buffers passed to an op live in that backend's memory; frozen
// weights are passed as they are stored (F32, BF16 or F16).
#pragma once

#include <cstdint>
#include <memory>

#include "attune/status.h"
#include "cpu/gemm.h"

namespace attune {

using WeightType = cpu::WeightType;

struct Backend {
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // c[m,n] = a[m,k] · b[k,n]; row-major fp32, c is overwritten.
  virtual Status matmul_f32(const float* a, const float* b, float* c, int m, int k, int n) = 0;

  // --- Forward ops of the Llama-family decoder (shapes as in cpu/ops.h and cpu/gemm.h).
  // y[T,out] = x[T,in] · W[out,in]ᵀ (+ bias[out])
  virtual void linear(const float* x, const void* w, WeightType type, const float* bias, float* y, int64_t T, int64_t in,
                      int64_t out) = 0;
  // out[T,H] = rows ids[t] of table[V,H]
  virtual void embedding(const int32_t* ids, int64_t T, const void* table, WeightType type, int64_t H, float* out) = 0;
  // out[T,H] = x · rsqrt(mean(x²) + eps) · weight; rstd[T] kept when not null
  virtual void rmsnorm(const float* x, const float* weight, float eps, int64_t T, int64_t H, float* out, float* rstd) = 0;
  // x[T, heads, dim] rotated in place at positions[t] with tables [positions, dim/2]
  virtual void rope(float* x, const int32_t* positions, int64_t T, int64_t heads, int64_t dim, const float* cos_table,
                    const float* sin_table) = 0;
  // causal GQA: q, out [T, heads, dim]; k, v [past+T, kv_heads, dim]
  virtual void attention(const float* q, const float* k, const float* v, int64_t T, int64_t past, int64_t heads,
                         int64_t kv_heads, int64_t dim, float* out) = 0;
  // out[n] = silu(gate[n]) · up[n]
  virtual void swiglu(const float* gate, const float* up, int64_t n, float* out) = 0;
  // y[T,out] = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ: a linear with an unmerged LoRA adapter (A [r,in], B [out,r]).
  virtual void lora_linear(const float* x, const void* w, WeightType type, const float* bias, const float* A,
                           const float* B, int64_t rank, float scaling, float* y, int64_t T, int64_t in, int64_t out) = 0;
  // y = (m/n) ⊙ (x·Wᵀ + s·(x·Aᵀ)·Bᵀ) + b: DoRA with magnitude m [out] and the weight norm n [out].
  virtual void dora_linear(const float* x, const void* w, WeightType type, const float* bias, const float* A,
                           const float* B, int64_t rank, float scaling, const float* magnitude, const float* norm,
                           float* y, int64_t T, int64_t in, int64_t out) = 0;
  // x[n] += y[n]
  virtual void add(float* x, const float* y, int64_t n) = 0;
  // Σ −log softmax(logits[t])[targets[t]] over targets ≥ 0; adds their count to *count
  virtual double cross_entropy_sum(const float* logits, const int32_t* targets, int64_t T, int64_t V, int64_t* count) = 0;
};

// The readable, multithreaded reference backend; `threads` >= 1.
std::unique_ptr<Backend> make_cpu_backend(unsigned threads);

}  // namespace attune
