#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "check.h"
#include "status_matchers.h"
#include "tensor/convert.h"

using attune::bf16_to_f32;
using attune::f16_to_f32;
using attune::f32_to_bf16;
using attune::f32_to_f16;
using attune_test::fails_with;
using attune_test::succeeds;

namespace {

uint32_t bits_of(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float float_of(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// The value of a half by its definition, computed independently of the bit tricks under test.
double half_value(uint16_t h) {
  const int exponent = (h >> 10) & 0x1F;
  const int mantissa = h & 0x3FF;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

// Round-to-nearest-even of a float to half, by searching the ordered table of positive halves.
uint16_t reference_f32_to_f16(float value) {
  static const std::vector<double> positive_halves = [] {
    std::vector<double> table;
    for (uint16_t h = 0; h < 0x7C00; ++h) table.push_back(half_value(h));
    return table;
  }();
  const uint16_t sign = std::signbit(value) ? 0x8000 : 0;
  const double magnitude = std::fabs(static_cast<double>(value));
  if (magnitude >= 65520.0) return sign | 0x7C00;  // halfway between 65504 and 2^16, and above
  // The largest half not above the magnitude, and the one after it.
  const auto above = std::upper_bound(positive_halves.begin(), positive_halves.end(), magnitude);
  const uint16_t below = static_cast<uint16_t>(above - positive_halves.begin() - 1);
  if (below == 0x7BFF || positive_halves[below] == magnitude) return sign | below;
  const double down = magnitude - positive_halves[below];
  const double up = positive_halves[below + 1] - magnitude;
  const bool round_up = up < down || (up == down && (below & 1) != 0);
  return sign | static_cast<uint16_t>(below + (round_up ? 1 : 0));
}

// Deterministic pseudo-random 32-bit patterns (splitmix64).
uint32_t next_random(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}

}  // namespace

TEST(f16_to_f32_is_exact_for_every_half) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const float value = f16_to_f32(static_cast<uint16_t>(h));
    const bool is_nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
    const bool is_inf = (h & 0x7FFF) == 0x7C00;
    if (is_nan) {
      CHECK(std::isnan(value));
      CHECK((bits_of(value) & 0x007FFFFF) == (h & 0x3FFu) << 13);  // payload kept
    } else if (is_inf) {
      CHECK(std::isinf(value) && std::signbit(value) == ((h & 0x8000) != 0));
    } else {
      CHECK(static_cast<double>(value) == half_value(static_cast<uint16_t>(h)));
      CHECK(std::signbit(value) == ((h & 0x8000) != 0));  // -0 stays -0
    }
  }
  CHECK(f16_to_f32(0x3C00) == 1.0f && f16_to_f32(0xC000) == -2.0f && f16_to_f32(0x7BFF) == 65504.0f);
  CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24) && f16_to_f32(0x0400) == std::ldexp(1.0f, -14));
}

TEST(halves_and_bfloats_round_trip_through_f32) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const uint16_t half = static_cast<uint16_t>(h);
    const bool half_nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
    CHECK(f32_to_f16(f16_to_f32(half)) == (half_nan ? ((h & 0x8000) | 0x7E00) : h));
    const bool bf16_nan = (h & 0x7F80) == 0x7F80 && (h & 0x7F) != 0;
    CHECK(f32_to_bf16(bf16_to_f32(half)) == (bf16_nan ? 0x7FC0 : h));
    CHECK(bits_of(bf16_to_f32(half)) == h << 16);
  }
}

TEST(f32_to_bf16_rounds_to_nearest_even_like_torch) {
  CHECK(f32_to_bf16(float_of(0x3F808000)) == 0x3F80);  // tie, 0x3F80 is even: down
  CHECK(f32_to_bf16(float_of(0x3F818000)) == 0x3F82);  // tie, 0x3F81 is odd: up
  CHECK(f32_to_bf16(float_of(0x3F808001)) == 0x3F81);  // above the tie: up
  CHECK(f32_to_bf16(float_of(0x3F807FFF)) == 0x3F80);  // below the tie: down
  CHECK(f32_to_bf16(float_of(0xBF818000)) == 0xBF82);  // negative values mirror
  CHECK(f32_to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // rounds up to inf, as torch does
  CHECK(f32_to_bf16(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(f32_to_bf16(-std::numeric_limits<float>::quiet_NaN()) == 0x7FC0);
  CHECK(f32_to_bf16(float_of(0x00000001)) == 0x0000);  // the smallest subnormal rounds to 0
  CHECK(f32_to_bf16(float_of(0x00018000)) == 0x0002);  // subnormal tie to even
}

TEST(f32_to_f16_matches_a_reference_rounding) {
  std::vector<float> values = {0.0f, -0.0f, 1.0f, 65504.0f, 65519.99f, 65520.0f, 1e10f, -1e10f,
                               std::ldexp(1.0f, -24), std::ldexp(1.0f, -25), std::ldexp(1.5f, -25),
                               std::ldexp(1.0f, -26), std::ldexp(1.0f, -14), std::ldexp(1023.5f, -24),
                               std::ldexp(2047.5f, -24), 1e-30f, float_of(0x00000001)};
  // Ties at every scale: x.5 ulps of half, even and odd.
  for (int k = 0; k < 40; ++k) values.push_back(std::ldexp(static_cast<float>(2049 + 2 * k), -11 - k % 30));
  uint64_t state = 42;
  while (values.size() < 20000) {
    // Exponents where halves live (2^-26 .. 2^17), random mantissas and signs.
    const uint32_t r = next_random(&state);
    const uint32_t exponent = 101 + (r >> 23) % 44;
    values.push_back(float_of((r & 0x807FFFFF) | exponent << 23));
  }
  int mismatches = 0;
  for (float value : values) {
    if (f32_to_f16(value) != reference_f32_to_f16(value) && ++mismatches <= 5) {
      std::printf("  f32_to_f16(%a) = 0x%04X, expected 0x%04X\n", static_cast<double>(value), f32_to_f16(value),
                  reference_f32_to_f16(value));
    }
  }
  CHECK(mismatches == 0);
  CHECK(f32_to_f16(std::numeric_limits<float>::infinity()) == 0x7C00);
  CHECK(f32_to_f16(-std::numeric_limits<float>::infinity()) == 0xFC00);
  CHECK(f32_to_f16(std::numeric_limits<float>::quiet_NaN()) == 0x7E00);
  CHECK(f32_to_f16(-std::numeric_limits<float>::quiet_NaN()) == 0xFE00);
}

TEST(array_conversions_match_the_scalar_ones) {
  const std::vector<float> source = {1.0f, -2.5f, 3.14159f, 1e-6f, 70000.0f};
  std::vector<uint16_t> halves(source.size()), bfloats(source.size());
  attune::f32_to_f16(source.data(), halves.data(), static_cast<int64_t>(source.size()));
  attune::f32_to_bf16(source.data(), bfloats.data(), static_cast<int64_t>(source.size()));
  std::vector<float> from_halves(source.size()), from_bfloats(source.size());
  attune::f16_to_f32(halves.data(), from_halves.data(), static_cast<int64_t>(source.size()));
  attune::bf16_to_f32(bfloats.data(), from_bfloats.data(), static_cast<int64_t>(source.size()));
  for (size_t i = 0; i < source.size(); ++i) {
    CHECK(halves[i] == f32_to_f16(source[i]) && bfloats[i] == f32_to_bf16(source[i]));
    CHECK(from_halves[i] == f16_to_f32(halves[i]) && from_bfloats[i] == bf16_to_f32(bfloats[i]));
  }
}

TEST(to_f32_reads_float_tensors_at_any_alignment) {
  // Little-endian bytes at an odd address: safetensors data need not be aligned.
  const uint8_t bytes[] = {0xAA, 0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0};
  attune::TensorView view{"w", attune::DType::kF32, {2}, bytes + 1, 8};
  std::vector<float> out;
  CHECK(succeeds(attune::to_f32(view, &out)) && out.size() == 2 && out[0] == 1.0f && out[1] == -2.0f);
  const uint8_t halves[] = {0xAA, 0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00};
  view = {"h", attune::DType::kF16, {1, 3}, halves + 1, 6};
  CHECK(succeeds(attune::to_f32(view, &out)) && out.size() == 3);
  CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == std::ldexp(1.0f, -24));
  const uint8_t bfloats[] = {0x80, 0x3F, 0x40, 0xC0};
  view = {"b", attune::DType::kBF16, {2}, bfloats, 4};
  CHECK(succeeds(attune::to_f32(view, &out)) && out[0] == 1.0f && out[1] == -3.0f);
  view = {"empty", attune::DType::kBF16, {0, 4}, bfloats, 0};
  CHECK(succeeds(attune::to_f32(view, &out)) && out.empty());
}

TEST(to_f32_refuses_other_dtypes_by_name) {
  const uint8_t bytes[8] = {};
  attune::TensorView view{"model.layers.0.mlp.up_proj.weight", attune::DType::kU8, {8}, bytes, 8};
  std::vector<float> out = {5.0f};
  CHECK(fails_with(attune::to_f32(view, &out),
                   "tensor \"model.layers.0.mlp.up_proj.weight\" has dtype U8; only F32, F16 and BF16 tensors convert to fp32"));
  CHECK(out.size() == 1);
  view = {"d", attune::DType::kF64, {1}, bytes, 8};
  CHECK(fails_with(attune::to_f32(view, &out), "tensor \"d\" has dtype F64"));
}
