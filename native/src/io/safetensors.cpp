#include "io/safetensors.h"

#include <algorithm>
#include <numeric>

#include "io/json.h"
#include "io/json_fields.h"

namespace attune {

namespace {

std::string range_to_string(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

// shape: [d0, d1, ...] non-negative integers. *nbytes = numel × element size, unless that does not
// fit in 64 bits: then *overflow is set (such a tensor cannot be in any file).
Status read_shape(const json::Fields& fields, DType dtype, std::vector<int64_t>* shape, uint64_t* nbytes,
                  bool* overflow) {
  const json::Value* value = fields.get("shape");
  if (value == nullptr || !value->is_array()) return fields.error("shape", "must be an array of non-negative integers");
  for (const json::Value& dim : value->as_array()) {
    if (!dim.is_integer() || dim.as_integer() < 0) return fields.error("shape", "must be an array of non-negative integers");
    shape->push_back(dim.as_integer());
  }
  *overflow = false;
  *nbytes = 0;
  // A zero anywhere makes the tensor empty, whatever the product of the other dimensions.
  for (int64_t dim : *shape) {
    if (dim == 0) return {};
  }
  *nbytes = dtype_size(dtype);
  for (int64_t dim : *shape) {
    const uint64_t factor = static_cast<uint64_t>(dim);
    *overflow = *overflow || *nbytes > UINT64_MAX / factor;
    *nbytes *= factor;  // unsigned: wraps on overflow, and is then not used
  }
  return {};
}

// data_offsets: [begin, end), relative to the start of the data buffer.
Status read_offsets(const json::Fields& fields, uint64_t* begin, uint64_t* end) {
  const json::Value* value = fields.get("data_offsets");
  const bool well_formed = value != nullptr && value->is_array() && value->as_array().size() == 2 &&
                           value->as_array()[0].is_integer() && value->as_array()[0].as_integer() >= 0 &&
                           value->as_array()[1].is_integer() && value->as_array()[1].as_integer() >= 0;
  if (!well_formed) return fields.error("data_offsets", "must be [begin, end]: two non-negative integers");
  *begin = static_cast<uint64_t>(value->as_array()[0].as_integer());
  *end = static_cast<uint64_t>(value->as_array()[1].as_integer());
  return {};
}

struct Layout {
  const uint8_t* buffer;
  uint64_t buffer_size;
};

// One header entry → a view into the buffer, every field checked against the buffer.
Status read_tensor(const std::string& source, const std::string& name, const json::Value& entry, const Layout& layout,
                   TensorView* view, uint64_t* begin, uint64_t* end) {
  const std::string where = source + ": tensor \"" + name + "\"";
  if (!entry.is_object()) {
    return Status::invalid_argument(where + " must be an object with dtype, shape and data_offsets, not " +
                                    json::type_name(entry.type()));
  }
  const json::Fields fields(entry, where);
  if (Status status = fields.only({"dtype", "shape", "data_offsets"}); !status.ok()) return status;
  std::string dtype_text;
  if (Status status = fields.string("dtype", &dtype_text); !status.ok()) return status;
  if (!dtype_from_name(dtype_text, &view->dtype)) {
    return fields.error("dtype", "is \"" + dtype_text +
                                     "\", which Attune does not read (it reads F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL "
                                     "F8_E4M3 F8_E5M2)");
  }
  uint64_t expected_bytes = 0;
  bool overflow = false;
  if (Status status = read_shape(fields, view->dtype, &view->shape, &expected_bytes, &overflow); !status.ok()) {
    return status;
  }
  if (Status status = read_offsets(fields, begin, end); !status.ok()) return status;
  const std::string offsets = "data_offsets " + range_to_string(*begin, *end);
  if (*begin > *end) return Status::invalid_argument(where + ": " + offsets + " end before they begin");
  if (*end > layout.buffer_size) {
    return Status::invalid_argument(where + ": " + offsets + " run past the end of the data buffer (" +
                                    std::to_string(layout.buffer_size) + " bytes)");
  }
  if (overflow || expected_bytes != *end - *begin) {
    const std::string size = overflow ? "more than 2^64 bytes" : std::to_string(expected_bytes) + " bytes";
    return Status::invalid_argument(where + ": shape " + shape_to_string(view->shape) + " × " + dtype_text + " is " +
                                    size + " but " + offsets + " hold " + std::to_string(*end - *begin));
  }
  view->name = name;
  view->data = layout.buffer + *begin;
  view->nbytes = static_cast<size_t>(*end - *begin);
  return {};
}

Status read_metadata(const std::string& source, const json::Value& value,
                     std::vector<std::pair<std::string, std::string>>* out) {
  // safetensors' reference reader accepts null for "no metadata"; so do we.
  if (value.is_null()) return {};
  const std::string problem = source + ": \"__metadata__\" must be an object whose values are strings";
  if (!value.is_object()) return Status::invalid_argument(problem + ", not " + json::type_name(value.type()));
  for (const json::Value::Member& member : value.as_object()) {
    if (!member.second.is_string()) {
      return Status::invalid_argument(problem + "; \"" + member.first + "\" is " + json::type_name(member.second.type()));
    }
    out->emplace_back(member.first, member.second.as_string());
  }
  return {};
}

// The buffer must be covered exactly, tensor after tensor: safetensors forbids overlap (a write
// through one view would change another) and holes (bytes nobody accounts for can hide anything).
Status check_coverage(const std::string& source, const std::vector<TensorView>& tensors,
                      const std::vector<std::pair<uint64_t, uint64_t>>& ranges, uint64_t buffer_size) {
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Stable: tensors with equal ranges are reported in header order.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  uint64_t covered = 0;
  const size_t kNone = tensors.size();
  size_t previous = kNone;
  for (size_t i : order) {
    const auto [begin, end] = ranges[i];
    if (begin < covered) {
      return Status::invalid_argument(source + ": tensors \"" + tensors[previous].name + "\" and \"" + tensors[i].name +
                                      "\" overlap (data_offsets " +
                                      range_to_string(ranges[previous].first, ranges[previous].second) + " and " +
                                      range_to_string(begin, end) + ")");
    }
    if (begin > covered) {
      const std::string place = previous == kNone
                                    ? "before the first tensor, \"" + tensors[i].name + "\""
                                    : "between \"" + tensors[previous].name + "\" and \"" + tensors[i].name + "\"";
      return Status::invalid_argument(source + ": bytes " + range_to_string(covered, begin) +
                                      " of the data buffer belong to no tensor (a hole " + place + ")");
    }
    covered = end;
    previous = i;
  }
  if (covered != buffer_size) {
    return Status::invalid_argument(source + ": bytes " + range_to_string(covered, buffer_size) +
                                    " at the end of the data buffer belong to no tensor");
  }
  return {};
}

}  // namespace

Status SafetensorsFile::parse(const uint8_t* data, size_t size, const std::string& source, SafetensorsFile* out) {
  // data: [8-byte header length N][N bytes of JSON][buffer]
  if (size < 8) {
    return Status::invalid_argument(source + ": the file is " + std::to_string(size) +
                                    " bytes, too short for safetensors (which starts with an 8-byte header length)");
  }
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = header_size << 8 | data[i];
  if (header_size >= kSafetensorsMaxHeaderBytes) {
    return Status::invalid_argument(source + ": the header length is " + std::to_string(header_size) +
                                    " bytes, over safetensors' limit of 100 MB: the file is damaged or not safetensors");
  }
  if (header_size > size - 8) {
    return Status::invalid_argument(source + ": the header length is " + std::to_string(header_size) +
                                    " bytes but only " + std::to_string(size - 8) +
                                    " follow it: the file is truncated or not safetensors");
  }
  json::Limits limits;
  limits.max_bytes = kSafetensorsMaxHeaderBytes;
  json::Value header;
  const std::string_view header_text(reinterpret_cast<const char*>(data) + 8, static_cast<size_t>(header_size));
  if (Status status = json::parse(header_text, &header, limits); !status.ok()) {
    return Status::invalid_argument(source + ": the header is not valid JSON: " + status.message());
  }
  if (!header.is_object()) {
    return Status::invalid_argument(source + ": the header must be a JSON object, not " + json::type_name(header.type()));
  }

  SafetensorsFile file;
  file.source_ = source;
  const Layout layout{data + 8 + header_size, size - 8 - header_size};
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const json::Value::Member& member : header.as_object()) {
    if (member.first == "__metadata__") {
      if (Status status = read_metadata(source, member.second, &file.metadata_); !status.ok()) return status;
      continue;
    }
    TensorView view;
    uint64_t begin = 0, end = 0;
    if (Status status = read_tensor(source, member.first, member.second, layout, &view, &begin, &end); !status.ok()) {
      return status;
    }
    file.index_.emplace(view.name, file.tensors_.size());
    file.tensors_.push_back(std::move(view));
    ranges.emplace_back(begin, end);
  }
  if (Status status = check_coverage(source, file.tensors_, ranges, layout.buffer_size); !status.ok()) return status;
  *out = std::move(file);
  return {};
}

Status SafetensorsFile::open(const std::string& path, SafetensorsFile* out) {
  MappedFile mapped;
  if (Status status = MappedFile::open(path, &mapped); !status.ok()) return status;
  SafetensorsFile file;
  if (Status status = parse(mapped.data(), mapped.size(), path, &file); !status.ok()) return status;
  // Moving the mapping keeps its address, so the views stay valid.
  file.file_ = std::move(mapped);
  *out = std::move(file);
  return {};
}

const TensorView* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace attune
