#include "model/config.h"

#include <utility>

#include "io/json.h"
#include "io/json_fields.h"
#include "io/mapped_file.h"
#include "io/model_weights.h"

namespace attune {

namespace {

// Sizes beyond this are not models we can hold; the bound also keeps products of two sizes
// (matrix element counts) far from int64 overflow.
constexpr int64_t kMaxSize = int64_t{1} << 24;

struct ArchitectureInfo {
  Architecture arch;
  const char* name;
  int64_t max_position_embeddings;  // transformers' default when the config has none
};

constexpr ArchitectureInfo kArchitectures[] = {
    {Architecture::kLlama, "LlamaForCausalLM", 2048},
    {Architecture::kMistral, "MistralForCausalLM", 131072},
    {Architecture::kQwen2, "Qwen2ForCausalLM", 32768},
    {Architecture::kQwen3, "Qwen3ForCausalLM", 32768},
};

Status read_architecture(const json::Fields& fields, ModelConfig* config) {
  const json::Value* list = fields.get("architectures");
  if (list == nullptr || !list->is_array() || list->as_array().empty() || !list->as_array()[0].is_string()) {
    return fields.error("architectures", "must be a list naming the model class, such as [\"LlamaForCausalLM\"]");
  }
  const std::string& name = list->as_array()[0].as_string();
  for (const ArchitectureInfo& info : kArchitectures) {
    if (name == info.name) {
      config->arch = info.arch;
      config->max_position_embeddings = info.max_position_embeddings;
      return {};
    }
  }
  return Status::invalid_argument(fields.where() + ": architecture \"" + name +
                                  "\" is not supported; Attune supports Llama, Mistral, Qwen2 and Qwen3 models");
}

// torch dtype names as config.json spells them.
Status read_dtype(const json::Fields& fields, ModelConfig* config) {
  // transformers v5 writes "dtype"; older versions "torch_dtype".
  const char* key = fields.get("dtype") != nullptr ? "dtype" : "torch_dtype";
  std::string name;
  if (Status status = fields.optional_string(key, &name); !status.ok() || name.empty()) return status;
  if (name == "float32") {
    config->dtype = DType::kF32;
  } else if (name == "float16") {
    config->dtype = DType::kF16;
  } else if (name == "bfloat16") {
    config->dtype = DType::kBF16;
  } else {
    return Status::invalid_argument(fields.where() + ": " + key + " \"" + name +
                                    "\" is not supported; Attune reads float32, float16 and bfloat16 models");
  }
  return {};
}

// bos_token_id / eos_token_id: one id, a list of ids, or null.
Status read_token_ids(const json::Fields& fields, const char* key, std::vector<int64_t>* out) {
  const json::Value* value = fields.get(key);
  if (value == nullptr) return {};
  const auto valid = [](const json::Value& id) { return id.is_integer() && id.as_integer() >= 0; };
  if (valid(*value)) {
    out->push_back(value->as_integer());
    return {};
  }
  if (value->is_array()) {
    for (const json::Value& id : value->as_array()) {
      if (!valid(id)) return fields.error(key, "must be a token id or a list of token ids (non-negative integers)");
      out->push_back(id.as_integer());
    }
    return {};
  }
  return fields.error(key, "must be a token id or a list of token ids (non-negative integers)");
}

// rope_scaling (transformers v4) or rope_parameters (v5, which also carries rope_theta). v5 wins
// when a config has both: it is what transformers v5 itself reads.
Status read_rope(const json::Fields& fields, ModelConfig* config) {
  if (Status status = fields.optional_positive_number("rope_theta", &config->rope_theta); !status.ok()) return status;
  const char* key = fields.get("rope_parameters") != nullptr ? "rope_parameters" : "rope_scaling";
  const json::Value* rope = fields.get(key);
  if (rope == nullptr) return {};
  if (!rope->is_object()) return fields.error(key, std::string("must be an object, not ") + json::type_name(rope->type()));
  const json::Fields rope_fields(*rope, fields.where() + ": " + key);
  if (Status status = rope_fields.optional_positive_number("rope_theta", &config->rope_theta); !status.ok()) {
    return status;
  }
  // "type" is the older spelling of "rope_type".
  std::string type = "default";
  const char* type_key = rope_fields.get("rope_type") != nullptr ? "rope_type" : "type";
  if (Status status = rope_fields.optional_string(type_key, &type); !status.ok()) return status;
  RopeScaling& scaling = config->rope_scaling;
  if (type == "default") {
    scaling.type = RopeScaling::Type::kNone;
    return {};
  }
  if (type == "linear") {
    scaling.type = RopeScaling::Type::kLinear;
    return rope_fields.positive_number("factor", &scaling.factor);
  }
  if (type != "llama3") {
    return Status::invalid_argument(fields.where() + ": " + key + " type \"" + type + "\" is not supported yet");
  }
  scaling.type = RopeScaling::Type::kLlama3;
  if (Status status = rope_fields.positive_number("factor", &scaling.factor); !status.ok()) return status;
  if (Status status = rope_fields.positive_number("low_freq_factor", &scaling.low_freq_factor); !status.ok()) {
    return status;
  }
  if (Status status = rope_fields.positive_number("high_freq_factor", &scaling.high_freq_factor); !status.ok()) {
    return status;
  }
  // The interpolation divides by their difference.
  if (!(scaling.high_freq_factor > scaling.low_freq_factor)) {
    return rope_fields.error("high_freq_factor", "must be greater than low_freq_factor");
  }
  return rope_fields.positive_int("original_max_position_embeddings", &scaling.original_max_position_embeddings,
                                   kMaxSize);
}

// The window of sliding-window attention when the model uses it on any layer, else 0.
Status read_sliding_window(const json::Fields& fields, ModelConfig* config) {
  int64_t window = 0;
  if (Status status = fields.optional_positive_int("sliding_window", &window); !status.ok()) return status;
  if (config->arch == Architecture::kMistral) {
    config->sliding_window = window;
    return {};
  }
  if (config->arch == Architecture::kLlama) return {};
  // Qwen2/Qwen3: the window applies only with use_sliding_window, and only to the layers that
  // layer_types marks "sliding_attention" (transformers v5), or else to layers from
  // max_window_layers on.
  bool use_sliding_window = false;
  if (Status status = fields.optional_bool("use_sliding_window", &use_sliding_window); !status.ok()) return status;
  if (!use_sliding_window || window == 0) return {};
  bool any_sliding_layer = false;
  if (const json::Value* layer_types = fields.get("layer_types"); layer_types != nullptr) {
    for (const json::Value& type : layer_types->as_array()) {
      any_sliding_layer = any_sliding_layer || type.as_string() == "sliding_attention";
    }
  } else {
    int64_t max_window_layers = 28;
    if (Status status = fields.optional_positive_int("max_window_layers", &max_window_layers); !status.ok()) {
      return status;
    }
    any_sliding_layer = max_window_layers < config->num_hidden_layers;
  }
  config->sliding_window = any_sliding_layer ? window : 0;
  return {};
}

Status read_quantization(const json::Fields& fields, ModelConfig* config) {
  const json::Value* value = fields.get("quantization_config");
  if (value == nullptr) return {};
  if (!value->is_object()) return fields.error("quantization_config", "must be an object");
  const json::Fields quant(*value, fields.where() + ": quantization_config");
  const auto refuse = [&](const std::string& what) {
    return Status::invalid_argument(quant.where() + ": " + what +
                                    " is not supported; Attune reads bitsandbytes NF4 4-bit checkpoints");
  };
  std::string method = "bitsandbytes";  // configs from before transformers 4.31 do not name it
  if (Status status = quant.optional_string("quant_method", &method); !status.ok()) return status;
  if (method != "bitsandbytes") return refuse("quant_method \"" + method + "\"");
  bool load_in_8bit = false;
  QuantizationConfig q;
  q.bnb_4bit_quant_type = "fp4";  // BitsAndBytesConfig's defaults
  q.bnb_4bit_compute_dtype = "float32";
  std::string storage = "uint8";
  // Every read runs, left to right; the first error is the one reported.
  for (Status status : {quant.optional_bool("load_in_8bit", &load_in_8bit),
                        quant.optional_bool("load_in_4bit", &q.load_in_4bit),
                        quant.optional_string("bnb_4bit_quant_type", &q.bnb_4bit_quant_type),
                        quant.optional_bool("bnb_4bit_use_double_quant", &q.bnb_4bit_use_double_quant),
                        quant.optional_string("bnb_4bit_compute_dtype", &q.bnb_4bit_compute_dtype),
                        quant.optional_string("bnb_4bit_quant_storage", &storage)}) {
    if (!status.ok()) return status;
  }
  if (load_in_8bit) return refuse("8-bit quantization (load_in_8bit)");
  if (!q.load_in_4bit) return refuse("a bitsandbytes config without load_in_4bit");
  if (q.bnb_4bit_quant_type != "nf4") return refuse("bnb_4bit_quant_type \"" + q.bnb_4bit_quant_type + "\"");
  // Other storage dtypes (used for FSDP) pack the 4-bit codes into non-byte tensors.
  if (storage != "uint8") return refuse("bnb_4bit_quant_storage \"" + storage + "\"");
  const std::string& compute = q.bnb_4bit_compute_dtype;
  if (compute != "float32" && compute != "float16" && compute != "bfloat16") {
    return refuse("bnb_4bit_compute_dtype \"" + compute + "\"");
  }
  config->quantization = q;
  return {};
}

// Sizes and their relations.
Status read_sizes(const json::Fields& fields, ModelConfig* config) {
  for (const auto& [key, out] : {std::pair<const char*, int64_t*>{"vocab_size", &config->vocab_size},
                                 {"hidden_size", &config->hidden_size},
                                 {"intermediate_size", &config->intermediate_size},
                                 {"num_hidden_layers", &config->num_hidden_layers},
                                 {"num_attention_heads", &config->num_attention_heads}}) {
    if (Status status = fields.positive_int(key, out, kMaxSize); !status.ok()) return status;
  }
  config->num_key_value_heads = config->num_attention_heads;
  if (Status status = fields.optional_positive_int("num_key_value_heads", &config->num_key_value_heads, kMaxSize);
      !status.ok()) {
    return status;
  }
  if (config->num_attention_heads % config->num_key_value_heads != 0) {
    return fields.error("num_key_value_heads", "must divide num_attention_heads (" +
                                                   std::to_string(config->num_attention_heads) + ")");
  }
  if (fields.get("head_dim") == nullptr && config->arch != Architecture::kQwen3 &&
      config->hidden_size % config->num_attention_heads != 0) {
    return fields.error("num_attention_heads", "must divide hidden_size (" + std::to_string(config->hidden_size) +
                                                   ") when the config gives no head_dim");
  }
  config->head_dim = config->arch == Architecture::kQwen3 ? 128 : config->hidden_size / config->num_attention_heads;
  if (Status status = fields.optional_positive_int("head_dim", &config->head_dim, kMaxSize); !status.ok()) return status;
  // Rotary embeddings rotate pairs of dimensions.
  if (config->head_dim % 2 != 0) return fields.error("head_dim", "must be even for rotary position embeddings");
  return fields.optional_positive_int("max_position_embeddings", &config->max_position_embeddings, kMaxSize);
}

// What the engine computes: SiLU-gated MLPs without bias, attention bias per architecture.
Status read_layers(const json::Fields& fields, ModelConfig* config) {
  std::string act = "silu";
  if (Status status = fields.optional_string("hidden_act", &act); !status.ok()) return status;
  if (act != "silu") {
    return Status::invalid_argument(fields.where() + ": hidden_act \"" + act +
                                    "\" is not supported; Attune implements \"silu\"");
  }
  bool attention_bias = false;
  bool mlp_bias = false;
  // Every read runs, left to right; the first error is the one reported.
  for (Status status : {fields.optional_bool("attention_bias", &attention_bias),
                        fields.optional_bool("mlp_bias", &mlp_bias),
                        fields.optional_bool("tie_word_embeddings", &config->tie_word_embeddings),
                        fields.optional_positive_number("rms_norm_eps", &config->rms_norm_eps)}) {
    if (!status.ok()) return status;
  }
  // transformers reads these flags only where the architecture has them.
  switch (config->arch) {
    case Architecture::kLlama:
      if (mlp_bias) return Status::invalid_argument(fields.where() + ": mlp_bias true is not supported yet");
      config->qkv_bias = config->o_bias = attention_bias;
      break;
    case Architecture::kQwen3: config->qkv_bias = config->o_bias = attention_bias; break;
    case Architecture::kQwen2: config->qkv_bias = true; break;
    case Architecture::kMistral: break;
  }
  return {};
}

}  // namespace

const char* architecture_name(Architecture arch) {
  for (const ArchitectureInfo& info : kArchitectures) {
    if (info.arch == arch) return info.name;
  }
  return "unknown";
}

Status parse_model_config(std::string_view text, const std::string& source, ModelConfig* out) {
  json::Value root;
  if (Status status = json::parse(text, &root); !status.ok()) {
    return Status::invalid_argument(source + ": " + status.message());
  }
  if (!root.is_object()) {
    return Status::invalid_argument(source + ": must be a JSON object, not " + json::type_name(root.type()));
  }
  const json::Fields fields(root, source);
  ModelConfig config;
  // In this order: the architecture sets defaults the others read.
  for (auto read : {read_architecture, read_sizes, read_layers, read_rope, read_dtype, read_sliding_window,
                    read_quantization}) {
    if (Status status = read(fields, &config); !status.ok()) return status;
  }
  if (Status status = read_token_ids(fields, "bos_token_id", &config.bos_token_ids); !status.ok()) return status;
  if (Status status = read_token_ids(fields, "eos_token_id", &config.eos_token_ids); !status.ok()) return status;
  *out = std::move(config);
  return {};
}

Status load_model_config(const std::string& model_dir, ModelConfig* out) {
  const std::string path = join_path(model_dir, "config.json");
  MappedFile file;
  if (Status status = MappedFile::open(path, &file); !status.ok()) return status;
  return parse_model_config(file.text(), path, out);
}

}  // namespace attune
