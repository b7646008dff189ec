// A model folder's weights: `model.safetensors`, or the shards that `model.safetensors.index.json`
// names in its weight_map ({name: shard file}). Each file is mapped and validated; the index must
// agree with the shards, and no tensor may be in two files. Lookups name the file in their errors.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "attune/status.h"
#include "attune/tensor_view.h"
#include "io/safetensors.h"

namespace attune {

constexpr const char* kSingleWeightsFile = "model.safetensors";
constexpr const char* kWeightsIndexFile = "model.safetensors.index.json";

class ModelWeights {
 public:
  // Loads model.safetensors when present (as transformers does), else the sharded set.
  static Status open(const std::string& model_dir, ModelWeights* out);

  // The tensor called `name`, or nullptr.
  const TensorView* find(std::string_view name) const;
  // The tensor called `name` with exactly `shape`; otherwise an error naming the tensor, its file
  // and both shapes (or saying it is missing).
  Status require(std::string_view name, const std::vector<int64_t>& shape, const TensorView** out) const;
  // The path of the file holding `name`, or "" when no file does.
  const std::string& file_of(std::string_view name) const;
  // "<dir>: the model's weights have no tensor \"<name>\""
  Status missing(std::string_view name) const;

  const std::string& dir() const { return dir_; }
  const std::vector<SafetensorsFile>& files() const { return files_; }
  size_t tensor_count() const { return locations_.size(); }

 private:
  struct Location {
    size_t file;
    size_t tensor;
  };

  Status add_file(SafetensorsFile file);

  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::unordered_map<std::string, Location> locations_;
};

// `dir`/`name`, with one separator.
std::string join_path(const std::string& dir, const std::string& name);

}  // namespace attune
