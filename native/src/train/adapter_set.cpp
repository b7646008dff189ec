#include "train/adapter_set.h"

#include <cmath>

#include "adapter/dora.h"
#include "generate/sampler.h"

namespace attune::train {

namespace {

Parameter make_parameter(std::string name, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  Parameter p;
  p.name = std::move(name);
  p.shape = std::move(shape);
  for (auto* buffer : {&p.value, &p.grad}) buffer->assign(static_cast<size_t>(n), 0.0f);
  return p;
}
}  // namespace


Status AdapterSet::create(LlamaModel& model, const AdapterOptions& options, uint64_t seed, cpu::ThreadPool& pool,
                          AdapterSet* out) {
  if (options.rank < 1) return Status::invalid_argument("The adapter rank must be at least 1");
  if (!(options.dropout >= 0 && options.dropout < 1)) return Status::invalid_argument("Dropout must be from 0 to below 1");
  bool any = false;
  for (bool t : options.targets) any = any || t;
  if (!any) return Status::invalid_argument("No target modules: choose at least one of q, k, v, o, gate, up, down");

  AdapterSet set;
  set.options_ = options;
  set.scaling_ = adapter::lora_scaling(options.alpha, options.rank, options.rslora);
  Rng rng(seed);
  const int64_t layers = model.config().num_hidden_layers;
  for (int64_t layer = 0; layer < layers; ++layer) {
    for (int m = 0; m < kModuleCount; ++m) {
      if (!options.targets[static_cast<size_t>(m)]) continue;
      const Module module = static_cast<Module>(m);
      const LinearWeight& w = model.linear(layer, module);
      const std::string prefix = "base_model.model.model.layers." + std::to_string(layer) + "." + module_path(module) + ".";
      ModuleAdapter adapter;
      adapter.layer = layer;
      adapter.module = module;
      adapter.a = set.parameters_.size();
      set.parameters_.push_back(make_parameter(prefix + "lora_A.weight", {options.rank, w.in}));
      adapter.b = set.parameters_.size();
      set.parameters_.push_back(make_parameter(prefix + "lora_B.weight", {w.out, options.rank}));
      // kaiming_uniform_(a=√5) on [r, in]: bound = √(6 / ((1 + a²)·fan_in)) = 1/√in.
      const float bound = 1.0f / std::sqrt(static_cast<float>(w.in));
      for (float& v : set.parameters_[adapter.a].value) v = (2.0f * rng.uniform() - 1.0f) * bound;
      if (options.dora) {
        adapter.magnitude = set.parameters_.size();
        set.parameters_.push_back(make_parameter(prefix + "lora_magnitude_vector", {w.out}));
        adapter.frozen_norm_sq.resize(static_cast<size_t>(w.out));
        adapter.weight_norm.resize(static_cast<size_t>(w.out));
      }
      set.adapters_.push_back(std::move(adapter));
    }
  }
  if (options.dora) {
    for (ModuleAdapter& a : set.adapters_) {
      const adapter::FrozenLinear base = set.frozen(model, a);
      adapter::frozen_row_norms_sq(pool, base, a.frozen_norm_sq.data());
      // m starts as ‖W + s·B·A‖ = ‖W‖ (B = 0), computed directly as PEFT does.
      adapter::dora_weight_norm_direct(pool, base, set.lora(a), set.parameters_[a.magnitude].value.data());
    }
  }
  *out = std::move(set);
  return {};
}

ModuleAdapter* AdapterSet::find(int64_t layer, Module module) {
  for (ModuleAdapter& a : adapters_) {
    if (a.layer == layer && a.module == module) return &a;
  }
  return nullptr;
}

Status AdapterSet::set_value(const std::string& name, const std::vector<int64_t>& shape, const float* data) {
  for (Parameter& p : parameters_) {
    if (p.name != name) continue;
    if (p.shape != shape) {
      return Status::invalid_argument("Adapter tensor \"" + name + "\" has shape " + shape_to_string(shape) +
                                      " but this model and rank need " + shape_to_string(p.shape));
    }
    std::copy(data, data + p.value.size(), p.value.begin());
    return {};
  }
  return Status::invalid_argument("Adapter tensor \"" + name + "\" does not belong to this adapter's layers and targets");
}

adapter::FrozenLinear AdapterSet::frozen(const LlamaModel& model, const ModuleAdapter& a) const {
  const LinearWeight& w = model.linear(a.layer, a.module);
  return {w.data, w.type, w.bias.empty() ? nullptr : w.bias.data(), w.in, w.out};
}

adapter::LoraParams AdapterSet::lora(const ModuleAdapter& a) const {
  return {parameters_[a.a].value.data(), parameters_[a.b].value.data(), options_.rank, scaling_};
}

adapter::LoraGrads AdapterSet::grads(ModuleAdapter& a) { return {parameters_[a.a].grad.data(), parameters_[a.b].grad.data()}; }

void AdapterSet::refresh_weight_norms(cpu::ThreadPool& pool, const LlamaModel& model) {
  if (!options_.dora) return;
  for (ModuleAdapter& a : adapters_) {
    adapter::dora_weight_norm(pool, frozen(model, a), lora(a), a.frozen_norm_sq.data(), a.weight_norm.data());
  }
}

void AdapterSet::zero_grads() {
  for (Parameter& p : parameters_) std::fill(p.grad.begin(), p.grad.end(), 0.0f);
}

uint64_t dropout_seed(uint64_t seed, uint64_t sample, int64_t layer, Module module) {
  uint64_t h = seed ^ 0x9E3779B97F4A7C15ull;
  for (uint64_t v : {sample, static_cast<uint64_t>(layer), static_cast<uint64_t>(module)}) {
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  }
  return h;
}

}  // namespace attune::train
