// Writing safetensors files byte for byte as huggingface/safetensors (0.8, `serialize`) writes
// them, without holding the data in memory:
//   - tensors ordered by dtype alignment, highest first (the reference's Dtype enum order,
//     descending: F64/I64 … F32, I32, BF16, F16, I16, F8 …, I8, U8, BOOL), then by name (bytes);
//   - the header: compact JSON `{"__metadata__":{…},"name":{"dtype":…,"shape":[…],
//     "data_offsets":[begin,end]},…}` (metadata keys sorted; the reference writes them in hash
//     order, the same bytes for a single key such as {"format":"pt"}), padded with spaces to a
//     multiple of 8 bytes so every tensor's data starts aligned; the 8-byte little-endian length
//     in front;
//   - then the data, in that order, with no gaps.
// SafetensorsLayout computes all of that from names, dtypes and shapes alone, so the header is
// written first and each tensor's data is written when it is ready, in any order (SafetensorsWriter
// writes it at its offset): a multi-gigabyte file never sits in memory, and a tensor computed late
// (quantized) lands where the reference order puts it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "attune/status.h"
#include "attune/tensor_view.h"
#include "io/output_file.h"

namespace attune {

struct SafetensorsTensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // [] is a scalar
};

class SafetensorsLayout {
 public:
  struct Entry {
    std::string name;
    DType dtype = DType::kF32;
    std::vector<int64_t> shape;
    uint64_t begin = 0;  // data_offsets, relative to the start of the data buffer
    uint64_t end = 0;
    uint64_t nbytes() const { return end - begin; }
  };

  // Orders `tensors` as the reference does and builds the header. Refuses a repeated name, the
  // reserved name "__metadata__", a negative dimension and sizes that overflow.
  static Status make(std::vector<SafetensorsTensorSpec> tensors,
                     const std::vector<std::pair<std::string, std::string>>& metadata, SafetensorsLayout* out);

  // In file order.
  const std::vector<Entry>& entries() const { return entries_; }
  // The entry called `name`, or nullptr.
  const Entry* find(std::string_view name) const;
  size_t index_of(std::string_view name) const;  // entries().size() when absent
  // The file's first bytes: the 8-byte length, the JSON and its padding.
  const std::string& header() const { return header_; }
  uint64_t data_bytes() const { return data_bytes_; }
  uint64_t file_bytes() const { return header_.size() + data_bytes_; }

 private:
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
  std::string header_;
  uint64_t data_bytes_ = 0;
};

// The reference's ordering of two dtypes: true when `a`'s tensors come before `b`'s.
bool safetensors_dtype_before(DType a, DType b);

// A JSON string literal as serde_json (and JSON.stringify) write it: `"`, `\` and control
// characters escaped (\b \f \n \r \t, others \u00XX), everything else as UTF-8.
std::string json_string_literal(std::string_view text);

class SafetensorsWriter {
 public:
  SafetensorsWriter() = default;
  SafetensorsWriter(SafetensorsWriter&&) = default;
  SafetensorsWriter& operator=(SafetensorsWriter&&) = default;

  // Creates the new file `path` (an existing file is an error), reserves its full size where the
  // file system allows (a disk too small fails now), and writes the header.
  static Status create(const std::string& path, SafetensorsLayout layout, SafetensorsWriter* out);

  // Writes the data of tensor `name`: exactly its byte length, once. Any order.
  Status write(std::string_view name, const void* data, size_t nbytes);
  // Checks that every tensor was written, then syncs and closes the file.
  Status finish();

  const SafetensorsLayout& layout() const { return layout_; }
  const std::string& path() const { return file_.path(); }

 private:
  OutputFile file_;
  SafetensorsLayout layout_;
  std::vector<bool> written_;
};

// One tensor with its data in memory.
struct SafetensorsTensorData {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

// A whole file from tensors in memory (small files; tests). Removes the file again on failure.
Status write_safetensors_file(const std::string& path, const std::vector<SafetensorsTensorData>& tensors,
                              const std::vector<std::pair<std::string, std::string>>& metadata = {});

}  // namespace attune
