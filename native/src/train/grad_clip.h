// Gradient-norm clipping exactly as torch.nn.utils.clip_grad_norm_(params, max_norm) (norm_type 2,
// foreach=None, error_if_nonfinite=False) computes it for fp32 gradients on the CPU:
//
//   norms[i]   = torch.linalg.vector_norm(grad_i)          (one fp32 norm per tensor)
//   total      = torch.linalg.vector_norm(stack(norms))    (the norm of the norms)
//   clip_coef  = max_norm / (total + 1e-6)   computed as Tensor.__rtruediv__ does:
//                fl32(fl32(1 / fl32(total + fl32(1e-6))) · fl32(max_norm))
//   coef       = min(clip_coef, 1.0)   (torch.clamp(max=1.0); NaN stays NaN)
//   grad_i    *= coef                   (always: multiplying by 1.0 changes nothing)
//   returns total (before clipping)
//
// vector_norm is reproduced as torch 2.13's x86 build runs it (ReduceOpsKernel's fast path for a
// contiguous fp32 reduction, as compiled): 8 fp32 lanes accumulate x·x with a separate multiply
// and add, the lanes are summed left to right, then the n mod 8 tail is added in order: the first
// 4 tail values (when there are 4) as rounded squares, the rest with a fused multiply-add; finally
// an IEEE sqrt. Checked bitwise against torch 2.13 (AVX2 and AVX-512 kernels) for sizes 1..4099
// and for whole clip_grad_norm_ calls. Note that max_norm 0 zeroes the gradients, as in torch:
// a caller that means "no clipping" calls total_grad_norm instead.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/thread_pool.h"

namespace attune::train {

using cpu::ThreadPool;

// One gradient tensor (fp32, contiguous).
struct GradSpan {
  float* data = nullptr;
  int64_t numel = 0;
};

// torch.linalg.vector_norm(x) for x[n] fp32 (0 for n = 0).
float l2_norm(const float* x, int64_t n);

// The total norm clip_grad_norm_ returns, without changing the gradients (0 for no tensors).
// `pool` (may be null) computes the per-tensor norms in parallel; the result does not depend on it.
float total_grad_norm(const std::vector<GradSpan>& grads, ThreadPool* pool = nullptr);

// clip_grad_norm_: scales the gradients in place by min(max_norm / (total + 1e-6), 1) and returns
// the total norm before clipping.
float clip_grad_norm(const std::vector<GradSpan>& grads, double max_norm, ThreadPool* pool = nullptr);

}  // namespace attune::train
