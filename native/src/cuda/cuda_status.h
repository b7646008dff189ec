// CUDA runtime errors as Status values, so no CUDA failure escapes as an exit or an exception.
// Every launcher in this folder ends with check_launch(): a launch that failed (no kernel image for
// this GPU, a bad configuration) is reported right there, by the kernel's name.
#pragma once

#include <cuda_runtime_api.h>

#include "attune/status.h"

namespace attune::cuda {

// "what: CUDA error 2 (cudaErrorMemoryAllocation): out of memory"
Status cuda_error(cudaError_t error, const char* what);

inline Status check(cudaError_t error, const char* what) { return error == cudaSuccess ? Status() : cuda_error(error, what); }

// The launch error of the kernel launched last on this thread (cudaGetLastError clears it).
inline Status check_launch(const char* kernel) { return check(cudaGetLastError(), kernel); }

}  // namespace attune::cuda

#define ATTUNE_CUDA_TRY(expr)               \
  do {                                      \
    ::attune::Status attune_status_ = (expr); \
    if (!attune_status_.ok()) return attune_status_; \
  } while (0)
