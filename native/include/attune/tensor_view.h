// A tensor as it lies in a weights file: dtype, shape and a pointer into bytes someone else owns
// (a memory-mapped safetensors file). Views are read-only and say nothing about alignment: the data
// of a safetensors tensor may start at any byte, so readers copy (memcpy) rather than cast.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace attune {

// The safetensors dtypes Attune reads; the names are safetensors' spelling. Little-endian storage.
enum class DType : uint8_t {
  kF64,
  kF32,
  kF16,
  kBF16,
  kI64,
  kI32,
  kI16,
  kI8,
  kU8,
  kBool,
  kF8E4M3,
  kF8E5M2,
};

// Bytes per element: 8 for F64/I64, 4 for F32/I32, 2 for F16/BF16/I16, 1 for the rest.
size_t dtype_size(DType dtype);
// "F32", "BF16", "F8_E4M3", ... as written in safetensors headers.
const char* dtype_name(DType dtype);
// The dtype called `name` in a safetensors header; false for names Attune does not know.
bool dtype_from_name(std::string_view name, DType* out);

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;    // row-major; [] is a scalar (one element)
  const uint8_t* data = nullptr;  // nbytes bytes, not necessarily aligned
  size_t nbytes = 0;

  // Product of the shape (1 for a scalar).
  int64_t numel() const;
};

// "[4096, 128]": shapes in error messages.
std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace attune
