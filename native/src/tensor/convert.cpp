#include "tensor/convert.h"

#include <cstring>
#include <utility>

namespace attune {

namespace {

float from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

uint32_t to_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

// Little-endian u16 at p, whatever its alignment and the host's byte order.
uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

uint32_t load_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

}  // namespace

float bf16_to_f32(uint16_t bits) { return from_bits(static_cast<uint32_t>(bits) << 16); }

float f16_to_f32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1F;
  uint32_t mantissa = bits & 0x3FF;
  if (exponent == 0x1F) return from_bits(sign | 0x7F800000 | mantissa << 13);  // inf, NaN (payload kept)
  if (exponent != 0) return from_bits(sign | (exponent + 112) << 23 | mantissa << 13);  // rebias 15 → 127
  if (mantissa == 0) return from_bits(sign);  // ±0
  // Subnormal: m · 2^-24. Shift the mantissa up until its leading 1 is the implicit bit.
  int32_t shift = 0;
  while ((mantissa & 0x400) == 0) {
    mantissa <<= 1;
    ++shift;
  }
  return from_bits(sign | static_cast<uint32_t>(113 - shift) << 23 | (mantissa & 0x3FF) << 13);
}

uint16_t f32_to_bf16(float value) {
  const uint32_t bits = to_bits(value);
  if ((bits & 0x7FFFFFFF) > 0x7F800000) return 0x7FC0;
  // Adding 0x7FFF plus the lowest kept bit rounds to nearest, ties to even; a carry out of the
  // mantissa correctly bumps the exponent (up to inf).
  const uint32_t rounding = 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

uint16_t f32_to_f16(float value) {
  const uint32_t bits = to_bits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t magnitude = bits & 0x7FFFFFFF;
  if (magnitude > 0x7F800000) return sign | 0x7E00;  // NaN
  if (magnitude >= 0x477FF000) return sign | 0x7C00;  // rounds to ≥ 65520: inf (or was inf)
  const int32_t exponent = static_cast<int32_t>(magnitude >> 23) - 127;
  if (exponent >= -14) {
    // Normal half: drop 13 mantissa bits with round-to-nearest-even; a carry bumps the exponent.
    const uint32_t rebased = magnitude - (112u << 23);
    const uint32_t rounding = 0xFFF + ((rebased >> 13) & 1);
    return sign | static_cast<uint16_t>((rebased + rounding) >> 13);
  }
  if (exponent < -25) return sign;  // below half the smallest subnormal (2^-25): ±0
  // Subnormal half: the value is m · 2^-24 with m = full mantissa (implicit 1) >> (-exponent - 1).
  const uint32_t full = (magnitude & 0x7FFFFF) | 0x800000;
  const int32_t shift = -exponent - 1;  // 14..24, so that full >> shift is in units of 2^-24
  const uint32_t kept = full >> shift;
  const uint32_t remainder = full & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  const bool round_up = remainder > half || (remainder == half && (kept & 1) != 0);
  // A round-up to 0x400 is exactly the smallest normal half, which is the right encoding.
  return sign | static_cast<uint16_t>(kept + (round_up ? 1 : 0));
}

void bf16_to_f32(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

void f16_to_f32(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

void f32_to_bf16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

void f32_to_f16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

Status to_f32(const TensorView& tensor, std::vector<float>* out) {
  if (tensor.dtype != DType::kF32 && tensor.dtype != DType::kF16 && tensor.dtype != DType::kBF16) {
    return Status::invalid_argument("tensor \"" + tensor.name + "\" has dtype " + dtype_name(tensor.dtype) +
                                    "; only F32, F16 and BF16 tensors convert to fp32");
  }
  const size_t count = static_cast<size_t>(tensor.numel());
  if (tensor.nbytes != count * dtype_size(tensor.dtype)) {
    return Status::internal("tensor \"" + tensor.name + "\": " + std::to_string(tensor.nbytes) +
                            " bytes do not match its shape " + shape_to_string(tensor.shape));
  }
  std::vector<float> values(count);
  const uint8_t* data = tensor.data;
  if (tensor.dtype == DType::kF32) {
    for (size_t i = 0; i < count; ++i) values[i] = from_bits(load_u32(data + 4 * i));
  } else if (tensor.dtype == DType::kF16) {
    for (size_t i = 0; i < count; ++i) values[i] = f16_to_f32(load_u16(data + 2 * i));
  } else {
    for (size_t i = 0; i < count; ++i) values[i] = bf16_to_f32(load_u16(data + 2 * i));
  }
  *out = std::move(values);
  return {};
}

}  // namespace attune
