// A Llama-family decoder (Llama 2/3, Mistral, Qwen2, Qwen3) computing in fp32 on a Backend:
// embedding → N × (RMSNorm → attention → residual → RMSNorm → SwiGLU MLP → residual) → RMSNorm
// → lm_head. Weights stay memory-mapped in their file dtype; linears convert on the fly.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attune/status.h"
#include "backend.h"
#include "io/model_weights.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/modules.h"
#include "model/rope_table.h"

namespace attune {

// A linear layer's frozen weight: W[out, in] in its file dtype, plus an optional fp32 bias.
struct LinearWeight {
  const void* data = nullptr;
  WeightType type = WeightType::F32;
  std::vector<float> bias;  // empty when the layer has none
  int64_t in = 0, out = 0;
};

struct DecoderLayer {
  std::vector<float> input_norm, post_attention_norm;  // [hidden]
  std::vector<float> q_norm, k_norm;                    // [head_dim], Qwen3 only
  LinearWeight q, k, v, o, gate, up, down;
};

// Scratch buffers for one forward call, kept between calls so decoding does not allocate.
struct ForwardWorkspace {
  std::vector<float> x, normed, q, k, v, attn, proj, gate, up;
  std::vector<int32_t> positions;
};

// An adapter applied unmerged at inference (chat, eval): one base serves any adapter, switched
// without reloading. Per targeted module: LoRA factors A [r,in], B [out,r]; DoRA adds the
// magnitude m [out] and the weight norm n = ‖W + s·B·A‖ per row (computed when attached).
struct InferenceAdapter {
  struct Factors {
    std::vector<float> a, b, magnitude, norm;
  };
  int64_t rank = 0;
  float scaling = 1;
  bool dora = false;
  std::vector<std::array<std::optional<Factors>, kModuleCount>> layers;  // [layer][module]
};

struct LoadOptions {
  // QLoRA/QDoRA on a full-precision base: quantize every decoder linear weight to NF4 with double
  // quantization (bitsandbytes' algorithm) and compute with the dequantized values, as training
  // against a 4-bit base does. A checkpoint that is already 4-bit is always dequantized this way.
  bool quantize_nf4 = false;
};

class LlamaModel {
 public:
  // Reads config.json and the safetensors weights of `dir`, checking every name and shape; runs on
  // the CPU backend with `threads` threads.
  static Status load(const std::string& dir, unsigned threads, std::unique_ptr<LlamaModel>* out,
                     const LoadOptions& options = LoadOptions());

  const ModelConfig& config() const { return config_; }
  Backend& backend() { return *backend_; }

  // A cache for up to `capacity` positions (prompt + generated), or an error when memory is short.
  Status new_cache(int64_t capacity, std::unique_ptr<KvCache>* out) const;

  // ids[T] continue the sequence in `cache` (positions cache.length …); their keys and values are
  // appended. hidden[T, hidden_size] receives the final-normed hidden states.
  Status forward(const int32_t* ids, int64_t T, KvCache& cache, ForwardWorkspace& ws, float* hidden);

  // logits[T, vocab] = hidden[T, hidden_size] · lm_headᵀ
  void logits(const float* hidden, int64_t T, float* logits);

  // Applies `adapter` in every later forward until cleared; checks every factor's size and
  // computes DoRA's norms. Not while an operation runs on the model.
  Status set_adapter(InferenceAdapter adapter);
  void clear_adapter() { adapter_.reset(); }
  bool has_adapter() const { return adapter_.has_value(); }
  // The frozen linear weight of (layer, module).
  const LinearWeight& linear(int64_t layer, Module module) const;

  // Whether the decoder's linear weights are NF4-dequantized values (a 4-bit base).
  bool nf4_base() const { return nf4_base_; }
  // Bytes of the memory-mapped safetensors files, and of a 4-bit base's fp32 dequantized linears.
  int64_t weight_file_bytes() const;
  int64_t dequantized_bytes() const;

  // The frozen weights, for training adapters on them (train/trainer.h).
  const std::vector<DecoderLayer>& layers() const { return layers_; }
  const void* embedding() const { return embedding_; }
  WeightType embedding_type() const { return embedding_type_; }
  const std::vector<float>& final_norm() const { return final_norm_; }
  const LinearWeight& lm_head() const { return lm_head_; }
  RopeTable& rope() { return *rope_; }

 private:
  LlamaModel() = default;
  Status bind_weights(unsigned threads, const LoadOptions& options);

  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<RopeTable> rope_;
  const void* embedding_ = nullptr;
  WeightType embedding_type_ = WeightType::F32;
  std::vector<DecoderLayer> layers_;
  std::vector<float> final_norm_;
  LinearWeight lm_head_;
  bool nf4_base_ = false;
  std::optional<InferenceAdapter> adapter_;
  // y[T,out] = the linear (layer, module) applied to x[T,in], with the adapter when one is set.
  void project(int64_t layer, Module module, const float* x, float* y, int64_t T);
  // The dequantized values of a 4-bit base's linear weights (fp32, rounded to the model's dtype).
  std::vector<std::vector<float>> dequantized_;
};

}  // namespace attune
