// A whole file mapped read-only into memory: weights are read in place, never copied, and the OS
// pages them in and out as needed. Move-only; the mapping lives as long as the object.
//
// A mapping reflects the file: if another process truncates the file while it is mapped, reading
// the lost pages faults (SIGBUS on POSIX). Model files are not edited while Attune runs; we accept it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "attune/status.h"

namespace attune {

class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  // Maps the regular file at `path` (UTF-8). The error names the path and the OS's reason.
  // An empty file maps to data() == nullptr, size() == 0.
  static Status open(const std::string& path, MappedFile* out);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::string_view text() const { return {reinterpret_cast<const char*>(data_), size_}; }
  const std::string& path() const { return path_; }

 private:
  void unmap();

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace attune
