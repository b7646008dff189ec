// A new file being written: created exclusively (an existing file is never overwritten), written
// at explicit offsets (so a writer may fill it in any order), flushed to disk, closed. Errors name
// the path and the OS's reason; a full disk (ENOSPC) or a file-size limit reads as such.
// Move-only; destroying an unfinished file closes it and leaves it on disk: removing a half-written
// file is the caller's decision (remove_file below).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "attune/status.h"

namespace attune {

class OutputFile {
 public:
  OutputFile() = default;
  OutputFile(OutputFile&& other) noexcept;
  OutputFile& operator=(OutputFile&& other) noexcept;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile();

  // Creates `path` (UTF-8), which must not exist yet.
  static Status create(const std::string& path, OutputFile* out);

  // Reserves `size` bytes on disk where the file system can (Linux fallocate), so that a disk too
  // small for the whole file fails here, before any work; elsewhere a no-op.
  Status reserve(uint64_t size);
  // Writes `size` bytes at byte `offset` (all of them, or an error).
  Status write_at(uint64_t offset, const void* data, size_t size);
  // fsync, then close. The file is complete on disk once this returns ok.
  Status sync_and_close();

  bool is_open() const;
  const std::string& path() const { return path_; }

 private:
  void close_quietly();

#ifdef _WIN32
  void* handle_ = nullptr;
#else
  int fd_ = -1;
#endif
  std::string path_;
};

// Writes `bytes` into the new file `path` and syncs it.
Status write_new_file(const std::string& path, std::string_view bytes);

// Removes the file at `path` if there is one; errors are ignored (cleanup after a failure).
void remove_file(const std::string& path);

}  // namespace attune
