// main() of the CUDA tests: skips (exit 77, which ctest reports as skipped) when this machine has
// no usable NVIDIA GPU, else runs every test and prints the table of comparisons.
#include <cuda_runtime_api.h>

#include <cstdio>

#include "check.h"

namespace attune_test::gpu {
void print_table();
}

int main() {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess || count == 0) {
    std::printf("SKIPPED: no usable NVIDIA GPU here (%s)\n",
                error != cudaSuccess ? cudaGetErrorString(error) : "no devices");
    return 77;
  }
  cudaDeviceProp props{};
  cudaGetDeviceProperties(&props, 0);
  std::printf("GPU: %s, compute capability %d.%d\n", props.name, props.major, props.minor);
  const int result = attune_test::run_registered_tests();
  attune_test::gpu::print_table();
  return result;
}
