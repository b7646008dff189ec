// DoRA adapter layers (peft `tuners/lora/dora.py`, Liu et al. 2024) on a frozen Linear, forward and
// backward, on top of lora.h's types. With g = m/n per output row, n = ‖W + s·B·A‖₂ over the input
// dimension (treated as a constant: no gradient flows through n, as peft's `weight_norm.detach()`):
//
//   y = base(x) + (g − 1)⊙(W·x_d) + g⊙s·B·A·x_d        (peft's DoraLinearLayer.forward)
//
// where base(x) = W·x + b is the frozen layer's own output. x_d = x when dropout is off (peft then
// reuses base(x) − b as W·x, so y = g⊙(W·x + s·B·A·x) + b); with dropout on, x_d = dropout(x) and
// peft recomputes W·x_d (`base_result = None` → `F.linear(x_d, W)`), so the frozen path keeps the
// undropped W·x and only the (g − 1) correction and the LoRA term see the dropped input.
//
// The caller computes n once per step (after each optimizer update) with dora_weight_norm and
// passes it to the forward and backward of that step. Shapes: as lora.h; magnitude m, n: [out].
#pragma once

#include <cstdint>

#include "adapter/lora.h"

namespace attune::adapter {

// norm_sq[out] = ‖W_o‖² per row (summed in double): cache it per layer, W is frozen.
void frozen_row_norms_sq(ThreadPool& pool, const FrozenLinear& base, float* norm_sq);

// norm[out] = ‖W + s·B·A‖₂ per row, in the factored form that never builds B·A:
//   ‖W_o‖² + 2s·⟨W_o, (B·A)_o⟩ + s²·‖(B·A)_o‖²,
//   ⟨W_o, (B·A)_o⟩ = Σ_k (W·Aᵀ)_{o,k}·B_{o,k},  ‖(B·A)_o‖² = B_o·(A·Aᵀ)·B_oᵀ,
// with w_norm_sq from frozen_row_norms_sq. Costs one [r,in]×[in,out] product (W read once).
void dora_weight_norm(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, const float* w_norm_sq,
                      float* norm);

// norm[out] = ‖W + s·B·A‖₂ per row computed directly, as peft's get_weight_norm
// (`torch.linalg.norm(W + scaling·(B@A), dim=1)`): O(out·in·r). For the magnitude's
// initialisation (peft sets m = this norm when the adapter is created, i.e. ‖W‖ with B = 0), merges
// and tests.
void dora_weight_norm_direct(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, float* norm);

// The forward above. magnitude, norm: [out]; mask [T,in] from dropout_mask or null (dropout off).
// Writes y[T,out] and keeps for the backward u[T,r] = x_d·Aᵀ and inner[T,out] = W·x_d + s·B·u
// (the direction before the magnitude scaling, needed for dm). xd[T,in] is scratch, used only when
// mask is not null. Computed as peft does: y = W·x + b, then y += (g − 1)⊙W·x_d and
// y += g⊙s·B·u (with W·x_d = y − b, no second product, when mask is null).
void dora_forward(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, const float* magnitude,
                  const float* norm, const float* x, const float* mask, int64_t T, float* y, float* u, float* inner,
                  float* xd);

// The backward of dora_forward (n constant), given dy[T,out], the forward's x, mask, u and inner:
//   dm    += Σ_t dy ⊙ inner / n                       [out]
//   du     = s·dy·(g⊙B) [T,r];  dB += s·g⊙(dyᵀ·u);  dA += duᵀ·x_d
//   dx (=, or += when accumulate_dx):
//     no dropout:  Wᵀ·(g⊙dy) + du·A
//     dropout:     Wᵀ·dy + mask ⊙ (Wᵀ·((g − 1)⊙dy) + du·A)
// dx may be null (not computed). `inner` is consumed: used as scratch once dm is summed.
// xd[T,in] is scratch, used only when mask is not null.
void dora_backward(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, const float* magnitude,
                   const float* norm, const float* dy, const float* x, const float* mask, const float* u, float* inner,
                   int64_t T, float* dx, bool accumulate_dx, const LoraGrads& grads, float* dmagnitude, float* xd);

// merged[out,in] (fp32) = (m/n)[:,None] ⊙ (W + s·B·A), n = ‖W + s·B·A‖ per row computed from the
// merged rows themselves: peft's merge. The bias is unchanged.
void dora_merge(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, const float* magnitude,
                float* merged);

}  // namespace attune::adapter
