#include "cpu/matmul.h"

#include <cstdint>

#include "cpu/gemm.h"

namespace attune {

void matmul_f32_rows(const float* a, const float* b, float* c, int row0, int row1, int k, int n) {
  // a: [m, k], b: [k, n], c: [m, n]; only rows [row0, row1) of a and c are touched. The caller has
  // already shared the rows out between threads, so this share runs on the calling thread alone.
  cpu::ThreadPool this_thread(1);
  cpu::gemm_f32(this_thread, false, false, row1 - row0, n, k, 1.0f, a + static_cast<int64_t>(row0) * k, k, b, n, 0.0f,
                c + static_cast<int64_t>(row0) * n, n);
}

}  // namespace attune
