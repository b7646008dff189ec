// Picks the next token from a row of logits, with the reference's order of operations:
// repetition penalty, then temperature, top-k and top-p; temperature 0 is greedy (argmax).
#pragma once

#include <cstdint>
#include <vector>

namespace attune {

struct SamplingParams {
  float temperature = 0.0f;         // 0 = greedy, deterministic
  float top_p = 1.0f;               // keep the most likely tokens whose probabilities reach top_p
  int64_t top_k = 0;                // 0 = no limit
  float repetition_penalty = 1.0f;  // > 1 discourages tokens already in the context
  uint64_t seed = 0;
};

// xoshiro256**: small, fast, and the same sequence on every platform for a given seed.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  float uniform();  // [0, 1)

 private:
  uint64_t s_[4];
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

  // logits[V] is modified in place (penalty, temperature); `context` holds every token id so far.
  int32_t sample(float* logits, int64_t V, const std::vector<int32_t>& context);

 private:
  SamplingParams params_;
  Rng rng_;
  std::vector<int32_t> order_;
  std::vector<float> probs_;
};

}  // namespace attune
