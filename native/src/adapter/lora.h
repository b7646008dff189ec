// LoRA adapter layers on a frozen Linear (peft `tuners/lora/layer.py`), forward and backward,
// llm.c style: explicit functions, fp32 adapter weights and gradients. Activations and the
// [T,in] / [T,out] scratch are passed in; the small temporaries with r columns ([T,r], [out,r],
// [r,r]) are allocated inside. The frozen weight stays in its file dtype (F32/BF16/F16): the
// layers read it through cpu::linear / cpu::linear_backward_input, and the norms and merges
// convert it to fp32 a block of rows at a time. Verified by finite differences in
// tests/test_adapter_layers.cpp.
//
// Shapes (Hugging Face layout): x [T,in], y [T,out], W [out,in], bias [out], A [r,in], B [out,r].
#pragma once

#include <cstdint>

#include "cpu/gemm.h"
#include "cpu/thread_pool.h"

namespace attune::adapter {

using cpu::ThreadPool;
using cpu::WeightType;

// A frozen Linear layer as stored: W[out,in] in its file dtype, optional fp32 bias[out].
struct FrozenLinear {
  const void* weight = nullptr;
  WeightType type = WeightType::F32;
  const float* bias = nullptr;  // may be null
  int64_t in = 0;
  int64_t out = 0;
};

// The trainable factors of one adapter (fp32): A[r,in], B[out,r], and the scaling s.
struct LoraParams {
  const float* A = nullptr;
  const float* B = nullptr;
  int64_t rank = 0;
  float scaling = 1.0f;
};

// Gradient buffers of A and B (fp32, same shapes): the backward adds into them (+=).
struct LoraGrads {
  float* dA = nullptr;
  float* dB = nullptr;
};

// peft's scaling: alpha/r, or alpha/√r with rsLoRA (computed in double, as Python does, then fp32).
float lora_scaling(double alpha, int64_t rank, bool use_rslora);

// mask[n] for inverted dropout with probability p, as torch.nn.Dropout in training: each element
// is kept with probability 1 − p and then scaled by 1/(1 − p), else 0 (p = 0: all ones; p ≥ 1: all
// zeros). Counter-based (element i depends only on seed and offset + i), so the same seed gives
// the same mask on any number of threads and the backward can regenerate the forward's mask
// instead of keeping it. The stream is Attune's own (torch's Philox stream is not reproduced).
void dropout_mask(ThreadPool& pool, uint64_t seed, uint64_t offset, float p, int64_t n, float* mask);

// y[T,out] = x·Wᵀ + b + s·(x_d·Aᵀ)·Bᵀ, x_d = x ⊙ mask, as peft's
// `result = base_layer(x) + lora_B(lora_A(dropout(x))) * scaling`: the dropout only on the LoRA
// branch. mask [T,in] from dropout_mask, or null when dropout is off (p = 0, or evaluation).
// Saves u[T,r] = x_d·Aᵀ for the backward. xd[T,in] is scratch, used only when mask is not null.
void lora_forward(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, const float* x, const float* mask,
                  int64_t T, float* y, float* u, float* xd);

// The backward of lora_forward, given dy[T,out], the forward's x, mask and saved u:
//   du = s·dy·B [T,r];  dB += s·dyᵀ·u;  dA += duᵀ·x_d;
//   dx (=, or += when accumulate_dx) Wᵀ·dy + mask ⊙ (du·A)     (dx may be null: not computed)
// xd[T,in] is scratch, used only when mask is not null.
void lora_backward(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, const float* dy, const float* x,
                   const float* mask, const float* u, int64_t T, float* dx, bool accumulate_dx, const LoraGrads& grads,
                   float* xd);

// merged[out,in] (fp32) = W + s·B·A: peft's merge (`W += scaling · B@A`). The bias is unchanged.
void lora_merge(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, float* merged);

namespace detail {
// x_d[T·in] = x ⊙ mask.
void apply_mask(ThreadPool& pool, const float* x, const float* mask, int64_t n, float* xd);
// dst[out,in] (fp32) = W, converted from its file dtype.
void frozen_to_f32(ThreadPool& pool, const FrozenLinear& base, float* dst);
// dst[rows,in] (fp32) = rows [row0, row0 + rows) of W, on the calling thread.
void frozen_rows_to_f32(const FrozenLinear& base, int64_t row0, int64_t rows, float* dst);
}  // namespace detail

}  // namespace attune::adapter
