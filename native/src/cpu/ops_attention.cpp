#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/ops.h"

namespace attune::cpu {

namespace {

constexpr int64_t kQueryBlock = 256;  // query rows per score block: [256, S] floats at a time

// One query row at a time, all heads in parallel: for decoding (T = 1), where a matrix product
// would have a single row anyway.
void attention_rows(ThreadPool& pool, const float* q, const float* k, const float* v, int64_t T, int64_t past,
                    int64_t heads, int64_t kv_heads, int64_t dim, float* out) {
  const int64_t group = heads / kv_heads;
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
        scores[static_cast<size_t>(s)] = dot * scale;
        max_score = std::max(max_score, scores[static_cast<size_t>(s)]);
      }
      float denom = 0;
      for (int64_t s = 0; s < visible; ++s) {
        scores[static_cast<size_t>(s)] = std::exp(scores[static_cast<size_t>(s)] - max_score);
        denom += scores[static_cast<size_t>(s)];
      }
      const float inv = 1.0f / denom;
      float* orow = out + (t * heads + h) * dim;
      std::fill(orow, orow + dim, 0.0f);
      for (int64_t s = 0; s < visible; ++s) {
        const float p = scores[static_cast<size_t>(s)] * inv;
        const float* vrow = v + s * kv_stride + kh * dim;
        for (int64_t i = 0; i < dim; ++i) orow[i] += p * vrow[i];
      }
    }
  });
}

// Many query rows (prefill, scoring): per head and block of queries, scores = Q·Kᵀ and
// out = softmax(scores)·V as two GEMMs, which run an order of magnitude faster than dot
// products one pair at a time. The masked upper triangle is computed and then zeroed: cheaper
// than the bookkeeping to skip it at these sizes.
void attention_blocks(ThreadPool& pool, const float* q, const float* k, const float* v, int64_t T, int64_t past,
                      int64_t heads, int64_t kv_heads, int64_t dim, float* out) {
  const int64_t group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  const int64_t q_stride = heads * dim, kv_stride = kv_heads * dim;
  std::vector<float> scores(static_cast<size_t>(std::min(T, kQueryBlock) * (past + T)));
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t kh = h / group;
    for (int64_t t0 = 0; t0 < T; t0 += kQueryBlock) {
      const int64_t rows = std::min(kQueryBlock, T - t0);
      const int64_t keys = past + t0 + rows;  // the last row of the block sees this many keys
      gemm_f32(pool, false, true, rows, keys, dim, scale, q + t0 * q_stride + h * dim, q_stride, k + kh * dim, kv_stride,
               0.0f, scores.data(), keys);
      pool.run(rows, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          float* row = scores.data() + r * keys;
          const int64_t visible = past + t0 + r + 1;
          const float max_score = *std::max_element(row, row + visible);
          float denom = 0;
          for (int64_t s = 0; s < visible; ++s) denom += (row[s] = std::exp(row[s] - max_score));
          const float inv = 1.0f / denom;
          for (int64_t s = 0; s < visible; ++s) row[s] *= inv;
          std::fill(row + visible, row + keys, 0.0f);
        }
      });
      gemm_f32(pool, false, false, rows, dim, keys, 1.0f, scores.data(), keys, v + kh * dim, kv_stride, 0.0f,
               out + t0 * q_stride + h * dim, q_stride);
    }
  }
}

}  // namespace

void attention_forward(ThreadPool& pool, const float* q, const float* k, const float* v, int64_t T, int64_t past,
                       int64_t heads, int64_t kv_heads, int64_t dim, float* out) {
  // q, out: [T, heads, dim]; k, v: [past + T (at least), kv_heads, dim].
  if (T == 1) {
    attention_rows(pool, q, k, v, T, past, heads, kv_heads, dim, out);
  } else {
    attention_blocks(pool, q, k, v, T, past, heads, kv_heads, dim, out);
  }
}

}  // namespace attune::cpu
