#include "model/rope_table.h"

#include <cmath>

namespace attune {

std::vector<float> rope_inverse_frequencies(const RopeParams& p) {
  const int64_t half = p.dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  const float base = static_cast<float>(p.theta);
  for (int64_t i = 0; i < half; ++i) {
    // 1 / base^(2i/dim), evaluated in fp32 like the reference's tensor ops.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(p.dim);
    inv[static_cast<size_t>(i)] = 1.0f / std::pow(base, exponent);
  }
  if (p.scaling == RopeParams::Scaling::kLinear) {
    for (float& f : inv) f = f / static_cast<float>(p.factor);
  } else if (p.scaling == RopeParams::Scaling::kLlama3) {
    // Long wavelengths are slowed by `factor`, short ones kept, the band between blended.
    const double old_len = static_cast<double>(p.original_max_positions);
    const double low_wavelen = old_len / p.low_freq_factor;
    const double high_wavelen = old_len / p.high_freq_factor;
    for (float& f : inv) {
      const double wavelen = 2 * M_PI / f;
      if (wavelen > low_wavelen) {
        f = static_cast<float>(f / p.factor);
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_len / wavelen - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
        f = static_cast<float>((1 - smooth) * f / p.factor + smooth * f);
      }
    }
  }
  return inv;
}

void RopeTable::ensure(int64_t positions) {
  if (positions <= positions_) return;
  const int64_t half = half_dim();
  cos_.resize(static_cast<size_t>(positions * half));
  sin_.resize(static_cast<size_t>(positions * half));
  for (int64_t pos = positions_; pos < positions; ++pos) {
    for (int64_t i = 0; i < half; ++i) {
      // The angle is rounded to fp32 first, as the reference multiplies in fp32; cos/sin of it
      // are then correctly rounded.
      const float angle = static_cast<float>(pos) * inv_freq_[static_cast<size_t>(i)];
      cos_[static_cast<size_t>(pos * half + i)] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin_[static_cast<size_t>(pos * half + i)] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
  positions_ = positions;
}

}  // namespace attune
