#include <algorithm>
#include <cmath>

#include "cpu/ops.h"

namespace attune::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;  // elements per job: enough work to be worth a thread
}

void swiglu_forward(ThreadPool& pool, const float* gate, const float* up, int64_t count, float* out) {
  // gate, up, out: [count] (= T·I)
  pool.run((count + kGrain - 1) / kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * kGrain, stop = std::min(count, end * kGrain); i < stop; ++i) {
      const float g = gate[i];
      out[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

void add_inplace(ThreadPool& pool, float* x, const float* y, int64_t n) {
  // x, y: [n]
  pool.run((n + kGrain - 1) / kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * kGrain, stop = std::min(n, end * kGrain); i < stop; ++i) x[i] += y[i];
  });
}

}  // namespace attune::cpu
