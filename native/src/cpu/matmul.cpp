#include "cpu/matmul.h"

#include <algorithm>

namespace attune {

namespace {
// A kKBlock x kNBlock tile of b (64 KiB) stays in L2 while every row of this thread's share of a
// streams past it; the innermost loop runs along contiguous rows of b and c so it vectorises.
constexpr int kKBlock = 64;
constexpr int kNBlock = 256;
}  // namespace

void matmul_f32_rows(const float* a, const float* b, float* c, int row0, int row1, int k, int n) {
  // a: [m, k], b: [k, n], c: [m, n]; only rows [row0, row1) of a and c are touched.
  std::fill(c + static_cast<long>(row0) * n, c + static_cast<long>(row1) * n, 0.0f);
  for (int k0 = 0; k0 < k; k0 += kKBlock) {
    const int k1 = std::min(k, k0 + kKBlock);
    for (int n0 = 0; n0 < n; n0 += kNBlock) {
      const int n1 = std::min(n, n0 + kNBlock);
      for (int i = row0; i < row1; ++i) {
        float* c_row = c + static_cast<long>(i) * n;
        const float* a_row = a + static_cast<long>(i) * k;
        for (int p = k0; p < k1; ++p) {
          const float a_ip = a_row[p];
          const float* b_row = b + static_cast<long>(p) * n;
          for (int j = n0; j < n1; ++j) c_row[j] += a_ip * b_row[j];
        }
      }
    }
  }
}

}  // namespace attune
