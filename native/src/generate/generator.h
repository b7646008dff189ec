// Text generation with a KV cache: the prompt in one forward pass (prefill), then one token at a
// time (decode), streaming each token to the caller, stopping at a stop token, the token limit,
// or a cancel between tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "attune/cancel.h"
#include "attune/status.h"
#include "generate/sampler.h"
#include "model/llama.h"

namespace attune {

struct GenerationParams {
  SamplingParams sampling;
  int64_t max_new_tokens = 128;
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these
};

enum class FinishReason { kStop, kLength, kCancelled };
const char* finish_reason_name(FinishReason reason);

struct GenerationResult {
  std::vector<int32_t> tokens;  // the new tokens, a final stop token included
  FinishReason finish_reason = FinishReason::kLength;
  double prefill_ms = 0;
  double decode_ms = 0;  // all decode steps together
};

// Called with each new token as soon as it is chosen.
using TokenCallback = std::function<void(int32_t token)>;

Status generate(LlamaModel& model, const std::vector<int32_t>& prompt, const GenerationParams& params,
                const CancelToken& cancel, const TokenCallback& on_token, GenerationResult* result);

}  // namespace attune
