#include "safetensors_writer.h"

#include "attune/tensor_view.h"

namespace attune_test {

TestTensor make_tensor(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape) {
  attune::DType parsed = attune::DType::kU8;
  attune::dtype_from_name(dtype, &parsed);
  size_t bytes = attune::dtype_size(parsed);
  for (int64_t dim : shape) bytes *= static_cast<size_t>(dim);
  std::string data(bytes, '\0');
  const size_t salt = name.size() * 31 + (name.empty() ? 0 : static_cast<unsigned char>(name.back()));
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>((i * 7 + salt) & 0xFF);
  return {name, dtype, shape, data};
}

TestTensor bytes_tensor(const std::string& name, const std::string& bytes) {
  return {name, "U8", {static_cast<int64_t>(bytes.size())}, bytes};
}

std::string safetensors_file(const std::vector<TestTensor>& tensors, const std::string& metadata_json) {
  std::string header = "{";
  if (!metadata_json.empty()) header += "\"__metadata__\":" + metadata_json;
  std::string buffer;
  for (const TestTensor& tensor : tensors) {
    if (header.size() > 1) header += ",";
    header += "\"" + tensor.name + "\":{\"dtype\":\"" + tensor.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < tensor.shape.size(); ++i) header += (i > 0 ? "," : "") + std::to_string(tensor.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(buffer.size()) + "," +
              std::to_string(buffer.size() + tensor.data.size()) + "]}";
    buffer += tensor.data;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  return safetensors_raw(header, buffer);
}

std::string safetensors_raw(const std::string& header, const std::string& buffer) {
  std::string file;
  uint64_t length = header.size();
  for (int i = 0; i < 8; ++i, length >>= 8) file.push_back(static_cast<char>(length & 0xFF));
  return file + header + buffer;
}

}  // namespace attune_test
