// The GPU memory a training run takes (cuda::CudaTrainer), part by part, from the model's config
// and the adapter settings with the same sizes the GPU trainer allocates (cuda/cuda_trainer.cpp):
// `attune train --dry-run` on a GPU prints it, and tests/test_cuda_trainer.cpp holds it to what a
// CudaTrainer holds. Plain arithmetic: planning needs no GPU. The CUDA context and cuBLASLt's own
// state (a few hundred MB, by driver) are not in it.
#pragma once

#include <cstdint>

#include "model/config.h"
#include "train/adapter_set.h"
#include "train/memory_plan.h"

namespace attune::train {

// Positions per lm_head chunk in the GPU trainer's head.
constexpr int64_t kGpuLogitRows = 256;
// cuBLASLt's workspace, held by the GPU trainer.
constexpr int64_t kGpuGemmWorkspace = 32ll << 20;

struct GpuPlanInputs {
  int64_t seq_len = 0;
  bool gradient_checkpointing = true;
  int64_t element_bytes = 2;    // the compute type: 2 (bf16) or 4 (fp32)
  int64_t embedding_bytes = 2;  // the embedding table's file dtype (kept as stored)
};

MemoryPlan plan_gpu_training_memory(const ModelConfig& config, const AdapterOptions& adapters, const GpuPlanInputs& inputs);

}  // namespace attune::train
