// `attune-engine bench-train`: training speed and memory of one adapter method on a model folder,
// on the GPU (cuda::CudaTrainer) or the CPU (train::Trainer), for bench/gpu/run-reference.sh to
// put beside transformers + peft in the same call. The terms are peft_train.py's: rank r, alpha
// 2r, all seven projections, no dropout, AdamW at lr 2e-4 with clipping at 1.0, every token a
// target; a step runs from the first forward to the end of the optimizer update.
#include "bench_train.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "attune/system_info.h"
#include "bench_util.h"
#include "cuda/cuda_trainer.h"
#include "model/llama.h"
#include "train/trainer.h"

namespace attune {

namespace {

struct BenchTrain {
  std::string model, method = "lora", device = "auto", precision = "bf16";
  int64_t seq = 512, batch = 1, rank = 16, warmup = 3, steps = 10;
  bool checkpointing = true;
  unsigned threads = 1;
};

bool parse(int argc, char** argv, BenchTrain* o, std::string* problem) {
  Flags flags;
  if (!parse_flags(argc, argv,
                   {"--model", "--method", "--seq", "--batch", "--checkpointing", "--rank", "--warmup", "--steps", "--device",
                    "--precision", "--threads"},
                   &flags.values, problem)) {
    *problem = "unknown flag or missing value: " + *problem;
    return false;
  }
  flags.text("--model", &o->model);
  flags.text("--method", &o->method);
  flags.text("--device", &o->device);
  flags.text("--precision", &o->precision);
  flags.count("--seq", &o->seq);
  flags.count("--batch", &o->batch);
  flags.count("--rank", &o->rank);
  flags.count("--warmup", &o->warmup);
  flags.count("--steps", &o->steps);
  if (flags.values.count("--threads")) o->threads = static_cast<unsigned>(std::atoi(flags.values["--threads"].c_str()));
  if (flags.values.count("--checkpointing")) o->checkpointing = flags.values["--checkpointing"] == "on";
  if (o->model.empty()) *problem = "--model is required";
  else if (o->method != "lora" && o->method != "dora" && o->method != "qlora" && o->method != "qdora") *problem = "--method must be lora, dora, qlora or qdora";
  else if (o->device != "auto" && o->device != "cuda" && o->device != "cpu") *problem = "--device must be auto, cuda or cpu";
  else if (o->precision != "bf16" && o->precision != "f32") *problem = "--precision must be bf16 or f32";
  else if (o->seq < 2 || o->batch < 1 || o->rank < 1 || o->warmup < 0 || o->steps < 1 || o->threads < 1) *problem = "sizes and counts must be positive";
  return problem->empty();
}

// The trainers share accumulate() and optimizer_step(); `peak` reads the memory each one holds.
template <typename Trainer, typename Peak>
Status run_steps(Trainer& trainer, const BenchTrain& o, int64_t vocab, Peak peak, std::vector<double>* step_ms, double* first_loss,
                 double* last_loss, int64_t* peak_bytes) {
  std::mt19937_64 rng(1234);
  std::uniform_int_distribution<int32_t> token(1, static_cast<int32_t>(vocab - 1));  // never all zeros
  std::vector<int32_t> ids(static_cast<size_t>(o.seq));
  uint64_t sample = 0;
  for (int64_t step = 0; step < o.warmup + o.steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    double loss = 0;
    int64_t targets = 0;
    for (int64_t b = 0; b < o.batch; ++b) {
      for (int32_t& id : ids) id = token(rng);
      double sum = 0;
      int64_t count = 0;
      const float scale = 1.0f / static_cast<float>(o.batch * (o.seq - 1));
      const Status status = trainer.accumulate(ids.data(), ids.data(), o.seq, scale, sample++, &sum, &count);
      if (!status.ok()) return status;
      loss += sum;
      targets += count;
    }
    float grad_norm = 0;
    const Status status = trainer.optimizer_step(2e-4, 1.0, &grad_norm);
    if (!status.ok()) return status;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (step >= o.warmup) step_ms->push_back(ms);
    if (step == 0) *first_loss = loss / static_cast<double>(targets);
    *last_loss = loss / static_cast<double>(targets);
    *peak_bytes = std::max(*peak_bytes, peak());
  }
  return {};
}

}  // namespace

int run_bench_train(int argc, char** argv) {
  BenchTrain o;
  std::string problem;
  if (!parse(argc, argv, &o, &problem)) {
    std::fprintf(stderr, "attune-engine bench-train: %s\n", problem.c_str());
    return 2;
  }
  std::string device = o.device;
  if (device == "auto") device = query_system_info().cuda.usable ? "cuda" : "cpu";

  LoadOptions load;
  load.quantize_nf4 = o.method == "qlora" || o.method == "qdora";
  std::unique_ptr<LlamaModel> model;
  Status status = LlamaModel::load(o.model, o.threads, &model, load);
  if (!status.ok()) return fail(status);
  train::AdapterOptions adapter;
  adapter.rank = o.rank;
  adapter.alpha = 2.0 * static_cast<double>(o.rank);
  adapter.dora = o.method == "dora" || o.method == "qdora";
  adapter.targets.fill(true);
  cpu::ThreadPool pool(o.threads);
  train::AdapterSet adapters;
  status = train::AdapterSet::create(*model, adapter, 42, pool, &adapters);
  if (!status.ok()) return fail(status);
  train::TrainerOptions options;
  options.gradient_checkpointing = o.checkpointing;

  std::vector<double> step_ms;
  double first_loss = 0, last_loss = 0;
  int64_t peak_bytes = 0;
  const int64_t vocab = model->config().vocab_size;
  if (device == "cuda") {
    cuda::CudaTrainerOptions gpu;
    gpu.trainer = options;
    gpu.precision = o.precision == "f32" ? cuda::Precision::kF32 : cuda::Precision::kBF16;
    std::unique_ptr<cuda::CudaTrainer> trainer;
    status = cuda::CudaTrainer::create(*model, adapters, gpu, &trainer);
    if (status.ok()) {
      status = run_steps(*trainer, o, vocab, [&] { return trainer->device_bytes(); }, &step_ms, &first_loss, &last_loss, &peak_bytes);
    }
  } else {
    train::Trainer trainer(*model, std::move(adapters), o.threads, options);
    status = run_steps(trainer, o, vocab, [&] { return trainer.allocated().total; }, &step_ms, &first_loss, &last_loss, &peak_bytes);
  }
  if (!status.ok()) return fail(status);

  const double ms = median(step_ms);
  // Attune's device memory is its own cudaMalloc'd buffers, none cached: held = in use.
  const std::string name = o.model.substr(o.model.find_last_of('/') + 1);
  std::printf(
      "{\"bench\":\"train\",\"tool\":\"attune\",\"model\":\"%s\",\"method\":\"%s\",\"seq\":%lld,\"batch\":%lld,"
      "\"checkpointing\":%s,\"rank\":%lld,\"tokens_per_s\":%.3f,\"step_ms\":%.3f,\"peak_bytes\":%lld,\"peak_reserved_bytes\":%lld,"
      "\"first_loss\":%.6f,\"last_loss\":%.6f,\"warmup\":%lld,\"steps\":%lld,\"device\":\"%s\",\"precision\":\"%s\"}\n",
      name.c_str(), o.method.c_str(), static_cast<long long>(o.seq), static_cast<long long>(o.batch), o.checkpointing ? "true" : "false",
      static_cast<long long>(o.rank), static_cast<double>(o.batch * o.seq) * 1000.0 / ms, ms, static_cast<long long>(peak_bytes),
      static_cast<long long>(peak_bytes), first_loss, last_loss, static_cast<long long>(o.warmup), static_cast<long long>(o.steps),
      device.c_str(), device == "cpu" ? "f32" : o.precision.c_str());
  return 0;
}

}  // namespace attune
