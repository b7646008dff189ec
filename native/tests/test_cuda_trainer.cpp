// Training on the GPU end to end: the golden cases' whole trajectories (losses, gradient norms,
// final adapters) for LoRA, rsLoRA, DoRA, QLoRA and QDoRA, made by transformers + peft and matched
// by the CPU trainer to 1e-4 (test_trainer.cpp). In fp32 the GPU trainer must match them as
// closely; in bf16 within bf16's rounding. Also: gradient checkpointing changes nothing on the GPU.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "cuda/cuda_trainer.h"
#include "io/safetensors.h"
#include "train/gpu_memory_plan.h"
#include "cuda_test.h"
#include "training_case.h"

using namespace attune_test;
using namespace attune_test::gpu;
using attune::cuda::CudaTrainer;
using attune::cuda::Precision;

namespace {

struct Limits {
  double loss, grad_norm, adapter;
  // How the final adapter is compared: the CPU tests' max |Δ| / max |ref| per tensor, or the
  // relative L2 error of the whole adapter. In bf16 about 1% of the gradients' signs flip against fp32, and
  // AdamW's first steps move each element by about ±lr whatever the gradient's size, so a single
  // flipped element of a LoRA B (max |B| ≈ a few lr) alone gives a max-norm error near 0.3: only
  // the L2 measure says whether bf16 training followed the same path.
  bool l2;
};

// fp32: products in full fp32 (CUBLAS_COMPUTE_32F), other sums reordered: the CPU's own limits.
// bf16: activations and products rounded to 8 bits of mantissa over a few steps.
constexpr Limits kF32{1e-4, 1e-3, 1e-3, false};
constexpr Limits kBF16{2e-2, 5e-2, 5e-2, true};

// ‖adapter − ref‖ / ‖ref‖ over all of the adapter's values against the same-named tensors of a
// file (a single tiny B tensor would make a per-tensor measure as noisy as the max-norm one).
double adapter_l2_error(const attune::train::AdapterSet& adapters, const std::string& file) {
  attune::SafetensorsFile ref;
  CHECK(attune::SafetensorsFile::open(file, &ref).ok());
  std::vector<float> got, want;
  for (const attune::train::Parameter& p : adapters.parameters()) {
    const attune::TensorView* t = ref.find(p.name);
    CHECK(t != nullptr);
    if (!t) continue;
    const float* data = reinterpret_cast<const float*>(t->data);
    got.insert(got.end(), p.value.begin(), p.value.end());
    want.insert(want.end(), data, data + t->numel());
  }
  return normalized_error(got, want);
}

void check_gpu_trajectory(const std::string& name, Precision precision, const Limits& limits, bool checkpointing = true) {
  Case c;
  CHECK(load_case(name, &c));
  if (!c.model) return;
  attune::cpu::ThreadPool pool(2);
  attune::train::AdapterSet adapters;
  CHECK(initial_adapters(name, c, pool, &adapters));
  attune::cuda::CudaTrainerOptions options;
  options.trainer.adamw = adamw_of(c.spec);
  options.trainer.gradient_checkpointing = checkpointing;
  options.precision = precision;
  std::unique_ptr<CudaTrainer> trainer;
  const attune::Status created = CudaTrainer::create(*c.model, adapters, options, &trainer);
  if (!created.ok()) std::printf("  %s\n", created.message().c_str());
  CHECK(created.ok());
  if (!trainer) return;

  const char* dtype = precision == Precision::kF32 ? "f32" : "bf16";
  const size_t accum = static_cast<size_t>(c.spec.find("grad_accum")->as_integer());
  uint64_t sample = 0;
  size_t next = 0, index = 0;
  double worst_loss = 0, worst_norm = 0;
  for (const Value& step : c.trajectory.find("steps")->as_array()) {
    int64_t targets = 0;
    const double loss = accumulate_step(c, *trainer, next, &sample, &targets);
    next += accum;
    CHECK(targets == step.find("targets")->as_integer());
    float grad_norm = 0;
    const attune::Status stepped = trainer->optimizer_step(step.find("lr")->as_number(), c.spec.find("max_grad_norm")->as_number(), &grad_norm);
    if (!stepped.ok()) std::printf("  %s\n", stepped.message().c_str());
    CHECK(stepped.ok());
    const double want_loss = step.find("loss")->as_number(), want_norm = step.find("grad_norm")->as_number();
    worst_loss = std::max(worst_loss, std::fabs(loss - want_loss) / std::fabs(want_loss));
    worst_norm = std::max(worst_norm, std::fabs(grad_norm - want_norm) / want_norm);
    std::printf("  %s %s step %zu: loss %.6f (peft %.6f), grad norm %.5f (peft %.5f)\n", name.c_str(), dtype, ++index, loss,
                want_loss, grad_norm, want_norm);
  }
  const std::string shape = name + (checkpointing ? "" : ", no checkpointing");
  expect_close("train: step losses", dtype, shape, worst_loss, limits.loss);
  expect_close("train: gradient norms", dtype, shape, worst_norm, limits.grad_norm);
  CHECK(trainer->download(&adapters).ok());
  const std::string final_adapter = kTraining + name + "/final_adapter/adapter_model.safetensors";
  expect_close(limits.l2 ? "train: final adapter (relative L2)" : "train: final adapter", dtype, shape,
               limits.l2 ? adapter_l2_error(adapters, final_adapter) : worst_error(adapters, final_adapter, false), limits.adapter);
  // The memory plan (what --dry-run prints) counts every buffer the trainer holds.
  int64_t longest = 0;
  for (const Value& batch : c.batches.find("micro_batches")->as_array()) {
    for (const Value& row : batch.find("input_ids")->as_array()) longest = std::max<int64_t>(longest, static_cast<int64_t>(row.as_array().size()));
  }
  attune::train::GpuPlanInputs inputs;
  inputs.seq_len = longest;
  inputs.gradient_checkpointing = checkpointing;
  inputs.element_bytes = precision == Precision::kF32 ? 4 : 2;
  inputs.embedding_bytes = c.model->embedding_type() == attune::WeightType::F32 ? 4 : 2;
  const int64_t planned = attune::train::plan_gpu_training_memory(c.model->config(), options_of(c.spec), inputs).total;
  const int64_t held = trainer->device_bytes();
  std::printf("  %s %s: %.2f MB of GPU memory held, %.2f MB planned\n", name.c_str(), dtype, static_cast<double>(held) / 1e6,
              static_cast<double>(planned) / 1e6);
  expect_close("train: memory plan", dtype, shape, std::fabs(static_cast<double>(planned - held)) / static_cast<double>(held), 0.0);
}

}  // namespace

TEST(lora_on_the_gpu_in_fp32_matches_peft) { check_gpu_trajectory("lora_llama", Precision::kF32, kF32); }
TEST(rslora_on_the_gpu_in_fp32_matches_peft) { check_gpu_trajectory("rslora_qwen3", Precision::kF32, kF32); }
TEST(dora_on_the_gpu_in_fp32_matches_peft) { check_gpu_trajectory("dora_llama", Precision::kF32, kF32); }
TEST(qlora_on_the_gpu_in_fp32_matches_peft) { check_gpu_trajectory("qlora_llama", Precision::kF32, kF32); }
TEST(qdora_on_the_gpu_in_fp32_matches_peft) { check_gpu_trajectory("qdora_qwen3", Precision::kF32, kF32); }
TEST(no_checkpointing_on_the_gpu_matches_peft) { check_gpu_trajectory("dora_llama", Precision::kF32, kF32, false); }

TEST(lora_on_the_gpu_in_bf16_matches_peft) { check_gpu_trajectory("lora_llama", Precision::kBF16, kBF16); }
TEST(dora_on_the_gpu_in_bf16_matches_peft) { check_gpu_trajectory("dora_llama", Precision::kBF16, kBF16); }
TEST(qlora_on_the_gpu_in_bf16_matches_peft) { check_gpu_trajectory("qlora_llama", Precision::kBF16, kBF16); }
TEST(qdora_on_the_gpu_in_bf16_matches_peft) { check_gpu_trajectory("qdora_qwen3", Precision::kBF16, kBF16); }
