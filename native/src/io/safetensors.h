// safetensors files: an 8-byte little-endian header length N, N bytes of JSON describing each
// tensor ({name: {dtype, shape, data_offsets: [begin, end)}}, optional "__metadata__" string map),
// then the data buffer, which the tensors must cover exactly. Everything in the header is checked
// before any view is handed out, so a view can be read in full without further checks. Every error
// names the file and, where there is one, the tensor.
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
#include "io/mapped_file.h"

namespace attune {

// safetensors' own limit (MAX_HEADER_SIZE): a longer header is refused, not parsed.
constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

class SafetensorsFile {
 public:
  // Maps the file at `path` and validates it.
  static Status open(const std::string& path, SafetensorsFile* out);
  // Validates `size` bytes at `data`, naming them `source` in errors. The bytes are not copied and
  // must outlive the result (views point into them): for tests, fuzzing and in-memory files.
  static Status parse(const uint8_t* data, size_t size, const std::string& source, SafetensorsFile* out);

  // In header order.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // The tensor called `name`, or nullptr.
  const TensorView* find(std::string_view name) const;
  // "__metadata__", in header order.
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  // Bytes mapped from the file (0 when parsed from the caller's bytes).
  size_t mapped_bytes() const { return file_.size(); }
  // The path, or the `source` given to parse().
  const std::string& source() const { return source_; }

 private:
  MappedFile file_;  // empty when parsed from caller's bytes
  std::string source_;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> index_;  // name → position in tensors_
  std::vector<std::pair<std::string, std::string>> metadata_;
};

}  // namespace attune
