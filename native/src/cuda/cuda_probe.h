#pragma once

#include <string>

#include "attune/system_info.h"

namespace attune {

// Which NVIDIA GPUs this build can use, and in plain words why not when none. Never fails or
// crashes, including on machines with no driver: cudart is linked statically and reports that as
// an error code. Built from cuda_probe.cu with nvcc, or cuda_probe_none.cpp without.
CudaInfo probe_cuda();

// Why `device` cannot run the engine's GPU code, in plain words, or "" when it can: a driver, a
// device of compute capability 7.5 or newer, and cuBLASLt. Runs no kernel and resets nothing.
std::string cuda_device_problem(int device);

// Held by everything that keeps GPU memory alive (a trainer, a generator): while one exists,
// probe_cuda() skips its test kernel, whose device reset would destroy that memory.
class GpuInUse {
 public:
  GpuInUse();
  ~GpuInUse();
  GpuInUse(const GpuInUse&) = delete;
  GpuInUse& operator=(const GpuInUse&) = delete;
};

}  // namespace attune
