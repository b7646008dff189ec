#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

namespace attune {

namespace {
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

Rng::Rng(uint64_t seed) {
  for (uint64_t& word : s_) word = splitmix64(seed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

float Rng::uniform() { return static_cast<float>(next() >> 40) * 0x1.0p-24f; }

int32_t Sampler::sample(float* logits, int64_t V, const std::vector<int32_t>& context) {
  // logits: [V]
  if (params_.repetition_penalty != 1.0f) {
    // Each distinct token once: a negative logit is made more negative, a positive one smaller.
    std::unordered_set<int32_t> seen(context.begin(), context.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= V) continue;
      float& l = logits[id];
      l = l < 0 ? l * params_.repetition_penalty : l / params_.repetition_penalty;
    }
  }
  if (params_.temperature <= 0.0f) {
    return static_cast<int32_t>(std::max_element(logits, logits + V) - logits);
  }

  order_.resize(static_cast<size_t>(V));
  std::iota(order_.begin(), order_.end(), 0);
  const int64_t k = params_.top_k > 0 ? std::min(params_.top_k, V) : V;
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (k < V) {
    std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), by_logit);
    order_.resize(static_cast<size_t>(k));
  } else {
    std::sort(order_.begin(), order_.end(), by_logit);
  }

  // Softmax over the kept tokens at this temperature.
  probs_.resize(order_.size());
  const float max_logit = logits[order_[0]];
  double total = 0;
  for (size_t i = 0; i < order_.size(); ++i) {
    probs_[i] = std::exp((logits[order_[i]] - max_logit) / params_.temperature);
    total += probs_[i];
  }
  // Top-p: the smallest prefix of the sorted tokens whose probability reaches top_p (at least one).
  size_t kept = order_.size();
  if (params_.top_p < 1.0f) {
    double cumulative = 0;
    for (size_t i = 0; i < order_.size(); ++i) {
      cumulative += probs_[i] / total;
      if (cumulative >= params_.top_p) {
        kept = i + 1;
        break;
      }
    }
  }
  double kept_total = 0;
  for (size_t i = 0; i < kept; ++i) kept_total += probs_[i];
  const double target = static_cast<double>(rng_.uniform()) * kept_total;
  double cumulative = 0;
  for (size_t i = 0; i < kept; ++i) {
    cumulative += probs_[i];
    if (target < cumulative) return order_[i];
  }
  return order_[kept - 1];
}

}  // namespace attune
