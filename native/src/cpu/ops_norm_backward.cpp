#include <cmath>

#include "cpu/ops_backward.h"

namespace attune::cpu {

void rmsnorm_backward(ThreadPool& pool, const float* dy, const float* x, const float* weight, const float* rstd,
                      int64_t T, int64_t H, float* dx, bool accumulate, float* dweight) {
  // dy, x, dx: [T, H]; weight: [H]; rstd: [T]; dweight: [H] or null.
  if (dweight != nullptr) {
    // Summed over the rows: split the columns, so no two threads share an element. Done first,
    // while dy is intact (dx may overwrite it below).
    pool.run(H, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        double sum = 0;
        for (int64_t t = 0; t < T; ++t) sum += static_cast<double>(dy[t * H + i]) * x[t * H + i] * rstd[t];
        dweight[i] += static_cast<float>(sum);
      }
    });
  }
  pool.run(T, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* g = dy + t * H;
      const float* row = x + t * H;
      float* d = dx + t * H;
      const float r = rstd[t];
      // Σ_j dy_j·w_j·x_j in double, as the forward's sum of squares.
      double dot = 0;
      for (int64_t i = 0; i < H; ++i) dot += static_cast<double>(g[i]) * weight[i] * row[i];
      const float c = static_cast<float>(dot * r * r * r / static_cast<double>(H));
      // Element i reads dy[i] before writing dx[i]: dx may alias dy.
      if (accumulate) {
        for (int64_t i = 0; i < H; ++i) d[i] += r * (g[i] * weight[i]) - c * row[i];
      } else {
        for (int64_t i = 0; i < H; ++i) d[i] = r * (g[i] * weight[i]) - c * row[i];
      }
    }
  });
}

}  // namespace attune::cpu
