#include "cuda/cuda_probe.h"

namespace attune {

CudaInfo probe_cuda() {
  CudaInfo info;
  // CMake says why the backend was left out (no nvcc, or turned off).
  info.reason = ATTUNE_NO_CUDA_REASON;
  return info;
}

std::string cuda_device_problem(int) { return ATTUNE_NO_CUDA_REASON; }

GpuInUse::GpuInUse() = default;
GpuInUse::~GpuInUse() = default;

}  // namespace attune
