#include <algorithm>
#include <cmath>

#include "cpu/ops_backward.h"

namespace attune::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;  // elements per job, as the forward ops
}

void swiglu_backward(ThreadPool& pool, const float* dout, const float* gate, const float* up, int64_t count,
                     float* dgate, float* dup) {
  // dout, gate, up, dgate, dup: [count] (= T·I). Each element reads gate and up before writing:
  // dgate may alias gate and dup may alias up.
  pool.run((count + kGrain - 1) / kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * kGrain, stop = std::min(count, end * kGrain); i < stop; ++i) {
      const float g = gate[i];
      const float u = up[i];
      const float sig = 1.0f / (1.0f + std::exp(-g));
      const float silu = g * sig;
      dgate[i] = dout[i] * u * (sig * (1.0f + g * (1.0f - sig)));
      dup[i] = dout[i] * silu;
    }
  });
}

}  // namespace attune::cpu
