#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/ops.h"

namespace attune::cpu {

double cross_entropy_sum(ThreadPool& pool, const float* logits, const int32_t* targets, int64_t T, int64_t V,
                         int64_t* count) {
  // logits: [T, V]; targets: [T], −100 = not a target.
  std::vector<double> losses(static_cast<size_t>(T), 0.0);
  pool.run(T, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      if (targets[t] < 0) continue;
      const float* row = logits + t * V;
      const float max_logit = *std::max_element(row, row + V);
      double sum = 0;
      for (int64_t i = 0; i < V; ++i) sum += std::exp(static_cast<double>(row[i] - max_logit));
      losses[static_cast<size_t>(t)] = std::log(sum) + max_logit - row[targets[t]];
    }
  });
  double total = 0;
  for (int64_t t = 0; t < T; ++t) {
    if (targets[t] < 0) continue;
    total += losses[static_cast<size_t>(t)];
    ++*count;
  }
  return total;
}

}  // namespace attune::cpu
