#pragma once

namespace attune {

// c[row0:row1, n] = a[row0:row1, k] · b[k, n]; row-major fp32. One thread's share of a matmul.
void matmul_f32_rows(const float* a, const float* b, float* c, int row0, int row1, int k, int n);

}  // namespace attune
