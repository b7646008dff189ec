// `attune-engine bench-inference`: prefill throughput and decode latency of a model folder on the
// CPU backend, for bench/ to compare side by side with transformers in the same run.
#include "bench_inference.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_util.h"
#include "generate/generator.h"
#include "model/llama.h"

namespace attune {

namespace {

struct BenchOptions {
  std::string model;
  unsigned threads = 1;
  int64_t prompt_tokens = 512;
  int64_t decode_tokens = 64;
  int repeats = 3;
};

bool parse(int argc, char** argv, BenchOptions* options) {
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--model") options->model = value;
    else if (flag == "--threads") options->threads = static_cast<unsigned>(std::atoi(value));
    else if (flag == "--prompt-tokens") options->prompt_tokens = std::atoll(value);
    else if (flag == "--decode-tokens") options->decode_tokens = std::atoll(value);
    else if (flag == "--repeats") options->repeats = std::atoi(value);
    else return false;
  }
  return !options->model.empty() && options->threads > 0 && options->prompt_tokens > 0 && options->decode_tokens > 1 &&
         options->repeats > 0;
}

}  // namespace

int run_bench_inference(int argc, char** argv) {
  BenchOptions options;
  if (!parse(argc, argv, &options)) {
    std::fputs(
        "usage: attune-engine bench-inference --model DIR [--threads N] [--prompt-tokens 512] [--decode-tokens 64] "
        "[--repeats 3]\n",
        stderr);
    return 2;
  }
  std::unique_ptr<LlamaModel> model;
  Status status = LlamaModel::load(options.model, options.threads, &model);
  if (!status.ok()) return fail(status);
  const ModelConfig& c = model->config();

  // A fixed pseudo-random prompt: the speed of a dense model does not depend on the ids.
  std::vector<int32_t> prompt(static_cast<size_t>(options.prompt_tokens));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 13) % static_cast<size_t>(c.vocab_size));

  // Prefill: one forward pass over the prompt and the last position's logits, as generation does.
  std::vector<double> prefill_s;
  ForwardWorkspace ws;
  std::vector<float> hidden(static_cast<size_t>(options.prompt_tokens * c.hidden_size));
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));
  for (int r = 0; r <= options.repeats; ++r) {  // the first run warms caches and is not counted
    std::unique_ptr<KvCache> cache;
    status = model->new_cache(options.prompt_tokens, &cache);
    if (!status.ok()) return fail(status);
    const auto start = std::chrono::steady_clock::now();
    status = model->forward(prompt.data(), options.prompt_tokens, *cache, ws, hidden.data());
    if (!status.ok()) return fail(status);
    model->logits(hidden.data() + (options.prompt_tokens - 1) * c.hidden_size, 1, logits.data());
    if (r > 0) prefill_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  // Decode: greedy tokens after a short prompt, timed without the prefill.
  GenerationParams params;
  params.max_new_tokens = options.decode_tokens;
  CancelToken never;
  std::vector<double> decode_ms;
  for (int r = 0; r <= options.repeats; ++r) {
    GenerationResult result;
    status = generate(*model, std::vector<int32_t>(prompt.begin(), prompt.begin() + std::min<int64_t>(16, options.prompt_tokens)),
                      params, never, [](int32_t) {}, &result);
    if (!status.ok()) return fail(status);
    if (r > 0) decode_ms.push_back(result.decode_ms / static_cast<double>(result.tokens.size() - 1));
  }
  std::printf(
      "{\"impl\":\"attune\",\"prefill_tokens_per_s\":%.2f,\"decode_ms_per_token\":%.3f,\"threads\":%u,"
      "\"prompt_tokens\":%lld,\"decode_tokens\":%lld}\n",
      static_cast<double>(options.prompt_tokens) / median(prefill_s), median(decode_ms), options.threads,
      static_cast<long long>(options.prompt_tokens), static_cast<long long>(options.decode_tokens));
  return 0;
}

}  // namespace attune
