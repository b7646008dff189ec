#include "io/model_weights.h"

#include <exception>
#include <filesystem>
#include <system_error>
#include <utility>

#include "io/json.h"
#include "io/mapped_file.h"

namespace attune {

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/' || dir.back() == '\\') return dir + name;
  return dir + "/" + name;
}

namespace {

// u8path: paths are UTF-8 throughout Attune, which Windows' narrow paths are not. It throws on
// invalid UTF-8 (on Windows); such a path names nothing we can open.
bool is_file(const std::string& path) {
  try {
    std::error_code error;
    return std::filesystem::is_regular_file(std::filesystem::u8path(path), error);
  } catch (const std::exception&) {
    return false;
  }
}

bool is_directory(const std::string& path) {
  try {
    std::error_code error;
    return std::filesystem::is_directory(std::filesystem::u8path(path), error);
  } catch (const std::exception&) {
    return false;
  }
}

// A shard must be a file directly inside the model folder: an index that reaches elsewhere
// ("../x", "/etc/x", "C:x", "sub/x") is refused rather than followed.
bool is_plain_file_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  for (char c : name) {
    if (c == '/' || c == '\\' || c == ':' || c == '\0') return false;
  }
  return true;
}

// The weight_map of an index file, in file order, every shard name checked.
Status read_weight_map(const std::string& index_path, std::vector<std::pair<std::string, std::string>>* out) {
  MappedFile mapped;
  if (Status status = MappedFile::open(index_path, &mapped); !status.ok()) return status;
  json::Value index;
  if (Status status = json::parse(mapped.text(), &index); !status.ok()) {
    return Status::invalid_argument(index_path + ": " + status.message());
  }
  const json::Value* weight_map = index.find("weight_map");
  if (weight_map == nullptr || !weight_map->is_object()) {
    return Status::invalid_argument(index_path + ": \"weight_map\" must be an object mapping tensor names to shard files");
  }
  for (const json::Value::Member& member : weight_map->as_object()) {
    if (!member.second.is_string()) {
      return Status::invalid_argument(index_path + ": weight_map[\"" + member.first + "\"] must be a file name, not " +
                                      json::type_name(member.second.type()));
    }
    if (!is_plain_file_name(member.second.as_string())) {
      return Status::invalid_argument(index_path + ": weight_map puts \"" + member.first + "\" in \"" +
                                      member.second.as_string() +
                                      "\", which is not a plain file name; shards must be files inside the model folder");
    }
    out->emplace_back(member.first, member.second.as_string());
  }
  return {};
}

}  // namespace

Status ModelWeights::add_file(SafetensorsFile file) {
  const size_t file_index = files_.size();
  for (size_t i = 0; i < file.tensors().size(); ++i) {
    const std::string& name = file.tensors()[i].name;
    const auto [it, inserted] = locations_.emplace(name, Location{file_index, i});
    if (!inserted) {
      return Status::invalid_argument("Tensor \"" + name + "\" is in both " + files_[it->second.file].source() +
                                      " and " + file.source() + "; a tensor must be in one file only");
    }
  }
  files_.push_back(std::move(file));
  return {};
}

Status ModelWeights::open(const std::string& model_dir, ModelWeights* out) {
  if (!is_directory(model_dir)) {
    return Status::invalid_argument("The model folder " + model_dir + " does not exist or is not a folder");
  }
  ModelWeights weights;
  weights.dir_ = model_dir;
  const std::string single_path = join_path(model_dir, kSingleWeightsFile);
  if (is_file(single_path)) {
    SafetensorsFile file;
    if (Status status = SafetensorsFile::open(single_path, &file); !status.ok()) return status;
    if (Status status = weights.add_file(std::move(file)); !status.ok()) return status;
    *out = std::move(weights);
    return {};
  }

  const std::string index_path = join_path(model_dir, kWeightsIndexFile);
  if (!is_file(index_path)) {
    return Status::invalid_argument("No " + std::string(kSingleWeightsFile) + " or " + kWeightsIndexFile + " in " +
                                    model_dir + "; Attune loads weights in safetensors format only");
  }
  std::vector<std::pair<std::string, std::string>> weight_map;
  if (Status status = read_weight_map(index_path, &weight_map); !status.ok()) return status;
  // Shards in the order the index first names them, each opened once.
  std::unordered_map<std::string, size_t> shard_files;
  for (const auto& [name, shard] : weight_map) {
    if (shard_files.count(shard) != 0) continue;
    SafetensorsFile file;
    if (Status status = SafetensorsFile::open(join_path(model_dir, shard), &file); !status.ok()) {
      return Status::invalid_argument(status.message() + " (a shard named by " + index_path + ")");
    }
    shard_files.emplace(shard, weights.files_.size());
    if (Status status = weights.add_file(std::move(file)); !status.ok()) return status;
  }
  for (const auto& [name, shard] : weight_map) {
    const auto it = weights.locations_.find(name);
    if (it == weights.locations_.end() || it->second.file != shard_files[shard]) {
      const std::string found =
          it == weights.locations_.end() ? "no shard has it" : "it is in " + weights.files_[it->second.file].source();
      return Status::invalid_argument(index_path + " puts tensor \"" + name + "\" in " + shard + ", but " +
                                      join_path(model_dir, shard) + " does not contain it (" + found + ")");
    }
  }
  *out = std::move(weights);
  return {};
}

const TensorView* ModelWeights::find(std::string_view name) const {
  const auto it = locations_.find(std::string(name));
  return it == locations_.end() ? nullptr : &files_[it->second.file].tensors()[it->second.tensor];
}

const std::string& ModelWeights::file_of(std::string_view name) const {
  static const std::string none;
  const auto it = locations_.find(std::string(name));
  return it == locations_.end() ? none : files_[it->second.file].source();
}

Status ModelWeights::missing(std::string_view name) const {
  return Status::invalid_argument(dir_ + ": the model's weights have no tensor \"" + std::string(name) + "\"");
}

Status ModelWeights::require(std::string_view name, const std::vector<int64_t>& shape, const TensorView** out) const {
  const TensorView* tensor = find(name);
  if (tensor == nullptr) return missing(name);
  if (tensor->shape != shape) {
    return Status::invalid_argument(file_of(name) + ": tensor \"" + tensor->name + "\" has shape " +
                                    shape_to_string(tensor->shape) + "; expected " +
                                    shape_to_string(shape));
  }
  *out = tensor;
  return {};
}

}  // namespace attune
