// Adapter training on an NVIDIA GPU: train::Trainer's forward and backward (train/trainer.h), op
// for op and buffer for buffer, on the CUDA kernels and cuBLASLt. Activations in the compute
// precision (bf16, the fast mode, or fp32, which reproduces the CPU trainer to rounding and is how
// the GPU path is checked); frozen weights on the GPU in that precision; adapter master weights,
// gradients and AdamW moments in fp32. Dropout masks are the CPU's, drawn on the GPU.
#pragma once

#include <memory>

#include "attune/status.h"
#include "model/llama.h"
#include "train/adapter_set.h"
#include "train/trainer.h"

namespace attune::cuda {

enum class Precision { kF32, kBF16 };

struct CudaTrainerOptions {
  train::TrainerOptions trainer;
  Precision precision = Precision::kBF16;
  int device = 0;
};

class CudaTrainer {
 public:
  // Copies the model's frozen weights and `adapters` (their values; gradients start at zero and
  // AdamW's state empty) to the GPU. Out of memory: an error with the needed and free bytes.
  static Status create(LlamaModel& model, const train::AdapterSet& adapters, const CudaTrainerOptions& options,
                       std::unique_ptr<CudaTrainer>* out);
  virtual ~CudaTrainer() = default;

  // As train::Trainer::accumulate.
  virtual Status accumulate(const int32_t* ids, const int32_t* labels, int64_t T, float loss_scale, uint64_t sample,
                            double* loss_sum, int64_t* targets) = 0;
  // As train::Trainer::optimizer_step.
  virtual Status optimizer_step(double lr, double max_grad_norm, float* grad_norm) = 0;
  // Copies the adapters' current values and gradients into `adapters` (created like the ones given
  // to create()), for checkpoints, saving and tests. DoRA's norms there are left as they were: the
  // GPU keeps its own, and a CPU pass over every weight per checkpoint would cost more than the step.
  virtual Status download(train::AdapterSet* adapters) = 0;
  // Replaces the adapters' values with those of `adapters` (an init adapter, a checkpoint).
  virtual Status upload(const train::AdapterSet& adapters) = 0;
  // AdamW's state of parameter `index` (train::AdamW's layout), read from or written to the GPU.
  virtual Status optimizer_state(size_t index, train::AdamWState* out) = 0;
  virtual Status restore_optimizer_state(size_t index, const train::AdamWState& state) = 0;
  // GPU memory this trainer holds now: weights, adapters, optimizer, activations and scratch.
  virtual int64_t device_bytes() const = 0;
};

}  // namespace attune::cuda
