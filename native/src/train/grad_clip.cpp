#include "train/grad_clip.h"

#include <algorithm>
#include <cmath>

namespace attune::train {

namespace {

void per_tensor_norms(const std::vector<GradSpan>& grads, ThreadPool* pool, float* norms) {
  const int64_t count = static_cast<int64_t>(grads.size());
  auto work = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) norms[i] = l2_norm(grads[static_cast<size_t>(i)].data, grads[static_cast<size_t>(i)].numel);
  };
  if (pool != nullptr && pool->size() > 1 && count > 1) {
    pool->run(count, work);
  } else {
    work(0, count);
  }
}

}  // namespace

float l2_norm(const float* x, int64_t n) {
  constexpr int64_t kLanes = 8;
  float lanes[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= n; d += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) {
      const float square = x[d + l] * x[d + l];
      lanes[l] = lanes[l] + square;
    }
  }
  float sum = lanes[0];
  for (int64_t l = 1; l < kLanes; ++l) sum = sum + lanes[l];
  // The tail loop as torch's compiler emitted it: one 4-wide step (squares rounded, added in
  // order), then fused multiply-adds.
  if (d + 4 <= n) {
    for (int64_t k = 0; k < 4; ++k) {
      const float square = x[d + k] * x[d + k];
      sum = sum + square;
    }
    d += 4;
  }
  for (; d < n; ++d) sum = std::fma(x[d], x[d], sum);
  return std::sqrt(sum);
}

float total_grad_norm(const std::vector<GradSpan>& grads, ThreadPool* pool) {
  if (grads.empty()) return 0.0f;
  std::vector<float> norms(grads.size());
  per_tensor_norms(grads, pool, norms.data());
  return l2_norm(norms.data(), static_cast<int64_t>(norms.size()));
}

float clip_grad_norm(const std::vector<GradSpan>& grads, double max_norm, ThreadPool* pool) {
  if (grads.empty()) return 0.0f;
  const float total = total_grad_norm(grads, pool);
  const float shifted = total + static_cast<float>(1e-6);
  const float reciprocal = 1.0f / shifted;
  const float clip_coef = reciprocal * static_cast<float>(max_norm);
  // torch.clamp(x, max=1.0) keeps a NaN (std::min(NaN, 1) returns its first argument).
  const float coef = std::min(clip_coef, 1.0f);
  for (const GradSpan& g : grads) {
    for (int64_t i = 0; i < g.numel; ++i) g.data[i] = g.data[i] * coef;
  }
  return total;
}

}  // namespace attune::train
