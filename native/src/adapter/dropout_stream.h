// The random stream behind adapter::dropout_mask, shared by the CPU and the GPU (this header
// compiles in both), so the GPU draws exactly the CPU's masks: counter-based (element i depends
// only on the seed and its position), splitmix64 keyed by the seed, 24 bits per uniform.
#pragma once

#include <cstdint>

#include "host_device.h"

namespace attune::adapter {

// splitmix64's finalizer.
ATTUNE_HOST_DEVICE inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The stream's key for a mask seed.
ATTUNE_HOST_DEVICE inline uint64_t dropout_key(uint64_t seed) { return mix64(seed ^ 0x6A09E667F3BCC909ull); }

// U[0, 1) at `position` of the stream keyed by `key`: exactly representable (24 bits).
ATTUNE_HOST_DEVICE inline float dropout_uniform(uint64_t key, uint64_t position) {
  const uint64_t z = mix64(key + 0x9E3779B97F4A7C15ull * (position + 1));
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

}  // namespace attune::adapter
