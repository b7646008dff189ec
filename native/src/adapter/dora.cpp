#include "adapter/dora.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace attune::adapter {

namespace {

// Rows of W per block when building rows of W + s·B·A: [kRowBlock, in] fp32 at a time.
constexpr int64_t kRowBlock = 256;

int64_t element_bytes(WeightType type) { return type == WeightType::F32 ? 4 : 2; }

// base restricted to rows [row0, row0 + rows).
FrozenLinear row_slice(const FrozenLinear& base, int64_t row0, int64_t rows) {
  FrozenLinear slice = base;
  slice.weight = static_cast<const char*>(base.weight) + row0 * base.in * element_bytes(base.type);
  slice.bias = base.bias != nullptr ? base.bias + row0 : nullptr;
  slice.out = rows;
  return slice;
}

// Calls fn(row0, rows, block) for consecutive blocks of rows of W + s·B·A (fp32, [rows, in]), built
// as peft builds them: W converted to fp32, plus s·(B·A).
template <typename Fn>
void for_merged_row_blocks(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, const Fn& fn) {
  const int64_t in = base.in, r = lora.rank;
  std::vector<float> block(static_cast<size_t>(std::min(kRowBlock, base.out) * in));
  for (int64_t row0 = 0; row0 < base.out; row0 += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, base.out - row0);
    detail::frozen_to_f32(pool, row_slice(base, row0, rows), block.data());
    cpu::gemm_f32(pool, false, false, rows, in, r, lora.scaling, lora.B + row0 * r, r, lora.A, in, 1.0f, block.data(),
                  in);
    fn(row0, rows, block.data());
  }
}

// g[o] = m[o]/n[o] in fp32, as peft's `magnitude / weight_norm`.
std::vector<float> magnitude_scale(const float* magnitude, const float* norm, int64_t out) {
  std::vector<float> g(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) g[static_cast<size_t>(o)] = magnitude[o] / norm[o];
  return g;
}

}  // namespace

void frozen_row_norms_sq(ThreadPool& pool, const FrozenLinear& base, float* norm_sq) {
  // W: [out, in]; norm_sq: [out].
  const int64_t in = base.in;
  pool.run(base.out, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(in));
    for (int64_t o = begin; o < end; ++o) {
      detail::frozen_rows_to_f32(base, o, 1, row.data());
      double sum = 0;
      for (const float v : row) sum += static_cast<double>(v) * v;
      norm_sq[o] = static_cast<float>(sum);
    }
  });
}

void dora_weight_norm(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, const float* w_norm_sq,
                      float* norm) {
  // W: [out, in]; A: [r, in]; B: [out, r]; w_norm_sq, norm: [out].
  const int64_t in = base.in, out = base.out, r = lora.rank;
  // wa[r, out] = A·Wᵀ = (W·Aᵀ)ᵀ: a Linear layer applied to the r rows of A. gram[r, r] = A·Aᵀ.
  std::vector<float> wa(static_cast<size_t>(r * out)), gram(static_cast<size_t>(r * r));
  cpu::linear(pool, lora.A, base.weight, base.type, nullptr, wa.data(), r, in, out);
  cpu::gemm_f32(pool, false, true, r, r, in, 1.0f, lora.A, in, lora.A, in, 0.0f, gram.data(), r);
  const double s = lora.scaling;
  pool.run(out, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const float* b = lora.B + o * r;
      double cross = 0, delta = 0;  // ⟨W_o, (B·A)_o⟩ and ‖(B·A)_o‖²
      for (int64_t k = 0; k < r; ++k) {
        cross += static_cast<double>(b[k]) * wa[static_cast<size_t>(k * out + o)];
        double gb = 0;
        for (int64_t l = 0; l < r; ++l) gb += static_cast<double>(gram[static_cast<size_t>(k * r + l)]) * b[l];
        delta += b[k] * gb;
      }
      const double sq = static_cast<double>(w_norm_sq[o]) + 2.0 * s * cross + s * s * delta;
      norm[o] = static_cast<float>(std::sqrt(std::max(sq, 0.0)));
    }
  });
}

void dora_weight_norm_direct(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, float* norm) {
  // norm: [out] = ‖W + s·B·A‖ per row.
  const int64_t in = base.in;
  for_merged_row_blocks(pool, base, lora, [&](int64_t row0, int64_t rows, const float* block) {
    pool.run(rows, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float* row = block + i * in;
        double sum = 0;
        for (int64_t j = 0; j < in; ++j) sum += static_cast<double>(row[j]) * row[j];
        norm[row0 + i] = static_cast<float>(std::sqrt(sum));
      }
    });
  });
}

void dora_forward(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, const float* magnitude,
                  const float* norm, const float* x, const float* mask, int64_t T, float* y, float* u, float* inner,
                  float* xd) {
  // x: [T, in]; mask, xd: [T, in] or null; y, inner: [T, out]; u: [T, r]; magnitude, norm: [out].
  const int64_t in = base.in, out = base.out, r = lora.rank;
  const std::vector<float> g = magnitude_scale(magnitude, norm, out);
  // result = base_layer(x): W·x + b, the frozen layer's output.
  cpu::linear(pool, x, base.weight, base.type, base.bias, y, T, in, out);
  // base_result = W·x_d: y − b without dropout (peft subtracts the bias from the result), else
  // recomputed from the dropped input (peft's F.linear(dropout(x), W)).
  const float* x_lora = x;
  if (mask != nullptr) {
    detail::apply_mask(pool, x, mask, T * in, xd);
    x_lora = xd;
    cpu::linear(pool, xd, base.weight, base.type, nullptr, inner, T, in, out);
  }
  // y += (g − 1)⊙W·x_d.
  pool.run(T, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      float* yr = y + t * out;
      float* ir = inner + t * out;
      if (mask == nullptr) {
        for (int64_t o = 0; o < out; ++o) ir[o] = base.bias != nullptr ? yr[o] - base.bias[o] : yr[o];
      }
      for (int64_t o = 0; o < out; ++o) yr[o] += (g[static_cast<size_t>(o)] - 1.0f) * ir[o];
    }
  });
  // u = x_d·Aᵀ; y += g⊙s·u·Bᵀ (as s·u·(g⊙B)ᵀ); inner += s·u·Bᵀ.
  cpu::gemm_f32(pool, false, true, T, r, in, 1.0f, x_lora, in, lora.A, in, 0.0f, u, r);
  std::vector<float> gb(static_cast<size_t>(out * r));
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t k = 0; k < r; ++k) gb[static_cast<size_t>(o * r + k)] = g[static_cast<size_t>(o)] * lora.B[o * r + k];
  }
  cpu::gemm_f32(pool, false, true, T, out, r, lora.scaling, u, r, gb.data(), r, 1.0f, y, out);
  cpu::gemm_f32(pool, false, true, T, out, r, lora.scaling, u, r, lora.B, r, 1.0f, inner, out);
}

void dora_backward(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, const float* magnitude,
                   const float* norm, const float* dy, const float* x, const float* mask, const float* u, float* inner,
                   int64_t T, float* dx, bool accumulate_dx, const LoraGrads& grads, float* dmagnitude, float* xd) {
  // dy, inner: [T, out]; x, dx: [T, in]; mask, xd: [T, in] or null; u: [T, r]; magnitude, norm,
  // dmagnitude: [out]; dA: [r, in]; dB: [out, r].
  const int64_t in = base.in, out = base.out, r = lora.rank;
  const float s = lora.scaling;
  const std::vector<float> g = magnitude_scale(magnitude, norm, out);

  // dm += Σ_t dy ⊙ inner / n: each thread sums its own rows into its own partial [out].
  if (dmagnitude != nullptr) {
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(pool.size(), T));
    std::vector<double> partial(static_cast<size_t>(chunks * out), 0.0);
    pool.run(chunks, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        double* acc = partial.data() + c * out;
        for (int64_t t = c * T / chunks, stop = (c + 1) * T / chunks; t < stop; ++t) {
          const float* dr = dy + t * out;
          const float* ir = inner + t * out;
          for (int64_t o = 0; o < out; ++o) acc[o] += static_cast<double>(dr[o]) * ir[o];
        }
      }
    });
    for (int64_t o = 0; o < out; ++o) {
      double sum = 0;
      for (int64_t c = 0; c < chunks; ++c) sum += partial[static_cast<size_t>(c * out + o)];
      dmagnitude[o] += static_cast<float>(sum / norm[o]);
    }
  }

  // The LoRA path sees g⊙dy: du = s·dy·(g⊙B), dB += s·g⊙(dyᵀ·u), dA += duᵀ·x_d.
  std::vector<float> gb(static_cast<size_t>(out * r)), dyu(static_cast<size_t>(out * r));
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t k = 0; k < r; ++k) gb[static_cast<size_t>(o * r + k)] = g[static_cast<size_t>(o)] * lora.B[o * r + k];
  }
  std::vector<float> du(static_cast<size_t>(T * r));
  cpu::gemm_f32(pool, false, false, T, r, out, s, dy, out, gb.data(), r, 0.0f, du.data(), r);
  cpu::gemm_f32(pool, true, false, out, r, T, 1.0f, dy, out, u, r, 0.0f, dyu.data(), r);
  for (int64_t o = 0; o < out; ++o) {
    const float f = s * g[static_cast<size_t>(o)];
    for (int64_t k = 0; k < r; ++k) grads.dB[o * r + k] += f * dyu[static_cast<size_t>(o * r + k)];
  }
  const float* x_lora = x;
  if (mask != nullptr) {
    detail::apply_mask(pool, x, mask, T * in, xd);
    x_lora = xd;
  }
  cpu::gemm_f32(pool, true, false, r, in, T, 1.0f, du.data(), r, x_lora, in, 1.0f, grads.dA, in);
  if (dx == nullptr) return;

  // dx. `inner` is free now: it holds the scaled dy.
  auto scale_dy = [&](float offset) {  // inner = (g + offset)⊙dy
    pool.run(T, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const float* dr = dy + t * out;
        float* ir = inner + t * out;
        for (int64_t o = 0; o < out; ++o) ir[o] = (g[static_cast<size_t>(o)] + offset) * dr[o];
      }
    });
  };
  if (mask == nullptr) {
    // y = g⊙(W·x + s·B·A·x) + b: dx = Wᵀ·(g⊙dy) + du·A.
    scale_dy(0.0f);
    cpu::linear_backward_input(pool, inner, base.weight, base.type, dx, T, in, out, accumulate_dx);
    cpu::gemm_f32(pool, false, false, T, in, r, 1.0f, du.data(), r, lora.A, in, 1.0f, dx, in);
    return;
  }
  // y = W·x + b + (g − 1)⊙W·x_d + g⊙s·B·A·x_d: dx = Wᵀ·dy + mask ⊙ (Wᵀ·((g − 1)⊙dy) + du·A).
  cpu::linear_backward_input(pool, dy, base.weight, base.type, dx, T, in, out, accumulate_dx);
  scale_dy(-1.0f);
  cpu::linear_backward_input(pool, inner, base.weight, base.type, xd, T, in, out, false);
  cpu::gemm_f32(pool, false, false, T, in, r, 1.0f, du.data(), r, lora.A, in, 1.0f, xd, in);
  const int64_t n = T * in;
  pool.run(T, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * in, stop = std::min(n, end * in); i < stop; ++i) dx[i] += mask[i] * xd[i];
  });
}

void dora_merge(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, const float* magnitude,
                float* merged) {
  // merged: [out, in] = (m/n)[:, None] ⊙ (W + s·B·A).
  const int64_t in = base.in;
  lora_merge(pool, base, lora, merged);
  pool.run(base.out, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      float* row = merged + o * in;
      double sum = 0;
      for (int64_t i = 0; i < in; ++i) sum += static_cast<double>(row[i]) * row[i];
      const float factor = magnitude[o] / static_cast<float>(std::sqrt(sum));
      for (int64_t i = 0; i < in; ++i) row[i] *= factor;
    }
  });
}

}  // namespace attune::adapter
