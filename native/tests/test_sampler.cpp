// The sampler's rules, one by one: greedy, repetition penalty, temperature, top-k, top-p, seeds.
#include <cmath>
#include <vector>

#include "check.h"
#include "generate/sampler.h"

using attune::Sampler;
using attune::SamplingParams;

namespace {
std::vector<float> logits_for(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

// How often each token is drawn in `n` samples.
std::vector<double> frequencies(const SamplingParams& params, const std::vector<float>& logits, int n) {
  Sampler sampler(params);
  std::vector<double> counts(logits.size(), 0);
  for (int i = 0; i < n; ++i) {
    std::vector<float> row = logits;
    counts[static_cast<size_t>(sampler.sample(row.data(), static_cast<int64_t>(row.size()), {}))] += 1.0 / n;
  }
  return counts;
}
}  // namespace

TEST(greedy_takes_the_largest_logit_first_index_on_ties) {
  Sampler sampler(SamplingParams{});
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 2.0f};
  CHECK(sampler.sample(logits.data(), 4, {}) == 1);
}

TEST(repetition_penalty_divides_positive_and_multiplies_negative_logits_once) {
  SamplingParams params;
  params.repetition_penalty = 2.0f;
  Sampler sampler(params);
  std::vector<float> logits = {3.0f, -1.0f, 2.0f};
  // Token 0 (3 → 1.5) and token 1 (-1 → -2) were seen, twice each: penalised once.
  CHECK(sampler.sample(logits.data(), 3, {0, 1, 0, 1}) == 2);
  CHECK(logits[0] == 1.5f && logits[1] == -2.0f && logits[2] == 2.0f);
}

TEST(sampling_follows_the_softmax) {
  SamplingParams params;
  params.temperature = 1.0f;
  params.seed = 7;
  const std::vector<double> f = frequencies(params, logits_for({0.5, 0.3, 0.2}), 20000);
  CHECK(std::fabs(f[0] - 0.5) < 0.02 && std::fabs(f[1] - 0.3) < 0.02 && std::fabs(f[2] - 0.2) < 0.02);
}

TEST(temperature_sharpens_the_distribution) {
  SamplingParams params;
  params.temperature = 0.5f;  // probabilities ∝ p² → 25/38, 9/38, 4/38
  params.seed = 3;
  const std::vector<double> f = frequencies(params, logits_for({0.5, 0.3, 0.2}), 20000);
  CHECK(std::fabs(f[0] - 25.0 / 38) < 0.02 && std::fabs(f[2] - 4.0 / 38) < 0.02);
}

TEST(top_k_keeps_only_the_k_most_likely) {
  SamplingParams params;
  params.temperature = 1.0f;
  params.top_k = 2;
  params.seed = 11;
  const std::vector<double> f = frequencies(params, logits_for({0.5, 0.3, 0.2}), 20000);
  CHECK(f[2] == 0.0);
  CHECK(std::fabs(f[0] - 0.625) < 0.02);
}

TEST(top_p_keeps_the_smallest_set_reaching_p) {
  SamplingParams params;
  params.temperature = 1.0f;
  params.top_p = 0.75f;  // 0.5 alone is short of 0.75; 0.5 + 0.3 reaches it
  params.seed = 5;
  const std::vector<double> f = frequencies(params, logits_for({0.5, 0.3, 0.2}), 20000);
  CHECK(f[2] == 0.0);
  CHECK(std::fabs(f[0] - 0.625) < 0.02);
  params.top_p = 0.4f;  // the top token alone reaches it
  const std::vector<double> only_top = frequencies(params, logits_for({0.5, 0.3, 0.2}), 1000);
  CHECK(only_top[1] == 0.0 && only_top[2] == 0.0);
}

TEST(the_same_seed_gives_the_same_choices) {
  SamplingParams params;
  params.temperature = 1.0f;
  params.seed = 42;
  const std::vector<float> logits = logits_for({0.25, 0.25, 0.25, 0.25});
  Sampler a(params), b(params);
  int differences_from_other_seed = 0;
  params.seed = 43;
  Sampler c(params);
  for (int i = 0; i < 100; ++i) {
    std::vector<float> ra = logits, rb = logits, rc = logits;
    const int32_t ta = a.sample(ra.data(), 4, {});
    CHECK(ta == b.sample(rb.data(), 4, {}));
    differences_from_other_seed += ta != c.sample(rc.data(), 4, {});
  }
  CHECK(differences_from_other_seed > 20);
}
