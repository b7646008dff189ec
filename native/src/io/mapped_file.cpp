#include "io/mapped_file.h"

#include <system_error>
#include <utility>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#else
#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace attune {

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)), path_(std::move(other.path_)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    unmap();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    path_ = std::move(other.path_);
  }
  return *this;
}

MappedFile::~MappedFile() { unmap(); }

namespace {

Status os_error(const std::string& what, const std::string& path, const std::error_code& error) {
  return Status::invalid_argument("Could not " + what + " " + path + ": " + error.message());
}

}  // namespace

#ifdef _WIN32

void MappedFile::unmap() {
  if (data_ != nullptr) UnmapViewOfFile(data_);
  data_ = nullptr;
  size_ = 0;
}

namespace {

std::error_code last_error() { return {static_cast<int>(GetLastError()), std::system_category()}; }

// Paths are UTF-8 throughout Attune; Windows' wide APIs take UTF-16.
bool to_utf16(const std::string& utf8, std::wstring* out) {
  if (utf8.empty()) return true;
  const int length = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8.data(), static_cast<int>(utf8.size()), nullptr, 0);
  if (length <= 0) return false;
  out->resize(static_cast<size_t>(length));
  return MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8.data(), static_cast<int>(utf8.size()), out->data(), length) == length;
}

}  // namespace

Status MappedFile::open(const std::string& path, MappedFile* out) {
  std::wstring wide_path;
  if (!to_utf16(path, &wide_path)) return Status::invalid_argument("Could not open " + path + ": the path is not valid UTF-8");
  HANDLE file = CreateFileW(wide_path.c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_DELETE, nullptr, OPEN_EXISTING,
                            FILE_ATTRIBUTE_NORMAL, nullptr);
  if (file == INVALID_HANDLE_VALUE) return os_error("open", path, last_error());
  LARGE_INTEGER size;
  if (!GetFileSizeEx(file, &size)) {
    const std::error_code error = last_error();
    CloseHandle(file);
    return os_error("read the size of", path, error);
  }
  MappedFile mapped;
  mapped.path_ = path;
  // CreateFileMapping refuses empty files; an empty mapping needs none.
  if (size.QuadPart > 0) {
    HANDLE mapping = CreateFileMappingW(file, nullptr, PAGE_READONLY, 0, 0, nullptr);
    const std::error_code mapping_error = last_error();
    CloseHandle(file);
    if (mapping == nullptr) return os_error("map", path, mapping_error);
    // The view keeps the mapping (and the file) open after both handles are closed.
    void* view = MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, 0);
    const std::error_code view_error = last_error();
    CloseHandle(mapping);
    if (view == nullptr) return os_error("map", path, view_error);
    mapped.data_ = static_cast<const uint8_t*>(view);
    mapped.size_ = static_cast<size_t>(size.QuadPart);
  } else {
    CloseHandle(file);
  }
  *out = std::move(mapped);
  return {};
}

#else

void MappedFile::unmap() {
  if (data_ != nullptr) munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

namespace {

std::error_code last_error() { return {errno, std::generic_category()}; }

}  // namespace

Status MappedFile::open(const std::string& path, MappedFile* out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return os_error("open", path, last_error());
  struct stat info;
  if (fstat(fd, &info) != 0) {
    const std::error_code error = last_error();
    close(fd);
    return os_error("read the size of", path, error);
  }
  if (!S_ISREG(info.st_mode)) {
    close(fd);
    return Status::invalid_argument("Could not map " + path + ": it is not a regular file");
  }
  MappedFile mapped;
  mapped.path_ = path;
  // mmap refuses a length of 0; an empty mapping needs none.
  if (info.st_size > 0) {
    const size_t size = static_cast<size_t>(info.st_size);
    void* data = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const std::error_code error = last_error();
    close(fd);  // the mapping stays valid without the descriptor
    if (data == MAP_FAILED) return os_error("map", path, error);
    mapped.data_ = static_cast<const uint8_t*>(data);
    mapped.size_ = size;
  } else {
    close(fd);
  }
  *out = std::move(mapped);
  return {};
}

#endif

}  // namespace attune
