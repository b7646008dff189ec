#include "temp_dir.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

namespace attune_test {

TempDir::TempDir() {
  // Random names: ctest may run several test executables at once.
  std::random_device random;
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("attune-test-" + std::to_string(random()) + "-" + std::to_string(now));
  std::filesystem::create_directories(dir);
  path_ = dir.string();
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::write(const std::string& name, const std::string& bytes) const {
  const std::string file = path_ + "/" + name;
  std::ofstream out(file, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return file;
}

}  // namespace attune_test
