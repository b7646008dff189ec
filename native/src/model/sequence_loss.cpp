#include "model/sequence_loss.h"

#include <algorithm>
#include <vector>


namespace attune {

namespace {
constexpr int64_t kLogitRows = 64;  // positions per logits chunk: 64 × vocab floats
}

Status sequence_loss(LlamaModel& model, const int32_t* ids, const int32_t* labels, int64_t T, const CancelToken& cancel,
                     SequenceLoss* out) {
  const ModelConfig& c = model.config();
  *out = SequenceLoss();
  if (T < 2) return {};  // nothing to predict
  for (int64_t t = 0; t < T; ++t) {
    if (labels[t] != -100 && (labels[t] < 0 || labels[t] >= c.vocab_size)) {
      return Status::invalid_argument("Label " + std::to_string(labels[t]) + " at position " + std::to_string(t) +
                                      " is neither a token id nor -100");
    }
  }
  std::unique_ptr<KvCache> cache;
  Status status = model.new_cache(T, &cache);
  if (!status.ok()) return status;
  ForwardWorkspace ws;
  std::vector<float> hidden(static_cast<size_t>(T * c.hidden_size));
  status = model.forward(ids, T, *cache, ws, hidden.data());
  if (!status.ok()) return status;

  std::vector<float> logits(static_cast<size_t>(kLogitRows * c.vocab_size));
  for (int64_t start = 0; start < T - 1; start += kLogitRows) {
    if (cancel.cancelled()) return Status::cancelled();
    const int64_t rows = std::min(kLogitRows, T - 1 - start);
    model.logits(hidden.data() + start * c.hidden_size, rows, logits.data());
    out->sum += model.backend().cross_entropy_sum(logits.data(), labels + start + 1, rows, c.vocab_size, &out->count);
  }
  return {};
}

}  // namespace attune
