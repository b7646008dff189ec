// Builds safetensors files in memory for tests and fuzz seeds: valid ones the way the safetensors
// library writes them, and raw ones (any header, any buffer) to corrupt on purpose.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attune_test {

struct TestTensor {
  std::string name;
  std::string dtype;  // safetensors spelling: "F32", "BF16", ...
  std::vector<int64_t> shape;
  std::string data;  // exactly numel × element size bytes
};

// A tensor of `dtype` and `shape` filled with a byte pattern derived from `name`, so tests can tell
// tensors' data apart.
TestTensor make_tensor(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape);
// A tensor whose data is `bytes` as given (dtype "U8", shape [bytes.size()]).
TestTensor bytes_tensor(const std::string& name, const std::string& bytes);

// A valid file: tensors packed in order, header padded with spaces to a multiple of 8 bytes.
// `metadata_json`, when not empty, is written as the value of "__metadata__".
std::string safetensors_file(const std::vector<TestTensor>& tensors, const std::string& metadata_json = "");
// 8-byte little-endian length of `header`, `header`, `buffer`.
std::string safetensors_raw(const std::string& header, const std::string& buffer);

}  // namespace attune_test
