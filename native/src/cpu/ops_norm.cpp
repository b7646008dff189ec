#include <cmath>

#include "cpu/ops.h"

namespace attune::cpu {

void rmsnorm_forward(ThreadPool& pool, const float* x, const float* weight, float eps, int64_t T, int64_t H, float* out,
                     float* rstd) {
  // x, out: [T, H]; weight: [H]; rstd: [T] or null.
  pool.run(T, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* row = x + t * H;
      // Sum in double: H is up to ~16k and the mean of squares must not lose the small terms.
      double sum = 0;
      for (int64_t i = 0; i < H; ++i) sum += static_cast<double>(row[i]) * row[i];
      const float r = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(H)) + eps);
      if (rstd) rstd[t] = r;
      float* o = out + t * H;
      for (int64_t i = 0; i < H; ++i) o[i] = (row[i] * r) * weight[i];
    }
  });
}

}  // namespace attune::cpu
