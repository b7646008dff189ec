#include "train/adamw.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

namespace attune::train {

namespace {


}  // namespace

AdamWStepScalars adamw_step_scalars(const AdamWOptions& o, double lr, int64_t step) {
  AdamWStepScalars s;
  s.decay = o.weight_decay != 0;
  s.decay_factor = static_cast<float>(1 - lr * o.weight_decay);
  s.w1 = static_cast<float>(1 - o.beta1);
  s.w1_small = std::fabs(s.w1) < 0.5f;
  s.beta2 = static_cast<float>(o.beta2);
  s.w2 = static_cast<float>(1 - o.beta2);
  // Python: step = step_t.item(); bias_correction1 = 1 - beta1 ** step; ...
  const double t = static_cast<double>(static_cast<float>(step));
  const double bias_correction1 = 1 - std::pow(o.beta1, t);
  const double bias_correction2 = 1 - std::pow(o.beta2, t);
  const double step_size = lr / bias_correction1;
  s.bc2_sqrt = static_cast<float>(std::pow(bias_correction2, 0.5));
  s.eps = static_cast<float>(o.eps);
  s.neg_step_size = static_cast<float>(-step_size);
  return s;
}

namespace {

void update(const AdamWStepScalars& s, float* param, const float* grad, float* m, float* v, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    float p = param[i];
    if (s.decay) p = p * s.decay_factor;
    const float g = grad[i];
    const float diff = g - m[i];
    const float mi = s.w1_small ? std::fma(s.w1, diff, m[i]) : std::fma(s.w1 - 1.0f, diff, g);
    const float vi = std::fma(s.w2 * g, g, v[i] * s.beta2);
    const float denom = std::sqrt(vi) / s.bc2_sqrt + s.eps;
    param[i] = p + (s.neg_step_size * mi) / denom;
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

Status adamw_step(const AdamWOptions& options, double lr, float* param, const float* grad, int64_t n,
                  AdamWState* state, ThreadPool* pool) {
  if (n < 0) return Status::invalid_argument("AdamW: a parameter cannot have a negative size");
  const size_t size = static_cast<size_t>(n);
  if (state->exp_avg.empty() && state->exp_avg_sq.empty()) {
    state->exp_avg.assign(size, 0.0f);
    state->exp_avg_sq.assign(size, 0.0f);
  }
  if (state->exp_avg.size() != size || state->exp_avg_sq.size() != size) {
    return Status::invalid_argument("AdamW: the optimizer state holds " + std::to_string(state->exp_avg.size()) +
                                    " values for a parameter of " + std::to_string(n));
  }
  state->step += 1;
  const AdamWStepScalars s = adamw_step_scalars(options, lr, state->step);
  float* m = state->exp_avg.data();
  float* v = state->exp_avg_sq.data();
  // Elementwise: splitting the range cannot change a value.
  constexpr int64_t kMinPerThread = 1 << 14;
  if (pool != nullptr && pool->size() > 1 && n >= 2 * kMinPerThread) {
    const int64_t chunks = std::min<int64_t>(pool->size(), n / kMinPerThread);
    const int64_t per_chunk = (n + chunks - 1) / chunks;
    pool->run(chunks, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        update(s, param, grad, m, v, c * per_chunk, std::min(n, (c + 1) * per_chunk));
      }
    });
  } else {
    update(s, param, grad, m, v, 0, n);
  }
  return {};
}

size_t AdamW::add_param(int64_t numel) {
  numels_.push_back(numel);
  AdamWState state;
  state.exp_avg.assign(static_cast<size_t>(numel), 0.0f);
  state.exp_avg_sq.assign(static_cast<size_t>(numel), 0.0f);
  states_.push_back(std::move(state));
  return states_.size() - 1;
}

Status AdamW::step(const std::vector<ParamSlot>& slots, ThreadPool* pool) {
  if (slots.size() != states_.size()) {
    return Status::invalid_argument("AdamW: step() got " + std::to_string(slots.size()) + " parameters, registered " +
                                    std::to_string(states_.size()));
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].numel != numels_[i]) {
      return Status::invalid_argument("AdamW: parameter " + std::to_string(i) + " has " +
                                      std::to_string(slots[i].numel) + " values, registered with " +
                                      std::to_string(numels_[i]));
    }
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].grad == nullptr) continue;
    if (Status status = adamw_step(options_, lr_, slots[i].param, slots[i].grad, slots[i].numel, &states_[i], pool);
        !status.ok()) {
      return status;
    }
  }
  return {};
}

Status AdamW::restore_state(size_t index, AdamWState state) {
  if (index >= states_.size()) {
    return Status::invalid_argument("AdamW: no parameter " + std::to_string(index) + " to restore the state of");
  }
  const size_t numel = static_cast<size_t>(numels_[index]);
  if (state.exp_avg.size() != numel || state.exp_avg_sq.size() != numel || state.step < 0) {
    return Status::invalid_argument("AdamW: the saved state of parameter " + std::to_string(index) + " holds " +
                                    std::to_string(state.exp_avg.size()) + " and " +
                                    std::to_string(state.exp_avg_sq.size()) + " values for a parameter of " +
                                    std::to_string(numel));
  }
  states_[index] = std::move(state);
  return {};
}

}  // namespace attune::train
