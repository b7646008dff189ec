// RoPE's cos/sin tables, computed the way the reference does (fp32 inverse frequencies, fp32
// angle = position · inv_freq), with Llama 3's frequency scaling when the config asks for it.
#pragma once

#include <cstdint>
#include <vector>

namespace attune {

struct RopeParams {
  double theta = 10000.0;
  int64_t dim = 0;  // the rotated size: head_dim
  enum class Scaling { kNone, kLinear, kLlama3 } scaling = Scaling::kNone;
  double factor = 1.0;                 // linear and llama3
  double low_freq_factor = 1.0;        // llama3
  double high_freq_factor = 4.0;       // llama3
  int64_t original_max_positions = 0;  // llama3
};

// inv_freq[dim/2] as the reference computes it, scaling included.
std::vector<float> rope_inverse_frequencies(const RopeParams& params);

class RopeTable {
 public:
  explicit RopeTable(const RopeParams& params) : inv_freq_(rope_inverse_frequencies(params)) {}

  // Makes rows [0, positions) available; grows, never shrinks.
  void ensure(int64_t positions);
  const float* cos() const { return cos_.data(); }
  const float* sin() const { return sin_.data(); }
  int64_t half_dim() const { return static_cast<int64_t>(inv_freq_.size()); }

 private:
  std::vector<float> inv_freq_;
  std::vector<float> cos_, sin_;  // [positions, dim/2]
  int64_t positions_ = 0;
};

}  // namespace attune
