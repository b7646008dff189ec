// The optimizer step on the GPU: AdamW on fp32 parameters (train/adamw.h) and gradient-norm
// clipping (train/grad_clip.h), for adapters trained on the GPU.
//
//   - adamw_step: bit for bit the CPU's train::adamw_step (itself torch.optim.AdamW on the CPU):
//     the same fp32 scalars, computed on the host the same way, and every per-element operation
//     rounded as the CPU rounds it (explicit __fmul_rn/__fadd_rn/__fmaf_rn/__fdiv_rn/__fsqrt_rn, so
//     nvcc fuses nothing the CPU does not fuse). Nothing in it depends on the order of a sum.
//   - grad_sum_squares + grad_clip_coef + grad_scale: clip_grad_norm_. The squared norm is summed
//     in double in a fixed order (deterministic, and closer to the exact norm than torch's fp32
//     lanes): the norm is NOT bit-identical to train::total_grad_norm's, which reproduces torch's
//     fp32 summation order; they agree within that fp32 sum's rounding error (~1e-7 relative for
//     the ~1e5-value tensors of adapters, growing as √n for much larger tensors). From the norm on,
//     the coefficient and the scaling are the CPU's operations exactly: given the same norm, the
//     same coefficient and the same scaled gradients, bit for bit.
//
// All pointers are device pointers unless said otherwise. Negative sizes and null pointers with
// work to do are Status::invalid_argument. Each launcher only enqueues work on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "attune/status.h"

namespace attune::train {
struct AdamWOptions;  // train/adamw.h
}  // namespace attune::train

namespace attune::cuda {

// One AdamW step on param[n] with grad[n] and the state exp_avg[n] (m), exp_avg_sq[n] (v), as
// train::adamw_step does it (see train/adamw.h for the formulas): `step` is the step being taken,
// counting from 1 (the CPU's AdamWState::step after its increment), `lr` this step's learning rate
// (options.lr is not used). The state must be zero before the first step (torch's lazy state:
// cudaMemset the buffers to 0). param, exp_avg and exp_avg_sq are updated in place; grad may not
// alias any of them. Bit-identical to the CPU for every input, subnormals included (the kernels are
// built without flush-to-zero).
Status adamw_step(const train::AdamWOptions& options, double lr, int64_t step, float* param, const float* grad,
                  float* exp_avg, float* exp_avg_sq, int64_t n, cudaStream_t stream);

// A gradient tensor in device memory (fp32, contiguous), for the clipping functions.
struct DeviceGrad {
  float* data = nullptr;
  int64_t numel = 0;
};

// The doubles of workspace grad_sum_squares needs for `count` tensors (a fixed number of partial
// sums per tensor).
int64_t grad_sum_squares_workspace(int64_t count);

// *sum_squares (one device double) = Σ over the tensors of Σ x², each square exact in double and
// summed in double in an order fixed by the sizes alone (the same bits on every run). `grads` is a
// HOST array of `count` descriptors of device tensors (numel 0 allowed); `workspace` is a device
// buffer of grad_sum_squares_workspace(count) doubles. count == 0 writes 0. The norm is
// sqrt(*sum_squares): the total_norm of clip_grad_norm_ (torch's norm of the per-tensor norms
// squares back to this sum).
Status grad_sum_squares(const DeviceGrad* grads, int64_t count, double* workspace, double* sum_squares,
                        cudaStream_t stream);

// From *sum_squares, one thread computes, exactly as train::clip_grad_norm does from its norm:
//   *total_norm = fl32(sqrt(*sum_squares))            (the value clip_grad_norm returns)
//   *coef = min(fl32(fl32(1 / fl32(total + fl32(1e-6))) · fl32(max_norm)), 1)   (NaN stays NaN)
// total_norm may be null (not wanted); coef may not. Both are device floats.
Status grad_clip_coef(const double* sum_squares, double max_norm, float* total_norm, float* coef,
                      cudaStream_t stream);

// grads[i] *= *coef for every tensor (fp32 products, as the CPU's g = g · coef), coef a device
// float (from grad_clip_coef, so that no host round trip is needed). `grads` is a HOST array.
Status grad_scale(const DeviceGrad* grads, int64_t count, const float* coef, cudaStream_t stream);

}  // namespace attune::cuda
