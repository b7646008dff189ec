#include "cuda/device_memory.h"

#include <cstdio>
#include <utility>

#include "cuda/cuda_status.h"

namespace attune::cuda {

Status device_memory_info(DeviceMemoryInfo* out) {
  size_t free_bytes = 0, total_bytes = 0;
  ATTUNE_CUDA_TRY(check(cudaMemGetInfo(&free_bytes, &total_bytes), "reading the GPU's free memory"));
  out->free_bytes = static_cast<int64_t>(free_bytes);
  out->total_bytes = static_cast<int64_t>(total_bytes);
  return {};
}

std::string format_gb(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GB", static_cast<double>(bytes) / 1e9);
  return text;
}

Status out_of_memory_error(const std::string& what, int64_t needed) {
  DeviceMemoryInfo info;
  std::string free_part = "the GPU's free memory could not be read";
  if (device_memory_info(&info).ok()) {
    free_part = format_gb(info.free_bytes) + " of the GPU's " + format_gb(info.total_bytes) + " is free";
  }
  return Status::out_of_memory("The GPU ran out of memory: " + what + " needs " + format_gb(needed) + " and " + free_part +
                               ". Close other programs that use the GPU, or use less memory: a shorter sequence "
                               "length, a smaller batch, gradient checkpointing, or a 4-bit base (QLoRA)");
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

Status DeviceBuffer::allocate(int64_t bytes, const std::string& what) {
  if (bytes < 0) return Status::invalid_argument("A GPU buffer for " + what + " was given a negative size");
  release();
  if (bytes == 0) return {};
  const cudaError_t error = cudaMalloc(&data_, static_cast<size_t>(bytes));
  if (error == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it so the next CUDA call does not report it again
    data_ = nullptr;
    return out_of_memory_error(what, bytes);
  }
  if (error != cudaSuccess) {
    data_ = nullptr;
    return cuda_error(error, ("allocating GPU memory for " + what).c_str());
  }
  bytes_ = bytes;
  return {};
}

void DeviceBuffer::release() {
  if (data_) cudaFree(data_);
  data_ = nullptr;
  bytes_ = 0;
}

}  // namespace attune::cuda
