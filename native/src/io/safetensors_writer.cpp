#include "io/safetensors_writer.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace attune {

namespace {

// Position in huggingface/safetensors' Dtype enum (ascending alignment); src-main/domain/
// safetensors/dtypes.ts holds the full list.
int dtype_rank(DType dtype) {
  switch (dtype) {
    case DType::kBool: return 0;
    case DType::kU8: return 4;
    case DType::kI8: return 5;
    case DType::kF8E5M2: return 6;
    case DType::kF8E4M3: return 7;
    case DType::kI16: return 11;
    case DType::kF16: return 13;
    case DType::kBF16: return 14;
    case DType::kI32: return 15;
    case DType::kF32: return 17;
    case DType::kF64: return 19;
    case DType::kI64: return 20;
  }
  return 0;
}

constexpr uint64_t kMaxBytes = uint64_t{1} << 62;

}  // namespace

bool safetensors_dtype_before(DType a, DType b) { return dtype_rank(a) > dtype_rank(b); }

std::string json_string_literal(std::string_view text) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out += kHex[u >> 4];
          out += kHex[u & 15];
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

Status SafetensorsLayout::make(std::vector<SafetensorsTensorSpec> tensors,
                               const std::vector<std::pair<std::string, std::string>>& metadata,
                               SafetensorsLayout* out) {
  SafetensorsLayout layout;
  std::stable_sort(tensors.begin(), tensors.end(), [](const SafetensorsTensorSpec& a, const SafetensorsTensorSpec& b) {
    if (dtype_rank(a.dtype) != dtype_rank(b.dtype)) return safetensors_dtype_before(a.dtype, b.dtype);
    return a.name < b.name;  // std::string compares bytes as unsigned char: UTF-8 code point order
  });
  std::string json = "{";
  if (!metadata.empty()) {
    std::vector<std::pair<std::string, std::string>> sorted = metadata;
    std::sort(sorted.begin(), sorted.end());
    json += "\"__metadata__\":{";
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (i > 0) {
        if (sorted[i].first == sorted[i - 1].first) {
          return Status::invalid_argument("safetensors metadata key \"" + sorted[i].first + "\" is given twice");
        }
        json += ",";
      }
      json += json_string_literal(sorted[i].first) + ":" + json_string_literal(sorted[i].second);
    }
    json += "}";
  }
  uint64_t offset = 0;
  for (SafetensorsTensorSpec& spec : tensors) {
    if (spec.name == "__metadata__") {
      return Status::invalid_argument("A tensor cannot be called \"__metadata__\": safetensors reserves the name");
    }
    uint64_t bytes = dtype_size(spec.dtype);
    for (const int64_t dim : spec.shape) {
      if (dim < 0) {
        return Status::invalid_argument("Tensor \"" + spec.name + "\" has a negative dimension in " +
                                        shape_to_string(spec.shape));
      }
      if (dim != 0 && bytes > kMaxBytes / static_cast<uint64_t>(dim)) {
        return Status::invalid_argument("Tensor \"" + spec.name + "\" of shape " + shape_to_string(spec.shape) +
                                        " is too large");
      }
      bytes *= static_cast<uint64_t>(dim);
    }
    if (offset > kMaxBytes - bytes) return Status::invalid_argument("The tensors are too large for one file");
    Entry entry;
    entry.name = std::move(spec.name);
    entry.dtype = spec.dtype;
    entry.shape = std::move(spec.shape);
    entry.begin = offset;
    entry.end = offset + bytes;
    offset = entry.end;
    if (!layout.index_.emplace(entry.name, layout.entries_.size()).second) {
      return Status::invalid_argument("Tensor \"" + entry.name + "\" is given twice");
    }
    if (json.size() > 1) json += ",";
    json += json_string_literal(entry.name) + ":{\"dtype\":\"" + dtype_name(entry.dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < entry.shape.size(); ++i) {
      if (i > 0) json += ",";
      json += std::to_string(entry.shape[i]);
    }
    json += "],\"data_offsets\":[" + std::to_string(entry.begin) + "," + std::to_string(entry.end) + "]}";
    layout.entries_.push_back(std::move(entry));
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string header;
  header.reserve(8 + json.size());
  uint64_t length = json.size();
  for (int i = 0; i < 8; ++i, length >>= 8) header.push_back(static_cast<char>(length & 0xFF));
  header += json;
  layout.header_ = std::move(header);
  layout.data_bytes_ = offset;
  *out = std::move(layout);
  return {};
}

const SafetensorsLayout::Entry* SafetensorsLayout::find(std::string_view name) const {
  const size_t i = index_of(name);
  return i < entries_.size() ? &entries_[i] : nullptr;
}

size_t SafetensorsLayout::index_of(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? entries_.size() : it->second;
}

Status SafetensorsWriter::create(const std::string& path, SafetensorsLayout layout, SafetensorsWriter* out) {
  SafetensorsWriter writer;
  Status status = OutputFile::create(path, &writer.file_);
  if (status.ok()) status = writer.file_.reserve(layout.file_bytes());
  if (status.ok()) status = writer.file_.write_at(0, layout.header().data(), layout.header().size());
  if (!status.ok()) {
    const bool created = writer.file_.is_open();
    writer.file_ = OutputFile();
    if (created) remove_file(path);
    return status;
  }
  writer.written_.assign(layout.entries().size(), false);
  writer.layout_ = std::move(layout);
  *out = std::move(writer);
  return {};
}

Status SafetensorsWriter::write(std::string_view name, const void* data, size_t nbytes) {
  const size_t i = layout_.index_of(name);
  if (i == layout_.entries().size()) {
    return Status::internal("SafetensorsWriter: " + file_.path() + " has no tensor \"" + std::string(name) + "\"");
  }
  const SafetensorsLayout::Entry& entry = layout_.entries()[i];
  if (written_[i]) return Status::internal("SafetensorsWriter: tensor \"" + entry.name + "\" was written twice");
  if (nbytes != entry.nbytes()) {
    return Status::internal("SafetensorsWriter: tensor \"" + entry.name + "\" has " + std::to_string(entry.nbytes()) +
                            " bytes in " + file_.path() + " but " + std::to_string(nbytes) + " were given");
  }
  Status status = file_.write_at(layout_.header().size() + entry.begin, data, nbytes);
  if (!status.ok()) {
    return Status::invalid_argument(status.message() + " (writing tensor \"" + entry.name + "\")");
  }
  written_[i] = true;
  return {};
}

Status SafetensorsWriter::finish() {
  for (size_t i = 0; i < written_.size(); ++i) {
    if (!written_[i]) {
      return Status::internal("SafetensorsWriter: tensor \"" + layout_.entries()[i].name + "\" of " + file_.path() +
                              " was never written");
    }
  }
  return file_.sync_and_close();
}

Status write_safetensors_file(const std::string& path, const std::vector<SafetensorsTensorData>& tensors,
                              const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::vector<SafetensorsTensorSpec> specs;
  specs.reserve(tensors.size());
  for (const SafetensorsTensorData& t : tensors) specs.push_back({t.name, t.dtype, t.shape});
  SafetensorsLayout layout;
  if (Status status = SafetensorsLayout::make(std::move(specs), metadata, &layout); !status.ok()) return status;
  SafetensorsWriter writer;
  if (Status status = SafetensorsWriter::create(path, std::move(layout), &writer); !status.ok()) return status;
  Status status;
  for (const SafetensorsTensorData& t : tensors) {
    status = writer.write(t.name, t.data, t.nbytes);
    if (!status.ok()) break;
  }
  if (status.ok()) status = writer.finish();
  if (!status.ok()) {
    writer = SafetensorsWriter();
    remove_file(path);
  }
  return status;
}

}  // namespace attune
