#include <cstring>

#include "cpu/ops.h"
#include "tensor/convert.h"

namespace attune::cpu {

void embedding_forward(ThreadPool& pool, const int32_t* ids, int64_t T, const void* table, WeightType type, int64_t H,
                       float* out) {
  // ids: [T]; table: [V, H] in `type`; out: [T, H] fp32.
  pool.run(T, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t row = ids[t];
      float* o = out + t * H;
      switch (type) {
        case WeightType::F32:
          std::memcpy(o, static_cast<const float*>(table) + row * H, static_cast<size_t>(H) * sizeof(float));
          break;
        case WeightType::BF16:
          bf16_to_f32(static_cast<const uint16_t*>(table) + row * H, o, H);
          break;
        case WeightType::F16:
          f16_to_f32(static_cast<const uint16_t*>(table) + row * H, o, H);
          break;
      }
    }
  });
}

}  // namespace attune::cpu
