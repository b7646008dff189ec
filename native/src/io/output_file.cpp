#include "io/output_file.h"

#include <algorithm>
#include <exception>
#include <filesystem>
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
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace attune {

namespace {

// One write call moves at most this much: POSIX allows short writes, macOS refuses more than
// INT_MAX bytes at once, and Windows' WriteFile takes a 32-bit length.
constexpr size_t kMaxChunk = size_t{1} << 30;

Status os_error(const std::string& what, const std::string& path, const std::error_code& error) {
  return Status::invalid_argument("Could not " + what + " " + path + ": " + error.message());
}

}  // namespace

OutputFile::OutputFile(OutputFile&& other) noexcept : path_(std::move(other.path_)) {
#ifdef _WIN32
  handle_ = std::exchange(other.handle_, nullptr);
#else
  fd_ = std::exchange(other.fd_, -1);
#endif
}

OutputFile& OutputFile::operator=(OutputFile&& other) noexcept {
  if (this != &other) {
    close_quietly();
#ifdef _WIN32
    handle_ = std::exchange(other.handle_, nullptr);
#else
    fd_ = std::exchange(other.fd_, -1);
#endif
    path_ = std::move(other.path_);
  }
  return *this;
}

OutputFile::~OutputFile() { close_quietly(); }

#ifdef _WIN32

namespace {

std::error_code last_error() { return {static_cast<int>(GetLastError()), std::system_category()}; }

bool to_utf16(const std::string& utf8, std::wstring* out) {
  if (utf8.empty()) return true;
  const int length = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8.data(), static_cast<int>(utf8.size()), nullptr, 0);
  if (length <= 0) return false;
  out->resize(static_cast<size_t>(length));
  return MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8.data(), static_cast<int>(utf8.size()), out->data(), length) == length;
}

}  // namespace

bool OutputFile::is_open() const { return handle_ != nullptr; }

void OutputFile::close_quietly() {
  if (handle_ != nullptr) CloseHandle(static_cast<HANDLE>(handle_));
  handle_ = nullptr;
}

Status OutputFile::create(const std::string& path, OutputFile* out) {
  std::wstring wide_path;
  if (!to_utf16(path, &wide_path)) return Status::invalid_argument("Could not create " + path + ": the path is not valid UTF-8");
  HANDLE handle = CreateFileW(wide_path.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (handle == INVALID_HANDLE_VALUE) return os_error("create", path, last_error());
  OutputFile file;
  file.handle_ = handle;
  file.path_ = path;
  *out = std::move(file);
  return {};
}

Status OutputFile::reserve(uint64_t) { return {}; }

Status OutputFile::write_at(uint64_t offset, const void* data, size_t size) {
  if (handle_ == nullptr) return Status::internal("OutputFile::write_at: " + path_ + " is not open");
  const auto* bytes = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const DWORD chunk = static_cast<DWORD>(std::min(size, kMaxChunk));
    OVERLAPPED at = {};
    at.Offset = static_cast<DWORD>(offset & 0xFFFFFFFFu);
    at.OffsetHigh = static_cast<DWORD>(offset >> 32);
    DWORD written = 0;
    if (!WriteFile(static_cast<HANDLE>(handle_), bytes, chunk, &written, &at)) return os_error("write to", path_, last_error());
    if (written == 0) return Status::invalid_argument("Could not write to " + path_ + ": the disk accepted no more data");
    bytes += written;
    offset += written;
    size -= written;
  }
  return {};
}

Status OutputFile::sync_and_close() {
  if (handle_ == nullptr) return Status::internal("OutputFile::sync_and_close: " + path_ + " is not open");
  HANDLE handle = static_cast<HANDLE>(std::exchange(handle_, nullptr));
  if (!FlushFileBuffers(handle)) {
    const std::error_code error = last_error();
    CloseHandle(handle);
    return os_error("flush", path_, error);
  }
  if (!CloseHandle(handle)) return os_error("close", path_, last_error());
  return {};
}

#else

namespace {

std::error_code last_error() { return {errno, std::generic_category()}; }

}  // namespace

bool OutputFile::is_open() const { return fd_ >= 0; }

void OutputFile::close_quietly() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status OutputFile::create(const std::string& path, OutputFile* out) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return os_error("create", path, last_error());
  OutputFile file;
  file.fd_ = fd;
  file.path_ = path;
  *out = std::move(file);
  return {};
}

Status OutputFile::reserve(uint64_t size) {
  if (fd_ < 0) return Status::internal("OutputFile::reserve: " + path_ + " is not open");
#ifdef __linux__
  if (size == 0) return {};
  int result;
  do {
    result = ::fallocate(fd_, 0, 0, static_cast<off_t>(size));
  } while (result != 0 && errno == EINTR);
  // File systems without fallocate (EOPNOTSUPP and kin) simply get written without a reservation.
  if (result != 0 && (errno == ENOSPC || errno == EFBIG || errno == EDQUOT)) {
    return os_error("reserve " + std::to_string(size) + " bytes for", path_, last_error());
  }
#else
  (void)size;
#endif
  return {};
}

Status OutputFile::write_at(uint64_t offset, const void* data, size_t size) {
  if (fd_ < 0) return Status::internal("OutputFile::write_at: " + path_ + " is not open");
  const auto* bytes = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const size_t chunk = std::min(size, kMaxChunk);
    const ssize_t written = ::pwrite(fd_, bytes, chunk, static_cast<off_t>(offset));
    if (written < 0) {
      if (errno == EINTR) continue;
      return os_error("write to", path_, last_error());
    }
    if (written == 0) return Status::invalid_argument("Could not write to " + path_ + ": the disk accepted no more data");
    bytes += written;
    offset += static_cast<uint64_t>(written);
    size -= static_cast<size_t>(written);
  }
  return {};
}

Status OutputFile::sync_and_close() {
  if (fd_ < 0) return Status::internal("OutputFile::sync_and_close: " + path_ + " is not open");
  const int fd = std::exchange(fd_, -1);
  int result;
  do {
    result = ::fsync(fd);
  } while (result != 0 && errno == EINTR);
  if (result != 0) {
    const std::error_code error = last_error();
    ::close(fd);
    return os_error("flush", path_, error);
  }
  // close() reports delayed write errors on some file systems (NFS); EINTR leaves the fd closed.
  if (::close(fd) != 0 && errno != EINTR) return os_error("close", path_, last_error());
  return {};
}

#endif

Status write_new_file(const std::string& path, std::string_view bytes) {
  OutputFile file;
  Status status = OutputFile::create(path, &file);
  if (status.ok()) status = file.write_at(0, bytes.data(), bytes.size());
  if (status.ok()) status = file.sync_and_close();
  if (!status.ok()) {
    file = OutputFile();
    remove_file(path);
  }
  return status;
}

void remove_file(const std::string& path) {
  try {
    std::error_code ignored;
    std::filesystem::remove(std::filesystem::u8path(path), ignored);
  } catch (const std::exception&) {
    // An invalid UTF-8 path names nothing we created.
  }
}

}  // namespace attune
