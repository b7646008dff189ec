#include "cpu/ops.h"
#include "cpu/ops_backward.h"

namespace attune::cpu {

namespace {

// x: [T, heads, dim] in place; tables: [max_positions, dim/2]. Rotates each (x[i], x[i + dim/2])
// pair by the angle at its position, or by minus that angle when `inverse` (the transpose of a
// rotation is its inverse, so that is the backward).
void rotate(ThreadPool& pool, float* x, const int32_t* positions, int64_t T, int64_t heads, int64_t dim,
            const float* cos_table, const float* sin_table, bool inverse) {
  const int64_t half = dim / 2;
  const float sign = inverse ? -1.0f : 1.0f;
  pool.run(T, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* c = cos_table + static_cast<int64_t>(positions[t]) * half;
      const float* s = sin_table + static_cast<int64_t>(positions[t]) * half;
      for (int64_t h = 0; h < heads; ++h) {
        float* row = x + (t * heads + h) * dim;
        for (int64_t i = 0; i < half; ++i) {
          const float a = row[i];
          const float b = row[i + half];
          const float sin = sign * s[i];
          row[i] = a * c[i] - b * sin;
          row[i + half] = b * c[i] + a * sin;
        }
      }
    }
  });
}

}  // namespace

void rope_forward(ThreadPool& pool, float* x, const int32_t* positions, int64_t T, int64_t heads, int64_t dim,
                  const float* cos_table, const float* sin_table) {
  rotate(pool, x, positions, T, heads, dim, cos_table, sin_table, false);
}

void rope_backward(ThreadPool& pool, float* dx, const int32_t* positions, int64_t T, int64_t heads, int64_t dim,
                   const float* cos_table, const float* sin_table) {
  rotate(pool, dx, positions, T, heads, dim, cos_table, sin_table, true);
}

}  // namespace attune::cpu
