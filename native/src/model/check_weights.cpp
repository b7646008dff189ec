#include "model/check_weights.h"

#include <string>
#include <vector>

#include "model/nf4_layout.h"

namespace attune {

namespace {

Status require_float(const ModelWeights& weights, const std::string& name, const std::vector<int64_t>& shape) {
  const TensorView* tensor = nullptr;
  if (Status status = weights.require(name, shape, &tensor); !status.ok()) return status;
  if (tensor->dtype == DType::kF32 || tensor->dtype == DType::kF16 || tensor->dtype == DType::kBF16) return {};
  return Status::invalid_argument(weights.file_of(name) + ": tensor \"" + name + "\" has dtype " +
                                  dtype_name(tensor->dtype) + "; expected F32, F16 or BF16");
}

// A linear layer `prefix` (".weight" [out, in], ".bias" [out] when `bias`), plain or NF4.
Status check_linear(const ModelConfig& config, const ModelWeights& weights, const std::string& prefix, int64_t out,
                    int64_t in, bool bias) {
  const std::string weight = prefix + ".weight";
  const TensorView* tensor = weights.find(weight);
  if (tensor == nullptr) return weights.missing(weight);
  // bitsandbytes stores 4-bit weights packed in U8; anything else is a plain float weight.
  if (tensor->dtype == DType::kU8) {
    if (!config.quantization) {
      return Status::invalid_argument(weights.file_of(weight) + ": tensor \"" + weight +
                                      "\" is U8, a quantized layer, but config.json has no quantization_config");
    }
    Nf4Layout layout;
    if (Status status = check_nf4_weight(weights, *config.quantization, weight, out, in, &layout); !status.ok()) {
      return status;
    }
  } else if (Status status = require_float(weights, weight, {out, in}); !status.ok()) {
    return status;
  }
  return bias ? require_float(weights, prefix + ".bias", {out}) : Status();
}

Status check_layer(const ModelConfig& config, const ModelWeights& weights, int64_t layer) {
  const std::string prefix = "model.layers." + std::to_string(layer) + ".";
  const int64_t hidden = config.hidden_size;
  const int64_t q_size = config.num_attention_heads * config.head_dim;
  const int64_t kv_size = config.num_key_value_heads * config.head_dim;
  const int64_t intermediate = config.intermediate_size;
  for (const char* norm : {"input_layernorm.weight", "post_attention_layernorm.weight"}) {
    if (Status status = require_float(weights, prefix + norm, {hidden}); !status.ok()) return status;
  }
  struct Linear {
    const char* name;
    int64_t out, in;
    bool bias;
  };
  const Linear linears[] = {
      {"self_attn.q_proj", q_size, hidden, config.qkv_bias},
      {"self_attn.k_proj", kv_size, hidden, config.qkv_bias},
      {"self_attn.v_proj", kv_size, hidden, config.qkv_bias},
      {"self_attn.o_proj", hidden, q_size, config.o_bias},
      {"mlp.gate_proj", intermediate, hidden, false},
      {"mlp.up_proj", intermediate, hidden, false},
      {"mlp.down_proj", hidden, intermediate, false},
  };
  for (const Linear& linear : linears) {
    if (Status status = check_linear(config, weights, prefix + linear.name, linear.out, linear.in, linear.bias);
        !status.ok()) {
      return status;
    }
  }
  if (config.arch == Architecture::kQwen3) {
    for (const char* norm : {"self_attn.q_norm.weight", "self_attn.k_norm.weight"}) {
      if (Status status = require_float(weights, prefix + norm, {config.head_dim}); !status.ok()) return status;
    }
  }
  return {};
}

}  // namespace

Status check_weights(const ModelConfig& config, const ModelWeights& weights) {
  const std::vector<int64_t> embedding = {config.vocab_size, config.hidden_size};
  if (Status status = require_float(weights, "model.embed_tokens.weight", embedding); !status.ok()) return status;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    if (Status status = check_layer(config, weights, layer); !status.ok()) return status;
  }
  if (Status status = require_float(weights, "model.norm.weight", {config.hidden_size}); !status.ok()) return status;
  // Tied checkpoints usually omit lm_head; one that has it anyway must still fit.
  if (!config.tie_word_embeddings || weights.find("lm_head.weight") != nullptr) {
    return require_float(weights, "lm_head.weight", embedding);
  }
  return {};
}

}  // namespace attune
