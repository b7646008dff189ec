#include "cpu/ops_backward.h"

namespace attune::cpu {

void rope_backward(ThreadPool& pool, float* dx, const int32_t* positions, int64_t T, int64_t heads, int64_t dim,
                   const float* cos_table, const float* sin_table) {
  // dx: [T, heads, dim] in place; tables: [max_positions, dim/2].
  // The forward maps (a, b) → (a·c − b·s, b·c + a·s), a rotation R; the backward applies Rᵀ.
  const int64_t half = dim / 2;
  pool.run(T, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* c = cos_table + static_cast<int64_t>(positions[t]) * half;
      const float* s = sin_table + static_cast<int64_t>(positions[t]) * half;
      for (int64_t h = 0; h < heads; ++h) {
        float* row = dx + (t * heads + h) * dim;
        for (int64_t i = 0; i < half; ++i) {
          const float a = row[i];
          const float b = row[i + half];
          row[i] = a * c[i] + b * s[i];
          row[i + half] = b * c[i] - a * s[i];
        }
      }
    }
  });
}

}  // namespace attune::cpu
