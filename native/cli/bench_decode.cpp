// `attune-engine bench-decode`: batch-1 greedy decode speed and time to first token of a model
// folder, on the GPU (cuda::CudaGenerator) or the CPU (attune::generate), for bench/gpu to put
// beside transformers' generate() (bench/gpu/transformers_decode.py) on the same terms: a seeded
// random prompt of --prompt ids in [1, vocab), --new-tokens tokens with no early stop (no stop ids, so an
// EOS cannot end it), greedy; "lora" applies a random rank-r adapter (alpha 2r, all seven
// projections, B ≠ 0) unmerged. Timing on the host, as the reference's streamer does: TTFT = from
// the call to the first new token's callback (prefill + first sample); decode tokens/s =
// (n − 1) / (last token − first token). --warmup untimed calls first, then one JSON line per timed
// call (bench/gpu/README.md: the format; report.py takes their median).
#include "bench_decode.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "attune/cancel.h"
#include "attune/status.h"
#include "attune/system_info.h"
#include "bench_util.h"
#include "generate/generator.h"
#include "model/llama.h"
#ifdef ATTUNE_CUDA_GENERATOR  // defined by CMake when the CUDA backend is compiled
#include "cuda/cuda_generator.h"
#include "cuda/device_memory.h"
#endif

namespace attune {

namespace {

struct DecodeOptions {
  std::string model, device = "auto";  // auto: a usable GPU, else the CPU
  std::string precision = "bf16", adapter = "none";
  int64_t prompt = 512, new_tokens = 128, rank = 16, warmup = 1, repeats = 3;
  unsigned threads = 0;  // CPU threads: 0 = all hardware threads
  uint64_t seed = 0;
};

constexpr const char* kUsage =
    "usage: attune-engine bench-decode --model DIR [--device auto|cuda|cpu] [--precision bf16|f32] [--prompt 512]\n"
    "           [--new-tokens 128] [--adapter none|lora] [--rank 16] [--warmup 1] [--repeats 3] [--threads N] [--seed 0]\n";

bool parse(int argc, char** argv, DecodeOptions* o, std::string* problem) {
  Flags flags;
  if (!parse_flags(argc, argv,
                   {"--model", "--device", "--precision", "--prompt", "--new-tokens", "--adapter", "--rank", "--warmup", "--repeats",
                    "--threads", "--seed"},
                   &flags.values, problem)) {
    *problem = "unknown flag or missing value: " + *problem;
    return false;
  }
  flags.text("--model", &o->model);
  flags.text("--device", &o->device);
  flags.text("--precision", &o->precision);
  flags.text("--adapter", &o->adapter);
  flags.count("--prompt", &o->prompt);
  flags.count("--new-tokens", &o->new_tokens);
  flags.count("--rank", &o->rank);
  flags.count("--warmup", &o->warmup);
  flags.count("--repeats", &o->repeats);
  if (flags.values.count("--threads")) o->threads = static_cast<unsigned>(std::atoi(flags.values["--threads"].c_str()));
  if (flags.values.count("--seed")) o->seed = std::strtoull(flags.values["--seed"].c_str(), nullptr, 10);
  if (o->model.empty()) *problem = "--model is required";
  else if (o->device != "auto" && o->device != "cuda" && o->device != "cpu") *problem = "--device must be auto, cuda or cpu";
  else if (o->precision != "bf16" && o->precision != "f32") *problem = "--precision must be bf16 or f32";
  else if (o->adapter != "none" && o->adapter != "lora") *problem = "--adapter must be none or lora";
  else if (o->prompt < 1 || o->new_tokens < 2 || o->rank < 1 || o->warmup < 0 || o->repeats < 1) {
    *problem = "--prompt, --rank and --repeats must be at least 1, --new-tokens at least 2, --warmup at least 0";
  }
  return problem->empty();
}

// A JSON string literal of `text`.
std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (const char ch : text) {
    const unsigned char u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", u);
      out += escaped;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string folder_name(std::string path) {
  while (path.size() > 1 && (path.back() == '/' || path.back() == '\\')) path.pop_back();
  const size_t slash = path.find_last_of("/\\");
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The fields every line starts with.
std::string head(const DecodeOptions& o) {
  return "{\"bench\":\"decode\",\"tool\":\"attune\",\"model\":" + quoted(folder_name(o.model)) + ",\"adapter\":\"" + o.adapter +
         "\",\"rank\":" + (o.adapter == "lora" ? std::to_string(o.rank) : std::string("null")) +
         ",\"prompt\":" + std::to_string(o.prompt) + ",\"new_tokens\":" + std::to_string(o.new_tokens) + ",\"device\":\"" +
         o.device + "\",\"precision\":\"" + (o.device == "cpu" ? std::string("f32") : o.precision) + "\"";
}

// A failed row: the error on stderr and as a JSON line (report.py shows it in the table).
int fail(const DecodeOptions& o, const Status& status) {
  std::fprintf(stderr, "attune-engine bench-decode: %s: %s\n", status_code_name(status.code()), status.message().c_str());
  std::printf("%s,\"error\":%s}\n", head(o).c_str(), quoted(status.message()).c_str());
  return 1;
}

// A random adapter of `rank` on all seven projections of every layer: A ~ U(±1/√in) (the scale of
// peft's Kaiming-uniform init), B ~ U(±0.01) (non-zero, so the adapter changes the output without
// swamping it); scaling = alpha / r with alpha = 2r.
InferenceAdapter random_adapter(const LlamaModel& model, int64_t rank, uint64_t seed) {
  InferenceAdapter adapter;
  adapter.rank = rank;
  adapter.scaling = 2.0f;
  adapter.layers.resize(static_cast<size_t>(model.config().num_hidden_layers));
  std::mt19937_64 rng(seed + 1);
  for (int64_t l = 0; l < model.config().num_hidden_layers; ++l) {
    for (int m = 0; m < kModuleCount; ++m) {
      const LinearWeight& w = model.linear(l, static_cast<Module>(m));
      auto& slot = adapter.layers[static_cast<size_t>(l)][static_cast<size_t>(m)];
      slot.emplace();
      std::uniform_real_distribution<float> a(-1.0f / std::sqrt(static_cast<float>(w.in)), 1.0f / std::sqrt(static_cast<float>(w.in)));
      std::uniform_real_distribution<float> b(-0.01f, 0.01f);
      slot->a.resize(static_cast<size_t>(rank * w.in));
      slot->b.resize(static_cast<size_t>(w.out * rank));
      for (float& v : slot->a) v = a(rng);
      for (float& v : slot->b) v = b(rng);
    }
  }
  return adapter;
}

struct Timing {
  double ttft_ms = 0, tokens_per_s = 0;
  int64_t tokens = 0;
};

// Runs one generation through `generate(prompt, params, cancel, on_token, result)` and times it.
template <typename Generate>
Status timed(const std::vector<int32_t>& prompt, int64_t new_tokens, const Generate& generate, Timing* timing) {
  GenerationParams params;
  params.max_new_tokens = new_tokens;  // greedy (temperature 0), no stop ids: always new_tokens
  CancelToken never;
  GenerationResult result;
  std::vector<std::chrono::steady_clock::time_point> arrivals;
  arrivals.reserve(static_cast<size_t>(new_tokens));
  const auto start = std::chrono::steady_clock::now();
  const Status status = generate(prompt, params, never, [&](int32_t) { arrivals.push_back(std::chrono::steady_clock::now()); }, &result);
  if (!status.ok()) return status;
  if (static_cast<int64_t>(arrivals.size()) != new_tokens) {
    return Status::internal("generated " + std::to_string(arrivals.size()) + " tokens instead of " + std::to_string(new_tokens));
  }
  timing->tokens = static_cast<int64_t>(arrivals.size());
  timing->ttft_ms = std::chrono::duration<double, std::milli>(arrivals.front() - start).count();
  const double decode_s = std::chrono::duration<double>(arrivals.back() - arrivals.front()).count();
  timing->tokens_per_s = decode_s > 0 ? static_cast<double>(new_tokens - 1) / decode_s : 0.0;
  return {};
}

void print_row(const DecodeOptions& o, const Timing& t, int64_t peak, int64_t reserved, int run) {
  std::printf("%s,\"decode_tokens_per_s\":%.2f,\"ttft_ms\":%.3f,\"peak_bytes\":%lld,\"peak_reserved_bytes\":%lld,\"run\":%d}\n",
              head(o).c_str(), t.tokens_per_s, t.ttft_ms, static_cast<long long>(peak), static_cast<long long>(reserved), run);
  std::fflush(stdout);
}

}  // namespace

int run_bench_decode(int argc, char** argv) {
  DecodeOptions o;
  std::string problem;
  if (!parse(argc, argv, &o, &problem)) {
    std::fprintf(stderr, "attune-engine bench-decode: %s\n%s", problem.c_str(), kUsage);
    return 2;
  }
  if (o.device == "auto") o.device = query_system_info().cuda.usable ? "cuda" : "cpu";
#ifndef ATTUNE_CUDA_GENERATOR
  if (o.device == "cuda") return fail(o, Status::invalid_argument("This build of attune-engine has no CUDA support; use --device cpu"));
#endif
  std::unique_ptr<LlamaModel> model;
  const unsigned threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  Status status = LlamaModel::load(o.model, threads, &model);
  if (!status.ok()) return fail(o, status);
  const ModelConfig& c = model->config();

  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> id(1, static_cast<int32_t>(c.vocab_size - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(o.prompt));
  for (int32_t& t : prompt) t = id(rng);

  if (o.device == "cpu") {
    if (o.adapter == "lora") {
      status = model->set_adapter(random_adapter(*model, o.rank, o.seed));
      if (!status.ok()) return fail(o, status);
    }
    // Weights as mapped (or dequantized) plus the fp32 KV cache of the whole answer.
    const int64_t cache = 2 * c.num_hidden_layers * (o.prompt + o.new_tokens) * c.num_key_value_heads * c.head_dim * 4;
    const int64_t bytes = model->weight_file_bytes() + model->dequantized_bytes() + cache;
    auto generate = [&](const std::vector<int32_t>& p, const GenerationParams& params, const CancelToken& cancel,
                        const TokenCallback& on_token, GenerationResult* result) {
      return attune::generate(*model, p, params, cancel, on_token, result);
    };
    for (int64_t r = 0; r < o.warmup + o.repeats; ++r) {
      Timing t;
      status = timed(prompt, o.new_tokens, generate, &t);
      if (!status.ok()) return fail(o, status);
      if (r >= o.warmup) print_row(o, t, bytes, bytes, static_cast<int>(r - o.warmup));
    }
    return 0;
  }

#ifdef ATTUNE_CUDA_GENERATOR
  cuda::DeviceMemoryInfo before;
  status = cuda::device_memory_info(&before);  // also creates the CUDA context, so it is not counted
  if (!status.ok()) return fail(o, status);
  cuda::CudaModelOptions model_options;
  model_options.precision = o.precision == "f32" ? cuda::GenerationPrecision::kF32 : cuda::GenerationPrecision::kBF16;
  std::shared_ptr<cuda::CudaModel> gpu;
  status = cuda::CudaModel::load(*model, model_options, &gpu);
  if (!status.ok()) return fail(o, status);
  cuda::CudaGeneratorOptions options;
  options.initial_capacity = o.prompt + o.new_tokens;
  std::unique_ptr<cuda::CudaGenerator> generator;
  status = cuda::CudaGenerator::create(gpu, options, &generator);
  if (!status.ok()) return fail(o, status);
  std::shared_ptr<const cuda::CudaAdapter> adapter;
  if (o.adapter == "lora") {
    status = cuda::CudaAdapter::upload(*gpu, random_adapter(*model, o.rank, o.seed), &adapter);
    if (status.ok()) status = generator->set_adapter(adapter);
    if (!status.ok()) return fail(o, status);
  }
  auto generate = [&](const std::vector<int32_t>& p, const GenerationParams& params, const CancelToken& cancel,
                      const TokenCallback& on_token, GenerationResult* result) {
    return generator->generate(p, params, cancel, on_token, result);
  };
  for (int64_t r = 0; r < o.warmup + o.repeats; ++r) {
    Timing t;
    status = timed(prompt, o.new_tokens, generate, &t);
    if (!status.ok()) return fail(o, status);
    // Attune's GPU memory is its own cudaMalloc'd buffers (none cached, nothing freed while it
    // runs): "peak" is their sum; "reserved" is what the driver reports gone since before loading
    // (those buffers plus cuBLASLt's and the driver's own allocations).
    const int64_t peak = gpu->device_bytes() + generator->device_bytes() + (adapter ? adapter->device_bytes() : 0);
    cuda::DeviceMemoryInfo now;
    int64_t reserved = peak;
    if (cuda::device_memory_info(&now).ok()) reserved = std::max(peak, before.free_bytes - now.free_bytes);
    if (r >= o.warmup) print_row(o, t, peak, reserved, static_cast<int>(r - o.warmup));
    if (!generator->stats().graph_error.empty() && r == 0) {
      std::fprintf(stderr, "attune-engine bench-decode: decode runs without a CUDA graph: %s\n",
                   generator->stats().graph_error.c_str());
    }
  }
  return 0;
#else
  return fail(o, Status::invalid_argument("This build of attune-engine has no CUDA support; use --device cpu"));
#endif
}

}  // namespace attune
