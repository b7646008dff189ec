// The engine against transformers' own outputs on the golden models (test/golden): logits of a
// forward pass, the causal-LM loss with and without masked labels, and greedy generation with the
// KV cache. Every fixture folder found is checked; none found is a failure, not a pass.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "check.h"
#include "golden_files.h"
#include "generate/generator.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/llama.h"
#include "model/sequence_loss.h"

namespace fs = std::filesystem;
using attune::json::Value;

namespace {

bool read_reference(const std::string& dir, Value* out) { return attune_test::read_json(dir + "/reference.json", out); }

bool close_relative(double actual, double expected, double tolerance) {
  return std::fabs(actual - expected) <= tolerance * std::max(1.0, std::fabs(expected));
}

std::unique_ptr<attune::LlamaModel> load(const std::string& dir) {
  std::unique_ptr<attune::LlamaModel> model;
  const attune::Status status = attune::LlamaModel::load(dir, 2, &model);
  if (!status.ok()) std::fprintf(stderr, "%s: %s\n", dir.c_str(), status.message().c_str());
  return model;
}

}  // namespace

TEST(golden_fixtures_exist) {
  // Regenerate with: bash scripts/python-env.sh && .venv/bin/python test/golden/make_golden.py
  CHECK(attune_test::golden_model_dirs().size() >= 6);
}

TEST(logits_match_transformers) {
  for (const std::string& dir : attune_test::golden_model_dirs()) {
    Value ref;
    auto model = load(dir);
    CHECK(model != nullptr && read_reference(dir, &ref));
    if (!model) continue;
    attune::SafetensorsFile tensors;
    CHECK(attune::SafetensorsFile::open(dir + "/reference.safetensors", &tensors).ok());
    const attune::TensorView* expected = tensors.find("logits");
    CHECK(expected != nullptr);
    if (!expected) continue;

    const std::vector<int32_t> ids = attune_test::ints(*ref.find("forward")->find("input_ids"));
    const int64_t T = static_cast<int64_t>(ids.size());
    const int64_t V = model->config().vocab_size;
    CHECK(expected->shape == (std::vector<int64_t>{T, V}));
    std::unique_ptr<attune::KvCache> cache;
    CHECK(model->new_cache(T, &cache).ok());
    attune::ForwardWorkspace ws;
    std::vector<float> hidden(static_cast<size_t>(T * model->config().hidden_size)), logits(static_cast<size_t>(T * V));
    CHECK(model->forward(ids.data(), T, *cache, ws, hidden.data()).ok());
    model->logits(hidden.data(), T, logits.data());

    // Within 1e-4 relative to each logit's size (absolute below 1).
    const float* want = reinterpret_cast<const float*>(expected->data);
    double worst = 0;
    for (int64_t i = 0; i < T * V; ++i) {
      const double error = std::fabs(static_cast<double>(logits[static_cast<size_t>(i)]) - want[i]);
      worst = std::max(worst, error / std::max(1.0, std::fabs(static_cast<double>(want[i]))));
    }
    std::printf("  %-14s logits worst relative error %.2e\n", fs::path(dir).filename().c_str(), worst);
    CHECK(worst <= 1e-4);
  }
}

TEST(loss_matches_transformers) {
  for (const std::string& dir : attune_test::golden_model_dirs()) {
    Value ref;
    auto model = load(dir);
    CHECK(model != nullptr && read_reference(dir, &ref));
    if (!model) continue;
    const Value& forward = *ref.find("forward");
    const std::vector<int32_t> ids = attune_test::ints(*forward.find("input_ids"));
    attune::CancelToken never;

    attune::SequenceLoss loss;
    CHECK(attune::sequence_loss(*model, ids.data(), ids.data(), static_cast<int64_t>(ids.size()), never, &loss).ok());
    CHECK(loss.count == static_cast<int64_t>(ids.size()) - 1);
    CHECK(close_relative(loss.sum / static_cast<double>(loss.count), forward.find("loss")->as_number(), 1e-5));

    std::vector<int32_t> labels = ids;
    for (const Value& p : forward.find("masked_label_positions")->as_array()) labels[static_cast<size_t>(p.as_integer())] = -100;
    CHECK(attune::sequence_loss(*model, ids.data(), labels.data(), static_cast<int64_t>(ids.size()), never, &loss).ok());
    CHECK(close_relative(loss.sum / static_cast<double>(loss.count), forward.find("loss_masked")->as_number(), 1e-5));
  }
}

TEST(greedy_generation_matches_transformers) {
  for (const std::string& dir : attune_test::golden_model_dirs()) {
    Value ref;
    auto model = load(dir);
    CHECK(model != nullptr && read_reference(dir, &ref));
    if (!model) continue;
    for (const Value& case_ : ref.find("greedy")->as_array()) {
      attune::GenerationParams params;
      params.max_new_tokens = case_.find("max_new_tokens")->as_integer();
      attune::CancelToken never;
      attune::GenerationResult result;
      std::vector<int32_t> streamed;
      CHECK(attune::generate(*model, attune_test::ints(*case_.find("prompt_ids")), params, never,
                             [&](int32_t token) { streamed.push_back(token); }, &result)
                .ok());
      CHECK(result.tokens == attune_test::ints(*case_.find("new_ids")));
      CHECK(streamed == result.tokens);
      CHECK(result.finish_reason == attune::FinishReason::kLength);
    }
  }
}

TEST(generation_stops_at_a_stop_token_and_on_cancel) {
  const std::vector<std::string> dirs = attune_test::golden_model_dirs();
  CHECK(!dirs.empty());
  if (dirs.empty()) return;
  Value ref;
  auto model = load(dirs[0]);
  CHECK(model != nullptr && read_reference(dirs[0], &ref));
  if (!model) return;
  const Value& case_ = ref.find("greedy")->as_array()[0];
  const std::vector<int32_t> expected = attune_test::ints(*case_.find("new_ids"));
  attune::GenerationParams params;
  params.max_new_tokens = 16;
  params.stop_ids = {expected[3]};
  attune::CancelToken never;
  attune::GenerationResult result;
  CHECK(attune::generate(*model, attune_test::ints(*case_.find("prompt_ids")), params, never, [](int32_t) {}, &result).ok());
  CHECK(result.finish_reason == attune::FinishReason::kStop);
  CHECK(result.tokens.back() == expected[3]);

  attune::CancelToken cancel;
  params.stop_ids.clear();
  int seen = 0;
  CHECK(attune::generate(*model, attune_test::ints(*case_.find("prompt_ids")), params, cancel,
                         [&](int32_t) {
                           if (++seen == 2) cancel.cancel();
                         },
                         &result)
            .ok());
  CHECK(result.finish_reason == attune::FinishReason::kCancelled);
  CHECK(result.tokens.size() == 2);
}

TEST(a_prompt_fed_in_pieces_gives_the_same_logits) {
  // Continuing a cached sequence with several tokens at once (the past > 0 path of attention).
  for (const std::string& dir : attune_test::golden_model_dirs()) {
    Value ref;
    auto model = load(dir);
    CHECK(model != nullptr && read_reference(dir, &ref));
    if (!model) continue;
    const std::vector<int32_t> ids = attune_test::ints(*ref.find("forward")->find("input_ids"));
    const int64_t T = static_cast<int64_t>(ids.size()), H = model->config().hidden_size;
    attune::ForwardWorkspace ws;
    std::vector<float> whole(static_cast<size_t>(T * H)), pieces(static_cast<size_t>(T * H));
    std::unique_ptr<attune::KvCache> cache;
    CHECK(model->new_cache(T, &cache).ok());
    CHECK(model->forward(ids.data(), T, *cache, ws, whole.data()).ok());
    CHECK(model->new_cache(T, &cache).ok());
    const int64_t split[] = {0, 7, 8, T};  // a block, a single token, then the rest
    for (int i = 0; i + 1 < 4; ++i) {
      CHECK(model->forward(ids.data() + split[i], split[i + 1] - split[i], *cache, ws, pieces.data() + split[i] * H).ok());
    }
    double worst = 0;
    for (size_t i = 0; i < whole.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(whole[i] - pieces[i])));
    CHECK(worst < 1e-4);
  }
}
