// Adapter training against transformers + peft (test/golden/training): the loss and every adapter
// gradient of the first optimizer step, for LoRA, rsLoRA and DoRA; and gradient checkpointing
// giving the same gradients as keeping every activation.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "check.h"
#include "io/safetensors.h"
#include "model/llama.h"
#include "train/trainer.h"
#include "training_case.h"

using namespace attune_test;

namespace {

// The first optimizer step's loss (its gradients stay in the trainer).
double first_step(Case& c, attune::train::Trainer& trainer) {
  uint64_t sample = 0;
  int64_t targets = 0;
  return accumulate_step(c, trainer, 0, &sample, &targets);
}

void check_first_step(const std::string& name) {
  Case c;
  CHECK(load_case(name, &c));
  if (!c.model) return;
  attune::cpu::ThreadPool pool(2);
  attune::train::AdapterSet adapters;
  CHECK(initial_adapters(name, c, pool, &adapters));
  attune::train::Trainer trainer(*c.model, std::move(adapters), 2, {});
  const double loss = first_step(c, trainer);
  const double expected = c.trajectory.find("steps")->as_array()[0].find("loss")->as_number();
  std::printf("  %-14s step-1 loss %.7f (peft %.7f)\n", name.c_str(), loss, expected);
  CHECK(std::fabs(loss - expected) <= 1e-4 * std::fabs(expected));

  const double worst = worst_error(trainer.adapters(), kTraining + name + "/first_step_grads.safetensors", true);
  std::printf("  %-14s worst gradient error %.2e over %zu tensors\n", name.c_str(), worst, trainer.adapters().parameters().size());
  CHECK(worst <= 1e-3);
}

}  // namespace

TEST(lora_first_step_matches_peft) { check_first_step("lora_llama"); }
TEST(rslora_first_step_matches_peft) { check_first_step("rslora_qwen3"); }
TEST(dora_first_step_matches_peft) { check_first_step("dora_llama"); }
TEST(qlora_first_step_matches_peft) { check_first_step("qlora_llama"); }
TEST(qdora_first_step_matches_peft) { check_first_step("qdora_qwen3"); }

TEST(gradient_checkpointing_changes_nothing) {
  Case c;
  CHECK(load_case("dora_llama", &c));
  if (!c.model) return;
  std::vector<std::vector<float>> grads[2];
  for (int checkpointing = 0; checkpointing < 2; ++checkpointing) {
    attune::cpu::ThreadPool pool(2);
    attune::train::AdapterSet adapters;
    CHECK(initial_adapters("dora_llama", c, pool, &adapters));
    attune::train::TrainerOptions options;
    options.gradient_checkpointing = checkpointing == 1;
    attune::train::Trainer trainer(*c.model, std::move(adapters), 2, options);
    first_step(c, trainer);
    for (const auto& p : trainer.adapters().parameters()) grads[checkpointing].push_back(p.grad);
  }
  CHECK(grads[0] == grads[1]);
}

namespace {

// Every optimizer step of a case: step losses, gradient norms, then the final adapter.
void check_trajectory(const std::string& name) {
  Case c;
  CHECK(load_case(name, &c));
  if (!c.model) return;
  attune::cpu::ThreadPool pool(2);
  attune::train::AdapterSet adapters;
  CHECK(initial_adapters(name, c, pool, &adapters));
  attune::train::TrainerOptions options;
  options.adamw = adamw_of(c.spec);
  attune::train::Trainer trainer(*c.model, std::move(adapters), 2, options);

  const size_t accum = static_cast<size_t>(c.spec.find("grad_accum")->as_integer());
  uint64_t sample = 0;
  size_t next = 0;
  for (const Value& step : c.trajectory.find("steps")->as_array()) {
    int64_t targets = 0;
    const double loss = accumulate_step(c, trainer, next, &sample, &targets);
    next += accum;
    CHECK(targets == step.find("targets")->as_integer());
    float grad_norm = 0;
    CHECK(trainer.optimizer_step(step.find("lr")->as_number(), c.spec.find("max_grad_norm")->as_number(), &grad_norm).ok());
    const double want = step.find("loss")->as_number();
    CHECK(std::fabs(loss - want) <= 1e-4 * std::fabs(want));
    CHECK(std::fabs(grad_norm - step.find("grad_norm")->as_number()) <= 1e-3 * step.find("grad_norm")->as_number());
  }

  const double worst = worst_error(trainer.adapters(), kTraining + name + "/final_adapter/adapter_model.safetensors", false);
  std::printf("  %-14s final adapter worst error %.2e\n", name.c_str(), worst);
  CHECK(worst <= 1e-3);
}

}  // namespace

TEST(lora_trajectory_matches_peft) { check_trajectory("lora_llama"); }
TEST(rslora_trajectory_matches_peft) { check_trajectory("rslora_qwen3"); }
TEST(dora_trajectory_matches_peft) { check_trajectory("dora_llama"); }
TEST(qlora_trajectory_matches_peft) { check_trajectory("qlora_llama"); }
TEST(qdora_trajectory_matches_peft) { check_trajectory("qdora_qwen3"); }

namespace {

// The final adapter of a case, as an unmerged inference adapter: its PEFT keys parsed back into
// (layer, module, kind).
attune::InferenceAdapter inference_adapter(const std::string& name, const Case& c) {
  attune::InferenceAdapter adapter;
  adapter.rank = c.spec.find("r")->as_integer();
  adapter.scaling = static_cast<float>(c.spec.find("scaling")->as_number());
  adapter.dora = c.spec.find("use_dora")->as_bool();
  adapter.layers.resize(static_cast<size_t>(c.model->config().num_hidden_layers));
  attune::SafetensorsFile file;
  CHECK(attune::SafetensorsFile::open(kTraining + name + "/final_adapter/adapter_model.safetensors", &file).ok());
  for (const attune::TensorView& t : file.tensors()) {
    // base_model.model.model.layers.<i>.<self_attn|mlp>.<module>.<lora_A.weight|lora_B.weight|lora_magnitude_vector>
    const size_t at = t.name.find("layers.") + 7;
    const size_t dot = t.name.find('.', at);
    const int64_t layer = std::stoll(t.name.substr(at, dot - at));
    const size_t module_at = t.name.find('.', dot + 1) + 1;
    attune::Module module;
    CHECK(attune::module_from_name(t.name.substr(module_at, t.name.find('.', module_at) - module_at), &module));
    auto& slot = adapter.layers[static_cast<size_t>(layer)][static_cast<size_t>(module)];
    if (!slot) slot.emplace();
    const float* data = reinterpret_cast<const float*>(t.data);
    std::vector<float> values(data, data + t.numel());
    if (t.name.find("lora_A") != std::string::npos) slot->a = std::move(values);
    else if (t.name.find("lora_B") != std::string::npos) slot->b = std::move(values);
    else slot->magnitude = std::move(values);
  }
  return adapter;
}

// Logits of the base with the final adapter applied unmerged vs peft's (final_logits.safetensors).
void check_adapter_inference(const std::string& name) {
  Case c;
  CHECK(load_case(name, &c));
  if (!c.model) return;
  CHECK(c.model->set_adapter(inference_adapter(name, c)).ok());
  attune::SafetensorsFile ref;
  CHECK(attune::SafetensorsFile::open(kTraining + name + "/final_logits.safetensors", &ref).ok());
  const attune::TensorView* ids = ref.find("input_ids");
  const attune::TensorView* logits = ref.find("logits");
  CHECK(ids && logits);
  if (!ids || !logits) return;
  const int64_t T = ids->shape[1], V = logits->shape[2], H = c.model->config().hidden_size;
  std::vector<int32_t> row(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) row[static_cast<size_t>(t)] = static_cast<int32_t>(reinterpret_cast<const int64_t*>(ids->data)[t]);
  std::unique_ptr<attune::KvCache> cache;
  CHECK(c.model->new_cache(T, &cache).ok());
  attune::ForwardWorkspace ws;
  std::vector<float> hidden(static_cast<size_t>(T * H)), out(static_cast<size_t>(T * V));
  CHECK(c.model->forward(row.data(), T, *cache, ws, hidden.data()).ok());
  c.model->logits(hidden.data(), T, out.data());
  const double error = normalised_error(out, reinterpret_cast<const float*>(logits->data));
  std::printf("  %-14s adapter logits vs peft: %.2e\n", name.c_str(), error);
  CHECK(error <= 1e-4);
  // And the adapter really changes the output.
  c.model->clear_adapter();
  CHECK(c.model->new_cache(T, &cache).ok());
  CHECK(c.model->forward(row.data(), T, *cache, ws, hidden.data()).ok());
  c.model->logits(hidden.data(), T, out.data());
  CHECK(normalised_error(out, reinterpret_cast<const float*>(logits->data)) > 1e-3);
}

}  // namespace

TEST(lora_adapter_inference_matches_peft) { check_adapter_inference("lora_llama"); }
TEST(dora_adapter_inference_matches_peft) { check_adapter_inference("dora_llama"); }
TEST(qdora_adapter_inference_matches_peft) { check_adapter_inference("qdora_qwen3"); }
