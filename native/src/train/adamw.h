// AdamW exactly as torch.optim.AdamW computes it for fp32 parameters on the CPU (its default
// single-tensor implementation, foreach=False: torch only uses foreach for CUDA tensors), step by
// step and operation by operation, so Attune's adapters follow the same trajectory as a torch run:
//
//   t += 1                                       (t starts at 0: the first step is t = 1)
//   if weight_decay != 0: p = p · fl32(1 − lr·weight_decay)          (decoupled weight decay)
//   m = m.lerp(g, fl32(1 − β1))    = fma(w, g − m, m)  for w < 0.5    (torch's lerp, fused on
//                                    fma(w − 1, g − m, g) otherwise   x86 AVX2/AVX-512 and ARM)
//   v = fma(fl32(1 − β2)·g, g, v · fl32(β2))                          (mul_ then addcmul_, fused)
//   bc1 = 1 − β1^t, bc2 = 1 − β2^t, step_size = lr / bc1, bc2_sqrt = bc2^0.5   (all in double,
//                                                                   as Python computes them)
//   denom = sqrt(v) / fl32(bc2_sqrt) + fl32(eps)
//   p = p + (fl32(−step_size) · m) / denom                          (addcdiv_)
//
// Scalars computed in double are rounded to fp32 where torch turns them into fp32 scalars. Checked
// against torch 2.13 on x86-64: m and v are bitwise equal; p differs only where torch's sqrt does
// (torch's CPU sqrt is MKL's vsSqrt in high-accuracy mode, which is off by one ulp for about a
// fifth of fp32 inputs; Attune's sqrt is IEEE's), i.e. within about 1e-7 relative. Builds of
// torch without MKL (ARM macOS) use an exact sqrt and then agree bitwise.
#pragma once

#include <cstdint>
#include <vector>

#include "attune/status.h"
#include "cpu/thread_pool.h"

namespace attune::train {

using cpu::ThreadPool;

// torch.optim.AdamW's defaults (note weight_decay 0.01; Attune's CLI passes its own 0).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

// The optimizer state of one parameter tensor, torch's state[p]: {"step", "exp_avg",
// "exp_avg_sq"}. Plain buffers, for checkpoints: save and restore them as they are.
struct AdamWState {
  int64_t step = 0;               // steps taken (torch keeps it as an fp32 tensor; exact to 2^24)
  std::vector<float> exp_avg;     // m
  std::vector<float> exp_avg_sq;  // v
};

// The fp32 scalars of one step, computed from the Python-side doubles as torch does; shared by
// the CPU update and the GPU kernel (cuda/ops_optimizer.cu) so both round them alike.
struct AdamWStepScalars {
  bool decay = false;
  float decay_factor = 1.0f;  // fl32(1 − lr·weight_decay)
  float w1 = 0.0f;            // lerp weight fl32(1 − β1)
  bool w1_small = true;       // torch's is_lerp_weight_small: |w| < 0.5
  float beta2 = 0.0f;         // fl32(β2)
  float w2 = 0.0f;            // fl32(1 − β2)
  float bc2_sqrt = 1.0f;      // fl32(bc2^0.5)
  float eps = 0.0f;           // fl32(eps)
  float neg_step_size = 0.0f;  // fl32(−lr / bc1)
};
AdamWStepScalars adamw_step_scalars(const AdamWOptions& options, double lr, int64_t step);

// One AdamW step on one parameter tensor param[n] with its gradient grad[n], at learning rate lr
// (this step's: schedulers change it between steps, options.lr is not used). Zero-initialises
// the state when its buffers are empty (torch's lazy state), else they must hold n values.
// `pool` (may be null) splits the elements; the result does not depend on it.
Status adamw_step(const AdamWOptions& options, double lr, float* param, const float* grad, int64_t n,
                  AdamWState* state, ThreadPool* pool = nullptr);

// A parameter tensor and its gradient, for AdamW::step.
struct ParamSlot {
  float* param = nullptr;
  const float* grad = nullptr;  // null: no gradient this step; skipped, as torch skips p.grad None
  int64_t numel = 0;
};

// AdamW over a fixed list of parameter tensors (one torch param group).
class AdamW {
 public:
  explicit AdamW(const AdamWOptions& options = AdamWOptions()) : options_(options), lr_(options.lr) {}

  const AdamWOptions& options() const { return options_; }
  // The learning rate of the next step (param_group["lr"]; a scheduler sets it before each step).
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }

  // Registers the next parameter tensor of `numel` values; returns its index. The order is the
  // order of step()'s slots and of the saved state.
  size_t add_param(int64_t numel);
  size_t num_params() const { return states_.size(); }

  // One step over all parameters: slots[i] is parameter i (sizes must match add_param's).
  Status step(const std::vector<ParamSlot>& slots, ThreadPool* pool = nullptr);

  const AdamWState& state(size_t index) const { return states_[index]; }
  AdamWState& state(size_t index) { return states_[index]; }
  // Replaces parameter `index`'s state (a checkpoint's): the buffers must hold its numel values.
  Status restore_state(size_t index, AdamWState state);

 private:
  AdamWOptions options_;
  double lr_;
  std::vector<int64_t> numels_;
  std::vector<AdamWState> states_;
};

}  // namespace attune::train
