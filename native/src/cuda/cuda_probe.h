#pragma once

#include "attune/system_info.h"

namespace attune {

// Which NVIDIA GPUs this build can use, and in plain words why not when none. Never fails or
// crashes, including on machines with no driver: cudart is linked statically and reports that as
// an error code. Built from cuda_probe.cu with nvcc, or cuda_probe_none.cpp without.
CudaInfo probe_cuda();

}  // namespace attune
