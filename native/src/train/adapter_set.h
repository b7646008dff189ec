// The trainable part of a run: one LoRA (or DoRA) adapter per targeted linear layer, as PEFT lays
// them out — A [r, in], B [out, r] (and DoRA's magnitude m [out]) in fp32 — with their gradients
// named by their PEFT keys so files, checkpoints and the optimizer agree.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "adapter/lora.h"
#include "attune/status.h"
#include "model/llama.h"
#include "model/modules.h"

namespace attune::train {

using attune::kModuleCount;
using attune::Module;
using attune::module_from_name;
using attune::module_name;
using attune::module_path;

struct AdapterOptions {
  int64_t rank = 16;
  double alpha = 32;
  bool rslora = false;
  bool dora = false;
  float dropout = 0;
  std::array<bool, kModuleCount> targets{};  // which modules carry an adapter
};

// One trainable tensor: its PEFT key, shape, value and gradient (its AdamW moments live in the
// trainer's optimizer, at the same index).
struct Parameter {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> value, grad;
};

// The adapter on one module of one layer: indices into AdapterSet::parameters().
struct ModuleAdapter {
  int64_t layer = 0;
  Module module = Module::kQ;
  size_t a = 0, b = 0;
  size_t magnitude = SIZE_MAX;        // DoRA only
  std::vector<float> frozen_norm_sq;  // DoRA: ‖W‖² per row, cached (W never changes)
  std::vector<float> weight_norm;     // DoRA: ‖W + s·B·A‖ per row, refreshed after each update
};

// The dropout mask's seed for one (sequence, layer, module): the forward, its recomputation and the
// backward see one mask, and a resumed run the masks of an uninterrupted one (CPU and GPU alike).
uint64_t dropout_seed(uint64_t seed, uint64_t sample, int64_t layer, Module module);

class AdapterSet {
 public:
  // Fresh adapters as PEFT creates them: A ~ kaiming-uniform(a=√5) = U(−1/√in, 1/√in) from a
  // seeded generator, B = 0, DoRA m = the base weight's row norms.
  static Status create(LlamaModel& model, const AdapterOptions& options, uint64_t seed, cpu::ThreadPool& pool,
                       AdapterSet* out);

  const AdapterOptions& options() const { return options_; }
  float scaling() const { return scaling_; }
  std::vector<Parameter>& parameters() { return parameters_; }
  const std::vector<Parameter>& parameters() const { return parameters_; }
  const std::vector<ModuleAdapter>& modules() const { return adapters_; }
  // The adapter of (layer, module), or null when that module is not targeted.
  ModuleAdapter* find(int64_t layer, Module module);

  // Replaces a parameter's value by name (an init adapter or a checkpoint); the shape must match.
  Status set_value(const std::string& name, const std::vector<int64_t>& shape, const float* data);
  // After any change to A, B: recompute DoRA's ‖W + s·B·A‖ (detached: a constant for the step).
  void refresh_weight_norms(cpu::ThreadPool& pool, const LlamaModel& model);
  void zero_grads();

  adapter::FrozenLinear frozen(const LlamaModel& model, const ModuleAdapter& adapter) const;
  adapter::LoraParams lora(const ModuleAdapter& adapter) const;
  adapter::LoraGrads grads(ModuleAdapter& adapter);

 private:
  AdapterOptions options_;
  float scaling_ = 1;
  std::vector<Parameter> parameters_;
  std::vector<ModuleAdapter> adapters_;
};

}  // namespace attune::train
