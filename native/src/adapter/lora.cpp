#include "adapter/lora.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "adapter/dropout_stream.h"
#include "tensor/convert.h"

namespace attune::adapter {

float lora_scaling(double alpha, int64_t rank, bool use_rslora) {
  const double r = static_cast<double>(rank);
  return static_cast<float>(use_rslora ? alpha / std::sqrt(r) : alpha / r);
}

namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per job for element-wise loops

}  // namespace

void dropout_mask(ThreadPool& pool, uint64_t seed, uint64_t offset, float p, int64_t n, float* mask) {
  // mask: [n]
  if (p <= 0.0f || p >= 1.0f) {
    std::fill(mask, mask + n, p <= 0.0f ? 1.0f : 0.0f);
    return;
  }
  const float keep_scale = static_cast<float>(1.0 / (1.0 - static_cast<double>(p)));
  const uint64_t key = dropout_key(seed);
  pool.run((n + kGrain - 1) / kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * kGrain, stop = std::min(n, end * kGrain); i < stop; ++i) {
      mask[i] = dropout_uniform(key, offset + static_cast<uint64_t>(i)) < p ? 0.0f : keep_scale;
    }
  });
}

namespace detail {

void apply_mask(ThreadPool& pool, const float* x, const float* mask, int64_t n, float* xd) {
  // x, mask, xd: [n]
  pool.run((n + kGrain - 1) / kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * kGrain, stop = std::min(n, end * kGrain); i < stop; ++i) xd[i] = x[i] * mask[i];
  });
}

void frozen_rows_to_f32(const FrozenLinear& base, int64_t row0, int64_t rows, float* dst) {
  // rows [row0, row0 + rows) of W [out, in] → dst [rows, in] fp32.
  const int64_t begin = row0 * base.in, n = rows * base.in;
  switch (base.type) {
    case WeightType::F32:
      std::memcpy(dst, static_cast<const float*>(base.weight) + begin, static_cast<size_t>(n) * sizeof(float));
      break;
    case WeightType::BF16:
      bf16_to_f32(static_cast<const uint16_t*>(base.weight) + begin, dst, n);
      break;
    case WeightType::F16:
      f16_to_f32(static_cast<const uint16_t*>(base.weight) + begin, dst, n);
      break;
  }
}

void frozen_to_f32(ThreadPool& pool, const FrozenLinear& base, float* dst) {
  // W: [out, in] in its file dtype → dst [out, in] fp32.
  pool.run(base.out, [&](int64_t begin, int64_t end) {
    frozen_rows_to_f32(base, begin, end - begin, dst + begin * base.in);
  });
}

}  // namespace detail

void lora_forward(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, const float* x, const float* mask,
                  int64_t T, float* y, float* u, float* xd) {
  // x: [T, in]; mask, xd: [T, in] or null; y: [T, out]; u: [T, r].
  const int64_t in = base.in, out = base.out, r = lora.rank;
  cpu::linear(pool, x, base.weight, base.type, base.bias, y, T, in, out);
  const float* x_lora = x;
  if (mask != nullptr) {
    detail::apply_mask(pool, x, mask, T * in, xd);
    x_lora = xd;
  }
  // u = x_d·Aᵀ, then y += s·u·Bᵀ.
  cpu::gemm_f32(pool, false, true, T, r, in, 1.0f, x_lora, in, lora.A, in, 0.0f, u, r);
  cpu::gemm_f32(pool, false, true, T, out, r, lora.scaling, u, r, lora.B, r, 1.0f, y, out);
}

void lora_backward(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, const float* dy, const float* x,
                   const float* mask, const float* u, int64_t T, float* dx, bool accumulate_dx, const LoraGrads& grads,
                   float* xd) {
  // dy: [T, out]; x, dx: [T, in]; mask, xd: [T, in] or null; u: [T, r]; dA: [r, in]; dB: [out, r].
  const int64_t in = base.in, out = base.out, r = lora.rank;
  const float s = lora.scaling;
  std::vector<float> du(static_cast<size_t>(T * r));
  // du = s·dy·B; dB += s·dyᵀ·u.
  cpu::gemm_f32(pool, false, false, T, r, out, s, dy, out, lora.B, r, 0.0f, du.data(), r);
  cpu::gemm_f32(pool, true, false, out, r, T, s, dy, out, u, r, 1.0f, grads.dB, r);
  // dA += duᵀ·x_d.
  const float* x_lora = x;
  if (mask != nullptr) {
    detail::apply_mask(pool, x, mask, T * in, xd);
    x_lora = xd;
  }
  cpu::gemm_f32(pool, true, false, r, in, T, 1.0f, du.data(), r, x_lora, in, 1.0f, grads.dA, in);
  if (dx == nullptr) return;
  // dx = Wᵀ·dy (the frozen path) + mask ⊙ (du·A) (the LoRA path).
  cpu::linear_backward_input(pool, dy, base.weight, base.type, dx, T, in, out, accumulate_dx);
  if (mask == nullptr) {
    cpu::gemm_f32(pool, false, false, T, in, r, 1.0f, du.data(), r, lora.A, in, 1.0f, dx, in);
    return;
  }
  cpu::gemm_f32(pool, false, false, T, in, r, 1.0f, du.data(), r, lora.A, in, 0.0f, xd, in);
  const int64_t n = T * in;
  pool.run((n + kGrain - 1) / kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * kGrain, stop = std::min(n, end * kGrain); i < stop; ++i) dx[i] += mask[i] * xd[i];
  });
}

void lora_merge(ThreadPool& pool, const FrozenLinear& base, const LoraParams& lora, float* merged) {
  // merged: [out, in] = W + s·B·A.
  detail::frozen_to_f32(pool, base, merged);
  cpu::gemm_f32(pool, false, false, base.out, base.in, lora.rank, lora.scaling, lora.B, lora.rank, lora.A, base.in,
                1.0f, merged, base.in);
}

}  // namespace attune::adapter
