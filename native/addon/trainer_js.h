// JS class Trainer: adapters being trained on a loaded Model. Made by `createTrainer(model,
// options)`, on the CPU or (options.device "cuda") the GPU. accumulate() and step() run off the JS
// thread; the model is busy (no generation on it) while they run. Tensors cross to JS as
// Float32Array copies, for files and checkpoints.
#pragma once

#include <napi.h>

#include <memory>

#include "cuda/cuda_trainer.h"
#include "model_js.h"
#include "train/trainer.h"

namespace attune_addon {

class TrainerJs : public Napi::ObjectWrap<TrainerJs> {
 public:
  static Napi::Function define_class(Napi::Env env);
  explicit TrainerJs(const Napi::CallbackInfo& info);

 private:
  Napi::Value parameters(const Napi::CallbackInfo& info);
  void set_parameter(const Napi::CallbackInfo& info);
  Napi::Value optimizer_state(const Napi::CallbackInfo& info);
  void set_optimizer_state(const Napi::CallbackInfo& info);
  Napi::Value accumulate(const Napi::CallbackInfo& info);
  Napi::Value step(const Napi::CallbackInfo& info);
  Napi::Value memory_plan(const Napi::CallbackInfo& info);

  std::shared_ptr<LoadedModel> loaded_;  // keeps the frozen weights alive
  // The CPU trainer; on the GPU it keeps the host copy of the adapters (parameters(), files).
  std::shared_ptr<attune::train::Trainer> trainer_;
  std::shared_ptr<attune::cuda::CudaTrainer> gpu_;  // set when training on the GPU
};

// createTrainer(model: Model, options): Trainer
Napi::Value create_trainer_js(const Napi::CallbackInfo& info);

}  // namespace attune_addon
