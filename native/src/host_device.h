// Marks functions that both compilers build: where the GPU must reproduce the CPU bit for bit,
// host and device code share one definition instead of two copies that could drift apart.
#pragma once

#if defined(__CUDACC__)
#define ATTUNE_HOST_DEVICE __host__ __device__
#else
#define ATTUNE_HOST_DEVICE
#endif
