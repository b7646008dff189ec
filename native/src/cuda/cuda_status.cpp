#include "cuda/cuda_status.h"

#include <string>

namespace attune::cuda {

Status cuda_error(cudaError_t error, const char* what) {
  std::string message = std::string(what) + ": CUDA error " + std::to_string(static_cast<int>(error)) + " (" +
                        cudaGetErrorName(error) + "): " + cudaGetErrorString(error);
  if (error == cudaErrorMemoryAllocation) return Status::out_of_memory(std::move(message));
  return Status::internal(std::move(message));
}

}  // namespace attune::cuda
