#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/ops_backward.h"

namespace attune::cpu {

namespace {
// Query rows per block: the score block and its gradient are [kQueryBlock, T] floats each.
constexpr int64_t kQueryBlock = 128;
}  // namespace

void attention_forward_train(ThreadPool& pool, const float* q, const float* k, const float* v, int64_t T, int64_t heads,
                             int64_t kv_heads, int64_t dim, float* out, float* lse) {
  // q, out: [T, heads, dim]; k, v: [T, kv_heads, dim]; lse: [T, heads].
  // As attention_forward's blocked path with past = 0: per head and block of query rows,
  // scores = scale·Q·Kᵀ and out = softmax(scores)·V as two GEMMs; the masked upper triangle is
  // computed and then zeroed. Also keeps each row's log-sum-exp.
  const int64_t group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  const int64_t q_stride = heads * dim, kv_stride = kv_heads * dim;
  std::vector<float> scores(static_cast<size_t>(std::min(T, kQueryBlock) * T));
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t kh = h / group;
    for (int64_t t0 = 0; t0 < T; t0 += kQueryBlock) {
      const int64_t rows = std::min(kQueryBlock, T - t0);
      const int64_t keys = t0 + rows;  // the last row of the block sees this many keys
      gemm_f32(pool, false, true, rows, keys, dim, scale, q + t0 * q_stride + h * dim, q_stride, k + kh * dim,
               kv_stride, 0.0f, scores.data(), keys);
      pool.run(rows, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          float* row = scores.data() + r * keys;
          const int64_t visible = t0 + r + 1;
          const float max_score = *std::max_element(row, row + visible);
          float denom = 0;
          for (int64_t s = 0; s < visible; ++s) denom += (row[s] = std::exp(row[s] - max_score));
          const float inv = 1.0f / denom;
          for (int64_t s = 0; s < visible; ++s) row[s] *= inv;
          std::fill(row + visible, row + keys, 0.0f);
          lse[(t0 + r) * heads + h] = max_score + std::log(denom);
        }
      });
      gemm_f32(pool, false, false, rows, dim, keys, 1.0f, scores.data(), keys, v + kh * dim, kv_stride, 0.0f,
               out + t0 * q_stride + h * dim, q_stride);
    }
  }
}

void attention_backward(ThreadPool& pool, const float* dout, const float* q, const float* k, const float* v,
                        const float* lse, int64_t T, int64_t heads, int64_t kv_heads, int64_t dim, float* dq,
                        float* dk, float* dv) {
  // dout, q, dq: [T, heads, dim]; k, v, dk, dv: [T, kv_heads, dim]; lse: [T, heads].
  // Per head and block of query rows (all the keys they see fit in the block, so each row's
  // D_i = Σ_j P_ij·dP_ij = dO_i·O_i is summed in place, without the forward's output):
  //   P  = exp(scale·Q·Kᵀ − lse)     [rows, keys], zero above the diagonal
  //   dP = dO·Vᵀ                     [rows, keys]
  //   dS = P ⊙ (dP − D)              (the softmax backward; masked entries have P = 0)
  //   dV[0:keys] += Pᵀ·dO, dQ = scale·dS·K, dK[0:keys] += scale·dSᵀ·Q
  const int64_t group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  const int64_t q_stride = heads * dim, kv_stride = kv_heads * dim;
  std::fill(dk, dk + T * kv_stride, 0.0f);
  std::fill(dv, dv + T * kv_stride, 0.0f);
  const size_t block = static_cast<size_t>(std::min(T, kQueryBlock) * T);
  std::vector<float> probs(block), dscores(block);
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t kh = h / group;
    for (int64_t t0 = 0; t0 < T; t0 += kQueryBlock) {
      const int64_t rows = std::min(kQueryBlock, T - t0);
      const int64_t keys = t0 + rows;
      const float* q_block = q + t0 * q_stride + h * dim;
      const float* do_block = dout + t0 * q_stride + h * dim;
      gemm_f32(pool, false, true, rows, keys, dim, scale, q_block, q_stride, k + kh * dim, kv_stride, 0.0f,
               probs.data(), keys);
      gemm_f32(pool, false, true, rows, keys, dim, 1.0f, do_block, q_stride, v + kh * dim, kv_stride, 0.0f,
               dscores.data(), keys);
      pool.run(rows, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          float* p = probs.data() + r * keys;
          float* ds = dscores.data() + r * keys;
          const int64_t visible = t0 + r + 1;
          const float row_lse = lse[(t0 + r) * heads + h];
          double d = 0;
          for (int64_t s = 0; s < visible; ++s) {
            p[s] = std::exp(p[s] - row_lse);
            d += static_cast<double>(p[s]) * ds[s];
          }
          const float row_d = static_cast<float>(d);
          for (int64_t s = 0; s < visible; ++s) ds[s] = p[s] * (ds[s] - row_d);
          std::fill(p + visible, p + keys, 0.0f);
          std::fill(ds + visible, ds + keys, 0.0f);
        }
      });
      gemm_f32(pool, true, false, keys, dim, rows, 1.0f, probs.data(), keys, do_block, q_stride, 1.0f, dv + kh * dim,
               kv_stride);
      gemm_f32(pool, false, false, rows, dim, keys, scale, dscores.data(), keys, k + kh * dim, kv_stride, 0.0f,
               dq + t0 * q_stride + h * dim, q_stride);
      gemm_f32(pool, true, false, keys, dim, rows, scale, dscores.data(), keys, q_block, q_stride, 1.0f, dk + kh * dim,
               kv_stride);
    }
  }
}

}  // namespace attune::cpu
