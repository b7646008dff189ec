// Conversions between fp32 and the 16-bit float formats of model weights, bit-exact with PyTorch:
// widening is exact (subnormals, infinities and NaN payloads kept); narrowing rounds to nearest,
// ties to even, as torch's .to(torch.bfloat16) / .to(torch.float16) do.
#pragma once

#include <cstdint>
#include <vector>

#include "attune/status.h"
#include "attune/tensor_view.h"

namespace attune {

float bf16_to_f32(uint16_t bits);
float f16_to_f32(uint16_t bits);
// NaN becomes 0x7FC0 whatever its sign or payload, as in c10::BFloat16.
uint16_t f32_to_bf16(float value);
// Overflow becomes ±inf; NaN becomes sign | 0x7E00, as in c10::Half.
uint16_t f32_to_f16(float value);

// dst[n] = src[n] converted, element by element as above. src points at native-endian, aligned
// uint16 values (memory-mapped weights on the little-endian hosts Attune runs on).
void bf16_to_f32(const uint16_t* src, float* dst, int64_t n);
void f16_to_f32(const uint16_t* src, float* dst, int64_t n);
void f32_to_bf16(const float* src, uint16_t* dst, int64_t n);
void f32_to_f16(const float* src, uint16_t* dst, int64_t n);

// tensor: F32, F16 or BF16, any shape → numel() floats, row-major. Other dtypes are refused by name.
Status to_f32(const TensorView& tensor, std::vector<float>* out);

}  // namespace attune
