// Keys and values of the positions a model has already seen, per layer, so decoding a new token
// costs one token's work. fp32 on the CPU backend.
#pragma once

#include <cstdint>
#include <vector>

namespace attune {

struct KvCache {
  // k[layer], v[layer]: [capacity, kv_heads · head_dim]; rows [0, length) are filled.
  std::vector<std::vector<float>> k, v;
  int64_t capacity = 0;
  int64_t length = 0;
  int64_t row_size = 0;

  KvCache(int64_t layers, int64_t capacity_, int64_t kv_heads, int64_t head_dim)
      : k(static_cast<size_t>(layers)), v(static_cast<size_t>(layers)), capacity(capacity_), row_size(kv_heads * head_dim) {
    for (auto& layer : k) layer.assign(static_cast<size_t>(capacity * row_size), 0.0f);
    for (auto& layer : v) layer.assign(static_cast<size_t>(capacity * row_size), 0.0f);
  }

  int64_t bytes() const { return 2 * static_cast<int64_t>(k.size()) * capacity * row_size * static_cast<int64_t>(sizeof(float)); }
};

}  // namespace attune
