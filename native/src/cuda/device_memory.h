// GPU memory owned by objects, and the out-of-memory error a person can act on: a failed
// allocation says what it was for, how much it needed and how much the GPU had free, and leaves
// the process usable (the failure is cleared, nothing else is freed).
#pragma once

#include <cstdint>
#include <string>

#include "attune/status.h"

namespace attune::cuda {

struct DeviceMemoryInfo {
  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
};

// The current device's free and total memory.
Status device_memory_info(DeviceMemoryInfo* out);

// "2.15 GB" (decimal units, as the app shows sizes)
std::string format_gb(int64_t bytes);

// The error for an allocation of `needed` bytes for `what` that did not fit.
Status out_of_memory_error(const std::string& what, int64_t needed);

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // `bytes` of device memory for `what` (named in the error when it does not fit). Replaces any
  // memory this buffer held.
  Status allocate(int64_t bytes, const std::string& what);
  void release();

  void* data() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  int64_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  int64_t bytes_ = 0;
};

}  // namespace attune::cuda
