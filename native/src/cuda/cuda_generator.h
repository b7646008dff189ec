// Text generation on an NVIDIA GPU: attune::generate (generate/generator.h) with the model, its KV
// cache, the sampling and the adapters on the GPU.
//
//   CudaModel      a loaded model's frozen weights on one GPU (cuda/device_model.h), in bf16 (the
//                  fast mode) or fp32 (which reproduces the CPU backend to rounding: how the GPU
//                  path is checked). Shared (std::shared_ptr) by any number of generators and
//                  adapters: a base and any number of adapters side by side hold one copy of it.
//   CudaAdapter    one LoRA or DoRA adapter's factors on the GPU for a CudaModel, applied unmerged
//                  (the base weights are never touched): uploading one is the only cost, switching
//                  a generator between adapters and the base is a pointer change.
//   CudaGenerator  one conversation's state: a KV cache on the GPU ([layer][capacity, kv_heads,
//                  head_dim] in the compute type), an adapter slot, scratch, a CUDA stream.
//
// How a generation runs (CudaGenerator::generate):
//   - prefill: the prompt in chunks of up to prefill_chunk tokens through cuBLASLt products
//     (cuda/adapter_layers.h's linear_forward, LoRA/DoRA included) and attention_forward against
//     the cache (ops_attention.h; for head dims it is not compiled for, 16 among them,
//     ops_generate.h's cache_attention); the last position's logits (fp32) through gemv;
//   - decode, one token per step, batch 1: fp32 activations, every product a gemv over the weights
//     in the compute type (ops_decode.h: lora_gemv_add / dora_scale for the adapter), attention of
//     the token against the cache (ops_generate.h's cache_attention), then sample_token
//     (ops_sampling.h) on the GPU. The step reads its token, position and cache length from a
//     small state array in device memory and advances it, so it is captured once in a CUDA graph
//     and replayed for every token. The only per-token traffic with the host is the sampled id,
//     written by the GPU into mapped pinned memory; the host queues step n+1 before it waits for
//     token n, so the GPU never waits on the host's callback or stop check.
//   - sampling: the CPU Sampler's rule and arithmetic (ops_sampling.h), with the uniforms the CPU's
//     Rng(seed) would draw, drawn up front: the same tokens as attune::generate for the same seed
//     (to the rounding of the logits).
//
// Not yet: a 4-bit (NF4) base is uploaded as its dequantized values (as upload_model does: the same
// numbers the CPU computes with, in the compute type) rather than kept packed. The next step is to
// keep the packed codes and absmax on the GPU (from quant::Nf4Weight), run decode's products with
// nf4_gemv (ops_decode.h) and dequantize one weight at a time into a reused bf16 buffer for the
// prefill's cuBLASLt products (nf4_dequantize_rows, ops_nf4.h).
// Also not yet: reusing a previous turn's cache (every generate() prefills its whole prompt), and
// the faster kernel paths noted in ops_generate.cu and ops_decode.cu.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attune/cancel.h"
#include "attune/status.h"
#include "generate/generator.h"
#include "model/llama.h"

namespace attune::cuda {

enum class GenerationPrecision { kBF16, kF32 };
const char* precision_name(GenerationPrecision precision);  // "bf16", "f32"

struct CudaModelOptions {
  GenerationPrecision precision = GenerationPrecision::kBF16;
  int device = 0;  // the CUDA device ordinal
};

class CudaModel {
 public:
  // Copies `model`'s frozen weights to the GPU. `model` must outlive the result: its RoPE tables
  // and, for DoRA adapters, its host weights are read later (a generator growing its cache calls
  // model.rope().ensure(): not while another thread runs the CPU model or grows another cache). Out of memory: an error naming the
  // weight, the bytes needed and the bytes free.
  static Status load(LlamaModel& model, const CudaModelOptions& options, std::shared_ptr<CudaModel>* out);
  ~CudaModel();
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  LlamaModel& host() const;
  GenerationPrecision precision() const;
  int device() const;
  // GPU memory held by the weights.
  int64_t device_bytes() const;

  struct Impl;  // defined in cuda_generator.cpp
  const Impl& impl() const { return *impl_; }

 private:
  CudaModel();
  std::unique_ptr<Impl> impl_;
};

class CudaAdapter {
 public:
  // Checks every factor's size against the model (the messages of LlamaModel::set_adapter) and
  // copies them to the GPU: A and B in fp32 (decode's gemv kernels) and, in bf16 mode, also in
  // bf16 (the prefill's cuBLASLt products). DoRA: the per-row norms ‖W + s·B·A‖ are taken from
  // adapter.layers[..]->norm when they are filled (out values), else computed here on the CPU
  // from the host weights, as LlamaModel::set_adapter does.
  static Status upload(const CudaModel& model, const InferenceAdapter& adapter, std::shared_ptr<const CudaAdapter>* out);
  ~CudaAdapter();
  CudaAdapter(const CudaAdapter&) = delete;
  CudaAdapter& operator=(const CudaAdapter&) = delete;

  int64_t rank() const;
  bool dora() const;
  int64_t device_bytes() const;
  // The CudaModel::Impl it was uploaded for (set_adapter refuses an adapter of another model).
  const void* model_key() const;

  struct Impl;  // defined in cuda_generator.cpp
  const Impl& impl() const { return *impl_; }

 private:
  CudaAdapter();
  std::unique_ptr<Impl> impl_;
};

struct CudaGeneratorOptions {
  // Prompt tokens per prefill pass: bounds the prefill's activations ([chunk, intermediate]).
  int64_t prefill_chunk = 2048;
  // Capture the decode step in a CUDA graph and replay it (else the same kernels are launched one
  // by one every step; the results are identical). A capture that fails falls back to launching,
  // and says why in stats().graph_error.
  bool use_graph = true;
  // KV cache positions allocated at creation; the cache grows (never shrinks) to what a
  // generation needs, rounded up to a multiple of 256 (at most the model's sliding window).
  int64_t initial_capacity = 0;
};

// How the decode steps ran, counted since the generator was created (tests and benchmarks).
struct CudaGeneratorStats {
  int64_t graph_captures = 0;  // decode graphs captured and instantiated (since creation)
  int64_t graph_replays = 0;   // decode steps run by replaying a graph (since creation)
  int64_t eager_steps = 0;     // decode steps whose kernels were launched one by one (since creation)
  std::string graph_error;     // why the last capture failed ("" when it did not)
};

class CudaGenerator {
 public:
  // A generator on `model`'s GPU, with its own stream, cuBLASLt handle, cache and scratch.
  static Status create(std::shared_ptr<const CudaModel> model, const CudaGeneratorOptions& options,
                       std::unique_ptr<CudaGenerator>* out);
  virtual ~CudaGenerator() = default;

  // The adapter later generations apply (null: the base model). Takes effect at the next call;
  // the base weights and other generators are untouched. Not during a generate() call.
  virtual Status set_adapter(std::shared_ptr<const CudaAdapter> adapter) = 0;
  void clear_adapter() { (void)set_adapter(nullptr); }
  virtual bool has_adapter() const = 0;

  // As attune::generate on the CPU: the prompt, then up to params.max_new_tokens tokens, each
  // passed to on_token as soon as it reaches the host; stops after a stop id, at the limit, or
  // when `cancel` is set (checked before each token is handed over: result->finish_reason is
  // kCancelled and the token is not emitted). Every generation starts from an empty cache.
  // result->prefill_ms: from the call to the first token on the host (prefill and first sample);
  // result->decode_ms: from then to the last token. After an error or a cancel the generator, its
  // cache and the model stay valid for the next call; nothing is allocated or freed by a cancel.
  virtual Status generate(const std::vector<int32_t>& prompt, const GenerationParams& params, const CancelToken& cancel,
                          const TokenCallback& on_token, GenerationResult* result) = 0;

  // logits[T, vocab] (fp32, on the host) of ids[T] from an empty cache: the prefill path (and
  // the adapter, if set) with every position's logits, for checks against the CPU.
  virtual Status prefill_logits(const int32_t* ids, int64_t T, std::vector<float>* logits) = 0;

  // logits[steps + 1, vocab] of greedy decoding: row 0 after the prefill of `prompt`, row i after
  // decode step i (the graph or launched path as options say), with the greedy tokens in *tokens.
  // For tests of the decode path's logits against the CPU's.
  virtual Status decode_logits(const std::vector<int32_t>& prompt, int64_t steps, std::vector<int32_t>* tokens,
                               std::vector<float>* logits) = 0;

  // GPU memory this generator holds (cache, scratch, cuBLASLt workspace; not the shared model or
  // adapters).
  virtual int64_t device_bytes() const = 0;
  virtual int64_t cache_capacity() const = 0;
  virtual const CudaGeneratorStats& stats() const = 0;
};

}  // namespace attune::cuda
