// Scalar bf16/f16 → fp32 conversion and typed element access for the GEMM kernels (the SIMD
// kernels use these for tails only).
#pragma once

#include <cstdint>
#include <cstring>

#include "cpu/gemm.h"

namespace attune::cpu::gemm_detail {
// Internal linkage on purpose: the SIMD translation units include this with -mavx2 / -mavx512f,
// and a shared inline copy could let the linker hand an AVX build of it to the generic path.
namespace {

inline float bf16_to_f32(uint16_t h) {
  // bf16 is the top half of an fp32.
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float f16_to_f32(uint16_t h) {
  // Rebias the exponent (15 → 127) and widen the mantissa; subnormals, infinities and NaNs apart.
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else {
    const float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f);  // mantissa · 2^-24
    return sign ? -magnitude : magnitude;
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Element i of a weight array of dtype T, as fp32.
template <WeightType T>
inline float element(const void* data, int64_t i) {
  if constexpr (T == WeightType::F32) {
    return static_cast<const float*>(data)[i];
  } else if constexpr (T == WeightType::BF16) {
    return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
  } else {
    return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
  }
}

}  // namespace
}  // namespace attune::cpu::gemm_detail
