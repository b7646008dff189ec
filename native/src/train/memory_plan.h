// The memory a training run takes on the CPU backend, part by part, computed from the model's
// config and the adapter settings with the same sizes the trainer allocates (train/trainer.cpp):
// `attune train --dry-run` prints it, and the tests hold it to what a Trainer measures.
#pragma once

#include <cstdint>

#include "model/config.h"
#include "train/adapter_set.h"

namespace attune::train {

// Positions per lm_head chunk in the trainer's head: never [T, vocab] logits at once.
constexpr int64_t kLogitRows = 64;

// A decoder linear's input and output widths, as model/llama.cpp binds them.
struct ModuleDims {
  int64_t in = 0, out = 0;
};
ModuleDims module_dims(const ModelConfig& config, Module module);

// Bytes, by part.
struct MemoryPlan {
  int64_t weights = 0;      // the memory-mapped weight files, plus a 4-bit base's fp32 dequantized linears
  int64_t adapters = 0;     // adapter values (A, B, DoRA's magnitude) and DoRA's cached row norms
  int64_t gradients = 0;    // one gradient per adapter value
  int64_t optimizer = 0;    // AdamW's two moments per adapter value
  int64_t activations = 0;  // what one sequence's forward keeps for its backward
  int64_t workspace = 0;    // the head's buffers and the backward's scratch at their peak
  int64_t total = 0;        // the sum of the above
};

// The plan for training sequences of `seq_len` tokens. `weight_file_bytes` is the size of the
// model's safetensors files; `nf4_base` says the decoder linears are NF4 (a 4-bit checkpoint or
// QLoRA/QDoRA quantization at load), kept as fp32 dequantized copies.
MemoryPlan plan_training_memory(const ModelConfig& config, const AdapterOptions& adapters, int64_t seq_len,
                                bool gradient_checkpointing, bool nf4_base, int64_t weight_file_bytes);

}  // namespace attune::train
