// The memory plan (train/memory_plan.h) against what the CPU trainer allocates: for the golden
// Llama and Qwen3 models, LoRA and DoRA (with and without dropout, a 4-bit base), two sequence
// lengths and checkpointing on and off, every planned part equals the trainer's measured one after
// one accumulate() of exactly seq_len tokens.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "check.h"
#include "model/llama.h"
#include "train/memory_plan.h"
#include "train/trainer.h"

namespace {

using attune::train::MemoryPlan;

void print(const char* what, const MemoryPlan& p) {
  std::fprintf(stderr, "  %s: weights %lld adapters %lld gradients %lld optimizer %lld activations %lld workspace %lld total %lld\n",
               what, static_cast<long long>(p.weights), static_cast<long long>(p.adapters), static_cast<long long>(p.gradients),
               static_cast<long long>(p.optimizer), static_cast<long long>(p.activations), static_cast<long long>(p.workspace),
               static_cast<long long>(p.total));
}

bool same(const MemoryPlan& a, const MemoryPlan& b) {
  return a.weights == b.weights && a.adapters == b.adapters && a.gradients == b.gradients && a.optimizer == b.optimizer &&
         a.activations == b.activations && a.workspace == b.workspace && a.total == b.total;
}

// Plans, trains one sequence of T tokens, measures; returns the measured plan.
MemoryPlan check_case(const std::string& model_name, bool dora, float dropout, bool nf4, bool checkpointing, int64_t T, bool* ok) {
  std::unique_ptr<attune::LlamaModel> model;
  attune::LoadOptions load;
  load.quantize_nf4 = nf4;
  *ok = attune::LlamaModel::load(std::string(ATTUNE_GOLDEN_DIR) + "/" + model_name, 2, &model, load).ok();
  if (!*ok) return {};
  attune::train::AdapterOptions a;
  a.rank = 4;
  a.alpha = 8;
  a.dora = dora;
  a.dropout = dropout;
  for (bool& t : a.targets) t = true;
  a.targets[static_cast<size_t>(attune::Module::kGate)] = false;  // not every module: the plan counts only targets
  attune::cpu::ThreadPool pool(2);
  attune::train::AdapterSet adapters;
  *ok = attune::train::AdapterSet::create(*model, a, 7, pool, &adapters).ok();
  if (!*ok) return {};
  attune::train::TrainerOptions options;
  options.gradient_checkpointing = checkpointing;
  attune::train::Trainer trainer(*model, std::move(adapters), 2, options);

  const MemoryPlan planned = attune::train::plan_training_memory(model->config(), a, T, checkpointing, model->nf4_base(),
                                                                 model->weight_file_bytes());
  std::vector<int32_t> ids(static_cast<size_t>(T)), labels(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    ids[static_cast<size_t>(t)] = static_cast<int32_t>((t * 7 + 3) % model->config().vocab_size);
    labels[static_cast<size_t>(t)] = t < 2 ? -100 : ids[static_cast<size_t>(t)];
  }
  double loss = 0;
  int64_t targets = 0;
  *ok = trainer.accumulate(ids.data(), labels.data(), T, 1.0f, 0, &loss, &targets).ok();
  if (!*ok) return {};
  const MemoryPlan measured = trainer.allocated();
  *ok = same(planned, measured) && same(planned, trainer.plan(T)) && planned.weights > 0 && planned.activations > 0;
  if (nf4) *ok = *ok && model->dequantized_bytes() > 0;
  std::fprintf(stderr, "%s dora=%d dropout=%g nf4=%d checkpointing=%d T=%lld: %s\n", model_name.c_str(), dora, dropout, nf4,
               checkpointing, static_cast<long long>(T), *ok ? "ok" : "MISMATCH");
  if (!*ok) {
    print("planned ", planned);
    print("measured", measured);
  }
  return measured;
}

}  // namespace

TEST(plan_equals_what_the_trainer_allocates) {
  for (const char* model : {"llama", "qwen3"}) {
    for (bool dora : {false, true}) {
      for (int64_t T : {int64_t{5}, int64_t{70}}) {
        for (bool checkpointing : {true, false}) {
          bool ok = false;
          check_case(model, dora, 0.0f, false, checkpointing, T, &ok);
          CHECK(ok);
        }
      }
    }
  }
  // Dropout (the mask and the dropped input) and a 4-bit base (the dequantized linears).
  for (const char* model : {"llama", "qwen3"}) {
    bool ok = false;
    check_case(model, true, 0.1f, true, true, 33, &ok);
    CHECK(ok);
    check_case(model, false, 0.05f, false, false, 17, &ok);
    CHECK(ok);
  }
}

TEST(checkpointing_off_needs_more_activation_memory) {
  for (const char* model : {"llama", "qwen3"}) {
    bool ok = false;
    const MemoryPlan on = check_case(model, false, 0.0f, false, true, 40, &ok);
    CHECK(ok);
    const MemoryPlan off = check_case(model, false, 0.0f, false, false, 40, &ok);
    CHECK(ok);
    CHECK(off.activations > on.activations);
    CHECK(off.weights == on.weights && off.adapters == on.adapters && off.optimizer == on.optimizer);
  }
}

TEST(plan_grows_with_the_sequence) {
  attune::ModelConfig c;
  c.vocab_size = 1000;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  attune::train::AdapterOptions a;
  a.targets[0] = true;
  const MemoryPlan short_plan = attune::train::plan_training_memory(c, a, 10, true, false, 1000);
  const MemoryPlan long_plan = attune::train::plan_training_memory(c, a, 100, true, false, 1000);
  CHECK(long_plan.activations > short_plan.activations && long_plan.workspace > short_plan.workspace);
  CHECK(long_plan.adapters == short_plan.adapters && long_plan.weights == 1000);
  CHECK(short_plan.total == short_plan.weights + short_plan.adapters + short_plan.gradients + short_plan.optimizer +
                                short_plan.activations + short_plan.workspace);
}
