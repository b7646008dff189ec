#include "golden_files.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace attune_test {

bool read_json(const std::string& path, attune::json::Value* out) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  const attune::Status status = attune::json::parse(text.str(), out);
  if (!status.ok()) std::printf("  %s: %s\n", path.c_str(), status.message().c_str());
  return status.ok();
}

std::vector<std::string> golden_model_dirs() {
  namespace fs = std::filesystem;
  std::vector<std::string> dirs;
  const fs::path root = ATTUNE_GOLDEN_DIR;
  if (!fs::is_directory(root)) return dirs;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (fs::exists(entry.path() / "reference.json")) dirs.push_back(entry.path().string());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

std::vector<int32_t> ints(const attune::json::Value& array) {
  std::vector<int32_t> out;
  for (const attune::json::Value& v : array.as_array()) out.push_back(static_cast<int32_t>(v.as_integer()));
  return out;
}

}  // namespace attune_test
