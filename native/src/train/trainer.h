// Adapter training on the CPU: forward and backward of a Llama-family model through its frozen
// weights and trainable LoRA/DoRA adapters, one sequence at a time, gradients accumulated over the
// micro-batches of an optimizer step. The frozen base gets no weight gradients.
#pragma once

#include <memory>
#include <vector>

#include "attune/status.h"
#include "cpu/thread_pool.h"
#include "model/llama.h"
#include "train/adamw.h"
#include "train/adapter_set.h"
#include "train/memory_plan.h"

namespace attune::train {

struct TrainerOptions {
  // Keep only each layer's input and recompute the layer during the backward: less memory for
  // about one more forward pass of time.
  bool gradient_checkpointing = true;
  uint64_t seed = 42;  // dropout masks
  AdamWOptions adamw;  // lr is given per step
};

// A sequence the trainers accept: at least two tokens, ids in the vocabulary, labels ids or -100.
Status check_training_sequence(const int32_t* ids, const int32_t* labels, int64_t T, int64_t vocab);

class Trainer {
 public:
  Trainer(LlamaModel& model, AdapterSet adapters, unsigned threads, const TrainerOptions& options);

  AdapterSet& adapters() { return adapters_; }
  const AdapterSet& adapters() const { return adapters_; }
  cpu::ThreadPool& pool() { return pool_; }

  // Forward and backward of one sequence ids[T] with labels[T] (labels[t] = the id expected at
  // position t, −100 where not a target; the loss at position t scores labels[t+1], as the
  // reference's shift). Gradients are scaled by loss_scale (1 / the step's target count) and added
  // to the parameters' grads. `sample` numbers the sequence within the run (it seeds dropout).
  // Returns the unscaled Σ cross-entropy and the number of targets.
  Status accumulate(const int32_t* ids, const int32_t* labels, int64_t T, float loss_scale, uint64_t sample,
                    double* loss_sum, int64_t* targets);

  // Ends an optimizer step: clips the accumulated gradients to max_grad_norm (0: no clipping),
  // applies AdamW at `lr`, clears the gradients and refreshes DoRA's norms. *grad_norm gets the
  // total gradient norm before clipping.
  Status optimizer_step(double lr, double max_grad_norm, float* grad_norm);

  AdamW& optimizer() { return optimizer_; }
  const TrainerOptions& options() const { return options_; }

  // What this trainer holds, by part, as memory_plan.h counts it: the model's weights, the
  // adapters, their gradients and AdamW moments (capacities of their buffers), and the
  // per-sequence activations and workspace at their peak over the accumulate() calls so far.
  MemoryPlan allocated() const;
  // plan_training_memory() for this trainer's model and settings at `seq_len` tokens.
  MemoryPlan plan(int64_t seq_len) const;

 private:
  struct Layer;  // one decoder layer's saved activations
  void forward_layer(int64_t l, const float* x_in, int64_t T, uint64_t sample, Layer& acts, float* x_out);
  void backward_layer(int64_t l, Layer& acts, int64_t T, uint64_t sample, float* dx);

  LlamaModel& model_;
  AdapterSet adapters_;
  cpu::ThreadPool pool_;
  TrainerOptions options_;
  AdamW optimizer_;
  std::vector<int32_t> positions_;
  int64_t peak_activations_ = 0, peak_workspace_ = 0;  // bytes, measured in accumulate()
  int64_t backward_scratch_ = 0;                         // bytes backward_layer's locals held, this sequence
};

}  // namespace attune::train
