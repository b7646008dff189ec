// Adapter training against transformers + peft (test/golden/training): the loss and every adapter
// gradient of the first optimizer step, for LoRA, rsLoRA and DoRA; and gradient checkpointing
// giving the same gradients as keeping every activation.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "check.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/llama.h"
#include "train/trainer.h"

using attune::json::Value;

namespace {

const std::string kTraining = std::string(ATTUNE_GOLDEN_DIR) + "/../training/";

bool read_json(const std::string& path, Value* out) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  const attune::Status status = attune::json::parse(text.str(), out);
  if (!status.ok()) std::fprintf(stderr, "%s: %s\n", path.c_str(), status.message().c_str());
  return status.ok();
}

std::vector<int32_t> ints(const Value& array) {
  std::vector<int32_t> out;
  for (const Value& v : array.as_array()) out.push_back(static_cast<int32_t>(v.as_integer()));
  return out;
}

struct Case {
  Value spec, batches, trajectory;
  std::unique_ptr<attune::LlamaModel> model;
};

bool load_case(const std::string& name, Case* c) {
  const std::string dir = kTraining + name;
  if (!read_json(dir + "/case.json", &c->spec) || !read_json(dir + "/batches.json", &c->batches) ||
      !read_json(dir + "/trajectory.json", &c->trajectory)) {
    return false;
  }
  // QLoRA/QDoRA cases train on the NF4 double-quantized base (bitsandbytes' algorithm).
  attune::LoadOptions options;
  options.quantize_nf4 = !c->spec.find("base_quantization")->is_null();
  const attune::Status status =
      attune::LlamaModel::load(std::string(ATTUNE_GOLDEN_DIR) + "/" + c->spec.find("base")->as_string(), 2, &c->model, options);
  if (!status.ok()) std::fprintf(stderr, "%s: %s\n", name.c_str(), status.message().c_str());
  return status.ok();
}

attune::train::AdapterOptions options_of(const Value& spec) {
  attune::train::AdapterOptions o;
  o.rank = spec.find("r")->as_integer();
  o.alpha = spec.find("alpha")->as_number();
  o.rslora = spec.find("use_rslora")->as_bool();
  o.dora = spec.find("use_dora")->as_bool();
  o.dropout = static_cast<float>(spec.find("dropout")->as_number());
  for (const Value& m : spec.find("target_modules")->as_array()) {
    attune::train::Module module;
    if (attune::train::module_from_name(m.as_string(), &module)) o.targets[static_cast<size_t>(module)] = true;
  }
  return o;
}

// The adapter set of a case, with the values of its init_adapter.
bool initial_adapters(const std::string& name, Case& c, attune::cpu::ThreadPool& pool, attune::train::AdapterSet* out) {
  if (!attune::train::AdapterSet::create(*c.model, options_of(c.spec), 1, pool, out).ok()) return false;
  attune::SafetensorsFile init;
  if (!attune::SafetensorsFile::open(kTraining + name + "/init_adapter/adapter_model.safetensors", &init).ok()) return false;
  size_t set = 0;
  for (const attune::TensorView& t : init.tensors()) {
    const attune::Status status = out->set_value(t.name, t.shape, reinterpret_cast<const float*>(t.data));
    if (!status.ok()) std::fprintf(stderr, "%s\n", status.message().c_str());
    set += status.ok();
  }
  return set == out->parameters().size() && set == init.tensors().size();
}

// Runs micro-batches [first, first + grad_accum) of a case, adding their gradients to the
// trainer's; returns the step's loss (Σ cross-entropy / the step's targets) and its targets.
double accumulate_step(Case& c, attune::train::Trainer& trainer, size_t first, uint64_t* sample, int64_t* targets) {
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

// The first optimizer step's loss (its gradients stay in the trainer).
double first_step(Case& c, attune::train::Trainer& trainer) {
  uint64_t sample = 0;
  int64_t targets = 0;
  return accumulate_step(c, trainer, 0, &sample, &targets);
}

// max |a − b| / max |b| over a tensor: a normalised error that does not blow up near zero.
double normalised_error(const std::vector<float>& a, const float* b) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  return diff / scale;
}

// The worst normalised error of the trainer's parameters (or their gradients) against the
// same-named tensors of a safetensors file; every parameter must be in the file.
double worst_error(const attune::train::Trainer& trainer, const std::string& file, bool gradients) {
  attune::SafetensorsFile ref;
  CHECK(attune::SafetensorsFile::open(file, &ref).ok());
  double worst = 0;
  for (const attune::train::Parameter& p : trainer.adapters().parameters()) {
    const attune::TensorView* t = ref.find(p.name);
    CHECK(t != nullptr);
    if (t) worst = std::max(worst, normalised_error(gradients ? p.grad : p.value, reinterpret_cast<const float*>(t->data)));
  }
  return worst;
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

  const double worst = worst_error(trainer, kTraining + name + "/first_step_grads.safetensors", true);
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
  const auto& betas = c.spec.find("optimizer")->find("betas")->as_array();
  options.adamw.beta1 = betas[0].as_number();
  options.adamw.beta2 = betas[1].as_number();
  options.adamw.eps = c.spec.find("optimizer")->find("eps")->as_number();
  options.adamw.weight_decay = c.spec.find("weight_decay")->as_number();
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

  const double worst = worst_error(trainer, kTraining + name + "/final_adapter/adapter_model.safetensors", false);
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
