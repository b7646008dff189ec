#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/ops.h"

namespace attune::cpu {

void attention_forward(ThreadPool& pool, const float* q, const float* k, const float* v, int64_t T, int64_t past,
                       int64_t heads, int64_t kv_heads, int64_t dim, float* out) {
  // q, out: [T, heads, dim]; k, v: [past + T (at least), kv_heads, dim].
  const int64_t group = heads / kv_heads;  // query heads sharing one key/value head
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  const int64_t kv_stride = kv_heads * dim;
  pool.run(T * heads, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(past + T));
    for (int64_t job = begin; job < end; ++job) {
      const int64_t t = job / heads;
      const int64_t h = job % heads;
      const int64_t kh = h / group;
      const int64_t visible = past + t + 1;  // causal: keys 0..past+t
      const float* qrow = q + (t * heads + h) * dim;
      float max_score = -INFINITY;
      for (int64_t s = 0; s < visible; ++s) {
        const float* krow = k + s * kv_stride + kh * dim;
        float dot = 0;
        for (int64_t i = 0; i < dim; ++i) dot += qrow[i] * krow[i];
        scores[s] = dot * scale;
        max_score = std::max(max_score, scores[s]);
      }
      float denom = 0;
      for (int64_t s = 0; s < visible; ++s) {
        scores[s] = std::exp(scores[s] - max_score);
        denom += scores[s];
      }
      const float inv = 1.0f / denom;
      float* orow = out + (t * heads + h) * dim;
      std::fill(orow, orow + dim, 0.0f);
      for (int64_t s = 0; s < visible; ++s) {
        const float p = scores[s] * inv;
        const float* vrow = v + s * kv_stride + kh * dim;
        for (int64_t i = 0; i < dim; ++i) orow[i] += p * vrow[i];
      }
    }
  });
}

}  // namespace attune::cpu
