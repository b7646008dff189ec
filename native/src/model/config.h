// A Hugging Face config.json for the causal LMs Attune runs, read into the numbers the engine
// needs. Anything Attune does not implement is refused by name instead of being run wrongly:
// other architectures, activations, rope scalings, MLP bias, quantization methods.
//
// Defaults for absent fields are transformers' own (LlamaConfig, MistralConfig, Qwen2Config,
// Qwen3Config), so a config that loads there reads the same here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attune/status.h"
#include "attune/tensor_view.h"

namespace attune {

enum class Architecture { kLlama, kMistral, kQwen2, kQwen3 };

// "LlamaForCausalLM", ...: the value of config.json's architectures[0].
const char* architecture_name(Architecture arch);

struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  double factor = 1;  // linear: positions / factor; llama3: low frequencies / factor
  // llama3 only (reference.md, Models): the band between low and high frequency is interpolated.
  double low_freq_factor = 1;
  double high_freq_factor = 4;
  int64_t original_max_position_embeddings = 8192;
};

// bitsandbytes 4-bit (QLoRA) checkpoints; Attune reads NF4 only. Parsed here; dequantized elsewhere.
struct QuantizationConfig {
  bool load_in_4bit = false;
  std::string bnb_4bit_quant_type;  // "nf4"
  bool bnb_4bit_use_double_quant = false;
  std::string bnb_4bit_compute_dtype;  // "bfloat16", "float16" or "float32"
};

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // GQA; equals num_attention_heads when not given
  int64_t head_dim = 0;             // explicit, else hidden_size / num_attention_heads (Qwen3: 128)
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;  // lm_head shares model.embed_tokens.weight
  // Which attention projections carry a bias, by architecture: Llama and Qwen3 put
  // attention_bias on q, k, v and o; Qwen2 always has q/k/v bias and no o bias; Mistral has none.
  bool qkv_bias = false;
  bool o_bias = false;
  // The checkpoint's dtype (torch_dtype, or dtype in transformers v5), when the config gives one.
  std::optional<DType> dtype;
  std::vector<int64_t> bos_token_ids;  // config.json allows one id or a list
  std::vector<int64_t> eos_token_ids;
  // 0 when attention sees every earlier position. Otherwise the model was trained with sliding-
  // window attention of this many positions (Mistral v0.1, Qwen with use_sliding_window), which
  // Attune does not implement: full causal attention equals it only while a sequence is at most
  // this long, so whoever runs the model must cap sequences at sliding_window.
  int64_t sliding_window = 0;
  std::optional<QuantizationConfig> quantization;
};

// `text` is config.json's content; `source` names it in errors ("/models/x/config.json").
Status parse_model_config(std::string_view text, const std::string& source, ModelConfig* out);
// Reads `model_dir`/config.json.
Status load_model_config(const std::string& model_dir, ModelConfig* out);

}  // namespace attune
