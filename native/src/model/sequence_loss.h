// The causal-LM loss of one sequence, as the reference computes it: logits at position t are
// scored against labels[t+1]; −100 labels are ignored. Logits are made a chunk of positions at a
// time, so a long sequence never holds [T, vocab] floats at once.
#pragma once

#include <cstdint>

#include "attune/cancel.h"
#include "attune/status.h"
#include "model/llama.h"

namespace attune {

struct SequenceLoss {
  double sum = 0;     // Σ cross-entropy over the scored positions
  int64_t count = 0;  // how many positions were scored
};

// ids, labels: [T]
Status sequence_loss(LlamaModel& model, const int32_t* ids, const int32_t* labels, int64_t T, const CancelToken& cancel,
                     SequenceLoss* out);

}  // namespace attune
