// The golden training cases of test/golden/training (made by transformers + peft): loading a case,
// its adapter options and initial adapter, and running its micro-batches through a trainer (the
// CPU's train::Trainer or the GPU's cuda::CudaTrainer, which share accumulate()).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "check.h"
#include "golden_files.h"
#include "io/json.h"
#include "model/llama.h"
#include "train/adamw.h"
#include "train/adapter_set.h"

namespace attune_test {

using attune::json::Value;

extern const std::string kTraining;  // the folder of the cases

struct Case {
  Value spec, batches, trajectory;
  std::unique_ptr<attune::LlamaModel> model;
};

// Reads case `name` and loads its base (NF4-quantized for QLoRA/QDoRA cases).
bool load_case(const std::string& name, Case* c);
attune::train::AdapterOptions options_of(const Value& spec);
// The case's optimizer settings (betas, eps, weight decay).
attune::train::AdamWOptions adamw_of(const Value& spec);
// The adapter set of a case, with the values of its init_adapter.
bool initial_adapters(const std::string& name, Case& c, attune::cpu::ThreadPool& pool, attune::train::AdapterSet* out);

// max |a − b| / max |b| over a tensor: a normalised error that does not blow up near zero.
double normalised_error(const std::vector<float>& a, const float* b);
// The worst normalised error of the parameters (or their gradients) against the same-named
// tensors of a safetensors file; every parameter must be in the file.
double worst_error(const attune::train::AdapterSet& adapters, const std::string& file, bool gradients);

// Runs micro-batches [first, first + grad_accum) of a case, adding their gradients to the
// trainer's; returns the step's loss (Σ cross-entropy / the step's targets) and its targets.
template <typename Trainer>
double accumulate_step(Case& c, Trainer& trainer, size_t first, uint64_t* sample, int64_t* targets) {
  const int64_t accum = c.spec.find("grad_accum")->as_integer();
  const auto& micro = c.batches.find("micro_batches")->as_array();
  *targets = 0;
  for (int64_t i = 0; i < accum; ++i) *targets += micro[first + static_cast<size_t>(i)].find("targets")->as_integer();
  double loss = 0;
  for (int64_t i = 0; i < accum; ++i) {
    const Value& batch = micro[first + static_cast<size_t>(i)];
    const auto& ids = batch.find("input_ids")->as_array();
    const auto& labels = batch.find("labels")->as_array();
    for (size_t row = 0; row < ids.size(); ++row) {
      const std::vector<int32_t> x = ints(ids[row]), y = ints(labels[row]);
      double sum = 0;
      int64_t count = 0;
      CHECK(trainer.accumulate(x.data(), y.data(), static_cast<int64_t>(x.size()), 1.0f / static_cast<float>(*targets), (*sample)++,
                               &sum, &count)
                .ok());
      loss += sum;
    }
  }
  return loss / static_cast<double>(*targets);
}

}  // namespace attune_test
