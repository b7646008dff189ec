#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/ops_backward.h"

namespace attune::cpu {

double cross_entropy_forward_backward(ThreadPool& pool, const float* logits, const int32_t* targets, int64_t T,
                                      int64_t V, float scale, float* dlogits, int64_t* count) {
  // logits, dlogits: [T, V] (may be the same buffer); targets: [T], negative = ignored.
  std::vector<double> losses(static_cast<size_t>(T), 0.0);
  pool.run(T, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* row = logits + t * V;
      float* d = dlogits + t * V;
      const int32_t target = targets[t];
      if (target < 0) {
        std::fill(d, d + V, 0.0f);
        continue;
      }
      // Read everything the loss needs before the row is overwritten (dlogits may be logits).
      const float max_logit = *std::max_element(row, row + V);
      const float target_logit = row[target];
      double sum = 0;  // in double, as cross_entropy_sum: V is up to ~256k
      for (int64_t i = 0; i < V; ++i) {
        const float e = std::exp(row[i] - max_logit);
        sum += e;
        d[i] = e;
      }
      losses[static_cast<size_t>(t)] = std::log(sum) + max_logit - target_logit;
      const float factor = static_cast<float>(static_cast<double>(scale) / sum);
      for (int64_t i = 0; i < V; ++i) d[i] *= factor;
      d[target] -= scale;
    }
  });
  double total = 0;
  for (int64_t t = 0; t < T; ++t) {
    if (targets[t] < 0) continue;
    total += losses[static_cast<size_t>(t)];
    if (count != nullptr) ++*count;
  }
  return total;
}

}  // namespace attune::cpu
