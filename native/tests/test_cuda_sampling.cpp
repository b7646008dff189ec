// GPU sampling (cuda/ops_sampling.h) against the CPU Sampler (generate/sampler.h): for many rows
// of logits (V = 7, 1000, 151936; flat, peaked, and rounded to 0.5 so that many logits tie) and
// each parameter set (greedy; temperature with top-k; top-p; a repetition penalty over a context
// with repeated and out-of-range ids, greedy and sampled; a top-k above the 2048-token gather
// limit with top-p; everything at once), the GPU picks the CPU's token when it is given the
// uniforms the Sampler's Rng draws, one per non-greedy sample, through the device step counter.
// Also checked: the logits the GPU leaves (penalized in place) equal the CPU's bit for bit, and the
// step counter advanced once per non-greedy sample.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/ops_sampling.h"
#include "cuda_test.h"
#include "generate/sampler.h"
#include "status_matchers.h"

namespace {

using attune_test::succeeds;
using namespace attune_test::gpu;
namespace cuda = attune::cuda;

struct ParamSet {
  const char* name;
  float temperature;
  int64_t top_k;
  float top_p;
  float penalty;
};

const ParamSet kParamSets[] = {
    {"greedy", 0.0f, 0, 1.0f, 1.0f},
    {"T=0.7 top-k 40", 0.7f, 40, 1.0f, 1.0f},
    {"T=1 top-p 0.9", 1.0f, 0, 0.9f, 1.0f},
    {"penalty 1.3 T=0.8", 0.8f, 0, 1.0f, 1.3f},
    {"penalty 1.3 greedy", 0.0f, 0, 1.0f, 1.3f},
    {"T=0.7 top-k 3000 top-p 0.95", 0.7f, 3000, 0.95f, 1.0f},
    {"T=1.5 top-k 50 top-p 0.8 penalty 1.1", 1.5f, 50, 0.8f, 1.1f},
};

// Row r of a test: four kinds of logits, in turn.
std::vector<float> make_logits(int64_t V, int64_t r, uint64_t seed) {
  const size_t n = static_cast<size_t>(V);
  switch (r % 4) {
    case 0:  // flat: the top-p set is most of the vocabulary
      return random_values(n, seed, -1.0f, 1.0f);
    case 1:  // spread: probability concentrated in the top few percent
      return random_values(n, seed, -10.0f, 10.0f);
    case 2: {  // multiples of 0.5: long runs of equal logits, ordered by id
      std::vector<float> v = random_values(n, seed, -8.0f, 8.0f);
      for (float& x : v) x = std::round(x * 2.0f) / 2.0f;
      return v;
    }
    default: {  // a few clear winners over a flat floor, some of them equal
      std::vector<float> v = random_values(n, seed, -3.0f, 0.0f);
      const std::vector<float> picks = random_values(8, seed + 1, 0.0f, 1.0f);
      for (size_t k = 0; k < picks.size(); ++k) {
        const size_t at = static_cast<size_t>(picks[k] * static_cast<float>(V)) % n;
        v[at] = k < 3 ? 6.0f : 4.0f + static_cast<float>(k) * 0.25f;
      }
      return v;
    }
  }
}

// A context of 64 ids with repeats, including ids outside [0, V) that both sides must skip.
std::vector<int32_t> make_context(int64_t V, uint64_t seed) {
  const std::vector<float> u = random_values(64, seed, 0.0f, 1.0f);
  std::vector<int32_t> ids;
  for (size_t i = 0; i < u.size(); ++i) {
    // Draw from a narrow range for half the ids so they repeat even for a large V.
    const int64_t range = i % 2 == 0 ? V : (V < 50 ? V : 50);
    ids.push_back(static_cast<int32_t>(static_cast<int64_t>(u[i] * static_cast<float>(range)) % range));
  }
  ids.push_back(-1);
  ids.push_back(static_cast<int32_t>(V));
  ids.push_back(static_cast<int32_t>(V + 7));
  ids.push_back(ids[0]);
  return ids;
}

void check_sampling(int64_t V, const ParamSet& set, int64_t rows, uint64_t seed) {
  attune::SamplingParams params;
  params.temperature = set.temperature;
  params.top_k = set.top_k;
  params.top_p = set.top_p;
  params.repetition_penalty = set.penalty;
  params.seed = seed;
  attune::Sampler sampler(params);
  // The Sampler's Rng, seeded alike: it draws one uniform per non-greedy sample, in order.
  attune::Rng rng(seed);
  std::vector<float> uniforms(static_cast<size_t>(rows));
  for (float& u : uniforms) u = rng.uniform();

  cuda::DecodeSamplingParams gpu_params;
  gpu_params.temperature = set.temperature;
  gpu_params.top_k = set.top_k;
  gpu_params.top_p = set.top_p;
  gpu_params.repetition_penalty = set.penalty;

  DeviceArray<float> d_uniforms(uniforms);
  DeviceArray<int32_t> d_step(std::vector<float>{0.0f});
  DeviceArray<int32_t> d_tokens(static_cast<size_t>(rows));
  DeviceArray<float> d_logits(static_cast<size_t>(V));
  const bool with_context = set.penalty != 1.0f;

  std::vector<int32_t> want(static_cast<size_t>(rows));
  double logit_mismatches = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<float> logits = make_logits(V, r, seed * 1000 + static_cast<uint64_t>(r));
    const std::vector<int32_t> context =
        with_context ? make_context(V, seed * 1000 + 500 + static_cast<uint64_t>(r)) : std::vector<int32_t>();
    std::vector<float> cpu_logits = logits;
    want[static_cast<size_t>(r)] = sampler.sample(cpu_logits.data(), V, context);

    cudaMemcpy(d_logits.get(), logits.data(), logits.size() * sizeof(float), cudaMemcpyHostToDevice);
    DeviceArray<int32_t> d_context(std::vector<float>(context.begin(), context.end()));
    DeviceArray<int32_t> d_len(std::vector<float>{static_cast<float>(context.size())});
    CHECK(succeeds(cuda::sample_token(d_logits.get(), V, with_context ? d_context.get() : nullptr,
                                      with_context ? d_len.get() : nullptr, gpu_params, d_uniforms.get(), d_step.get(),
                                      d_tokens.get() + r, nullptr)));
    expect_no_cuda_error();
    const std::vector<float> gpu_logits = d_logits.download();
    for (size_t i = 0; i < gpu_logits.size(); ++i) {
      // Bit for bit (NaN never occurs here): the penalty is one IEEE multiply or divide.
      if (gpu_logits[i] != cpu_logits[i]) {
        logit_mismatches += 1;
        break;
      }
    }
  }

  const std::vector<float> got = d_tokens.download();
  double token_mismatches = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t g = static_cast<int32_t>(got[static_cast<size_t>(r)]);
    if (g != want[static_cast<size_t>(r)]) {
      token_mismatches += 1;
      std::printf("  V=%lld %s row %lld: GPU token %d, CPU token %d (u = %.9g)\n", static_cast<long long>(V), set.name,
                  static_cast<long long>(r), g, want[static_cast<size_t>(r)],
                  static_cast<double>(uniforms[static_cast<size_t>(r)]));
    }
  }
  const double draws = set.temperature > 0.0f ? static_cast<double>(rows) : 0.0;
  const double step_error = std::fabs(static_cast<double>(d_step.download()[0]) - draws);

  const std::string shape = "V=" + std::to_string(V) + " " + set.name + ", " + std::to_string(rows) + " rows";
  // error = how many rows picked a different token: 0 of them allowed.
  expect_close("sample_token (ids ≠ CPU)", "f32", shape, token_mismatches, 0.0,
               d_tokens.guards_intact() && d_logits.guards_intact());
  expect_close("sample_token logits after (rows ≠ CPU)", "f32", shape, logit_mismatches, 0.0, true);
  expect_close("sample_token step counter", "i32", shape, step_error, 0.0, d_step.guards_intact());
}

TEST(sample_token_matches_cpu_sampler) {
  uint64_t seed = 1;
  for (int64_t V : {7, 1000, 151936}) {
    const int64_t rows = V > 100000 ? 12 : 40;
    for (const ParamSet& set : kParamSets) check_sampling(V, set, rows, seed++);
  }
}

TEST(sample_token_without_step_counter_uses_the_first_uniform) {
  // step null: u = uniforms[0], nothing advanced. top-k 1 must pick the argmax whatever u is.
  const std::vector<float> logits = make_logits(1000, 1, 77);
  std::vector<float> cpu_logits = logits;
  attune::SamplingParams params;
  params.temperature = 1.0f;
  params.top_k = 1;
  attune::Sampler sampler(params);
  const int32_t want = sampler.sample(cpu_logits.data(), 1000, {});
  DeviceArray<float> d_logits(logits);
  DeviceArray<float> d_uniforms(std::vector<float>{0.999f});
  DeviceArray<int32_t> d_token(1);
  cuda::DecodeSamplingParams gpu_params;
  gpu_params.temperature = 1.0f;
  gpu_params.top_k = 1;
  CHECK(succeeds(cuda::sample_token(d_logits.get(), 1000, nullptr, nullptr, gpu_params, d_uniforms.get(), nullptr,
                                    d_token.get(), nullptr)));
  expect_no_cuda_error();
  const double error = static_cast<int32_t>(d_token.download()[0]) == want ? 0.0 : 1.0;
  expect_close("sample_token top-k 1 (ids ≠ CPU)", "f32", "V=1000", error, 0.0, d_token.guards_intact());
}

TEST(sample_token_rejects_bad_arguments) {
  DeviceArray<float> logits(16);
  DeviceArray<int32_t> token(1);
  cuda::DecodeSamplingParams params;
  CHECK(!cuda::sample_token(logits.get(), 0, nullptr, nullptr, params, nullptr, nullptr, token.get(), nullptr).ok());
  params.repetition_penalty = 1.2f;  // without a context
  CHECK(!cuda::sample_token(logits.get(), 16, nullptr, nullptr, params, nullptr, nullptr, token.get(), nullptr).ok());
  params.repetition_penalty = 1.0f;
  params.temperature = 0.5f;  // without uniforms
  CHECK(!cuda::sample_token(logits.get(), 16, nullptr, nullptr, params, nullptr, nullptr, token.get(), nullptr).ok());
}

}  // namespace
