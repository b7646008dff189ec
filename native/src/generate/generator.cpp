#include "generate/generator.h"

#include <algorithm>
#include <chrono>

namespace attune {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "length";
}

namespace {
double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

Status generate(LlamaModel& model, const std::vector<int32_t>& prompt, const GenerationParams& params,
                const CancelToken& cancel, const TokenCallback& on_token, GenerationResult* result) {
  const ModelConfig& c = model.config();
  if (prompt.empty()) return Status::invalid_argument("The prompt is empty");
  if (params.max_new_tokens < 0) return Status::invalid_argument("max_new_tokens must not be negative");
  *result = GenerationResult();

  std::unique_ptr<KvCache> cache;
  Status status = model.new_cache(static_cast<int64_t>(prompt.size()) + std::max<int64_t>(params.max_new_tokens, 1), &cache);
  if (!status.ok()) return status;
  ForwardWorkspace ws;
  std::vector<float> hidden(static_cast<size_t>(prompt.size()) * static_cast<size_t>(c.hidden_size));
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));
  std::vector<int32_t> context = prompt;
  Sampler sampler(params.sampling);

  auto start = std::chrono::steady_clock::now();
  status = model.forward(prompt.data(), static_cast<int64_t>(prompt.size()), *cache, ws, hidden.data());
  if (!status.ok()) return status;
  // Only the last position's logits are needed to continue.
  model.logits(hidden.data() + (prompt.size() - 1) * static_cast<size_t>(c.hidden_size), 1, logits.data());
  result->prefill_ms = ms_since(start);

  start = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < params.max_new_tokens; ++step) {
    if (cancel.cancelled()) {
      result->finish_reason = FinishReason::kCancelled;
      break;
    }
    const int32_t token = sampler.sample(logits.data(), c.vocab_size, context);
    result->tokens.push_back(token);
    context.push_back(token);
    on_token(token);
    if (std::find(params.stop_ids.begin(), params.stop_ids.end(), token) != params.stop_ids.end()) {
      result->finish_reason = FinishReason::kStop;
      break;
    }
    if (step + 1 == params.max_new_tokens) break;
    status = model.forward(&token, 1, *cache, ws, hidden.data());
    if (!status.ok()) return status;
    model.logits(hidden.data(), 1, logits.data());
  }
  result->decode_ms = ms_since(start);
  return {};
}

}  // namespace attune
