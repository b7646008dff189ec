#include <string>

#include "check.h"
#include "model/config.h"
#include "status_matchers.h"
#include "temp_dir.h"

using attune::Architecture;
using attune::ModelConfig;
using attune::RopeScaling;
using attune::Status;
using attune_test::fails_with;
using attune_test::succeeds;

namespace {

// Llama 3.1 8B's config.json as transformers 4.4x wrote it.
const std::string kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256
})";

// The same model as transformers v5 writes it: rope_parameters (with rope_theta inside) and dtype.
const std::string kLlama31V5 = R"({
  "architectures": ["LlamaForCausalLM"], "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
  "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 131072,
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
  "rope_parameters": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192, "rope_type": "llama3", "rope_theta": 500000.0},
  "tie_word_embeddings": false, "dtype": "bfloat16", "vocab_size": 128256, "head_dim": 128
})";

const std::string kMistral7B = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "vocab_size": 32000
})";

const std::string kQwen25 = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
  "hidden_act": "silu", "hidden_size": 896, "intermediate_size": 4864, "max_position_embeddings": 32768,
  "max_window_layers": 21, "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_sliding_window": false, "vocab_size": 151936
})";

const std::string kQwen3 = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "bos_token_id": 151643, "eos_token_id": 151645,
  "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28, "num_attention_heads": 16, "num_hidden_layers": 28,
  "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
  "sliding_window": null, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_sliding_window": false,
  "vocab_size": 151936
})";

// `base` with the first field called `key` set to `value` (added at the front when absent).
std::string with(const std::string& base, const std::string& key, const std::string& value) {
  const std::string quoted = "\"" + key + "\":";
  const size_t at = base.find(quoted);
  if (at == std::string::npos) return "{" + quoted + " " + value + ", " + base.substr(base.find('{') + 1);
  size_t end = at + quoted.size();
  int depth = 0;
  // The value ends at the ',' or '}' that closes it at depth 0.
  for (; end < base.size(); ++end) {
    const char c = base[end];
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') {
      if (depth == 0) break;
      --depth;
    }
    if (c == ',' && depth == 0) break;
  }
  return base.substr(0, at) + quoted + " " + value + base.substr(end);
}

// null reads as absent.
std::string without(const std::string& base, const std::string& key) { return with(base, key, "null"); }

Status parse(const std::string& text, ModelConfig* config) {
  return attune::parse_model_config(text, "config.json", config);
}

Status parse(const std::string& text) {
  ModelConfig config;
  return parse(text, &config);
}

}  // namespace

TEST(reads_a_llama_3_config) {
  ModelConfig c;
  CHECK(succeeds(parse(kLlama31, &c)));
  CHECK(c.arch == Architecture::kLlama && std::string(attune::architecture_name(c.arch)) == "LlamaForCausalLM");
  CHECK(c.vocab_size == 128256 && c.hidden_size == 4096 && c.intermediate_size == 14336);
  CHECK(c.num_hidden_layers == 32 && c.num_attention_heads == 32 && c.num_key_value_heads == 8 && c.head_dim == 128);
  CHECK(c.max_position_embeddings == 131072 && c.rms_norm_eps == 1e-5 && c.rope_theta == 500000);
  CHECK(c.rope_scaling.type == RopeScaling::Type::kLlama3 && c.rope_scaling.factor == 8);
  CHECK(c.rope_scaling.low_freq_factor == 1 && c.rope_scaling.high_freq_factor == 4);
  CHECK(c.rope_scaling.original_max_position_embeddings == 8192);
  CHECK(!c.tie_word_embeddings && !c.qkv_bias && !c.o_bias && c.sliding_window == 0);
  CHECK(c.dtype && *c.dtype == attune::DType::kBF16);
  CHECK(c.bos_token_ids == std::vector<int64_t>{128000});
  CHECK((c.eos_token_ids == std::vector<int64_t>{128001, 128008, 128009}));
  CHECK(!c.quantization);
}

TEST(rope_parameters_read_like_rope_scaling) {
  ModelConfig v4, v5;
  CHECK(succeeds(parse(kLlama31, &v4)));
  CHECK(succeeds(parse(kLlama31V5, &v5)));
  CHECK(v5.rope_theta == v4.rope_theta && v5.rope_scaling.type == v4.rope_scaling.type);
  CHECK(v5.rope_scaling.factor == v4.rope_scaling.factor);
  CHECK(v5.rope_scaling.original_max_position_embeddings == v4.rope_scaling.original_max_position_embeddings);
  CHECK(v5.dtype == v4.dtype && v5.head_dim == 128);
  // rope_parameters of the default type only carry rope_theta.
  ModelConfig plain;
  CHECK(succeeds(parse(with(kLlama31V5, "rope_parameters", R"({"rope_type": "default", "rope_theta": 1234.0})"), &plain)));
  CHECK(plain.rope_scaling.type == RopeScaling::Type::kNone && plain.rope_theta == 1234);
  // Where both are present, transformers v5's rope_parameters wins.
  ModelConfig both;
  CHECK(succeeds(parse(with(kLlama31, "rope_parameters", R"({"rope_type": "linear", "factor": 2.0})"), &both)));
  CHECK(both.rope_scaling.type == RopeScaling::Type::kLinear && both.rope_theta == 500000);
}

TEST(reads_linear_rope_scaling_in_both_spellings) {
  ModelConfig c;
  CHECK(succeeds(parse(with(kLlama31, "rope_scaling", R"({"type": "linear", "factor": 2.0})"), &c)));
  CHECK(c.rope_scaling.type == RopeScaling::Type::kLinear && c.rope_scaling.factor == 2);
  CHECK(succeeds(parse(with(kLlama31, "rope_scaling", R"({"rope_type": "linear", "factor": 4})"), &c)));
  CHECK(c.rope_scaling.factor == 4);
  CHECK(succeeds(parse(with(kLlama31, "rope_scaling", "null"), &c)) && c.rope_scaling.type == RopeScaling::Type::kNone);
}

TEST(refuses_rope_scalings_it_does_not_implement) {
  CHECK(fails_with(parse(with(kLlama31, "rope_scaling", R"({"rope_type": "yarn", "factor": 4.0})")),
                   "config.json: rope_scaling type \"yarn\" is not supported yet"));
  CHECK(fails_with(parse(with(kLlama31, "rope_scaling", R"({"type": "dynamic", "factor": 2.0})")),
                   "rope_scaling type \"dynamic\" is not supported yet"));
  CHECK(fails_with(parse(with(kLlama31V5, "rope_parameters", R"({"rope_type": "longrope", "rope_theta": 1.0})")),
                   "config.json: rope_parameters type \"longrope\" is not supported yet"));
  CHECK(fails_with(parse(with(kLlama31, "rope_scaling", R"({"rope_type": "linear"})")),
                   "config.json: rope_scaling: field \"factor\" is missing; it must be a positive number"));
  CHECK(fails_with(parse(with(kLlama31, "rope_scaling", R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0,
                                                          "high_freq_factor": 1.0, "original_max_position_embeddings": 8192})")),
                   "rope_scaling: field \"high_freq_factor\" must be greater than low_freq_factor"));
  CHECK(fails_with(parse(with(kLlama31, "rope_scaling", R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                          "high_freq_factor": 4.0})")),
                   "rope_scaling: field \"original_max_position_embeddings\" is missing"));
  CHECK(fails_with(parse(with(kLlama31, "rope_scaling", "\"llama3\"")),
                   "config.json: field \"rope_scaling\" must be an object, not a string"));
  CHECK(fails_with(parse(with(kLlama31, "rope_theta", "0")), "field \"rope_theta\" must be a positive number"));
}

TEST(reads_mistral_with_and_without_a_sliding_window) {
  ModelConfig c;
  CHECK(succeeds(parse(kMistral7B, &c)));
  CHECK(c.arch == Architecture::kMistral && c.sliding_window == 4096 && c.max_position_embeddings == 32768);
  CHECK(c.rope_theta == 10000 && c.bos_token_ids == std::vector<int64_t>{1} && c.eos_token_ids == std::vector<int64_t>{2});
  CHECK(!c.qkv_bias && !c.o_bias);
  CHECK(succeeds(parse(with(kMistral7B, "sliding_window", "null"), &c)) && c.sliding_window == 0);
  // Mistral Nemo: head_dim is not hidden_size / heads.
  CHECK(succeeds(parse(with(with(kMistral7B, "hidden_size", "5120"), "head_dim", "128"), &c)));
  CHECK(c.hidden_size == 5120 && c.head_dim == 128);
  // Mistral has no attention bias, whatever the config says (transformers ignores the flag).
  CHECK(succeeds(parse(with(kMistral7B, "attention_bias", "true"), &c)) && !c.qkv_bias);
  // transformers' default context when the config has none.
  CHECK(succeeds(parse(without(kMistral7B, "max_position_embeddings"), &c)) && c.max_position_embeddings == 131072);
}

TEST(reads_qwen2_with_its_bias_and_sliding_window_rules) {
  ModelConfig c;
  CHECK(succeeds(parse(kQwen25, &c)));
  CHECK(c.arch == Architecture::kQwen2 && c.head_dim == 64 && c.num_key_value_heads == 2);
  CHECK(c.qkv_bias && !c.o_bias && c.tie_word_embeddings && c.rope_theta == 1000000);
  CHECK(c.sliding_window == 0);  // use_sliding_window is false
  CHECK(succeeds(parse(with(kQwen25, "use_sliding_window", "true"), &c)) && c.sliding_window == 32768);
  // Only layers from max_window_layers on slide; with none of them, attention is full.
  CHECK(succeeds(parse(with(with(kQwen25, "use_sliding_window", "true"), "max_window_layers", "24"), &c)));
  CHECK(c.sliding_window == 0);
  const std::string layer_types = R"(["full_attention", "sliding_attention"])";
  CHECK(succeeds(parse(with(with(kQwen25, "use_sliding_window", "true"), "layer_types", layer_types), &c)));
  CHECK(c.sliding_window == 32768);
  CHECK(succeeds(parse(with(kQwen25, "attention_bias", "false"), &c)) && c.qkv_bias);
}

TEST(reads_qwen3_with_its_explicit_head_dim) {
  ModelConfig c;
  CHECK(succeeds(parse(kQwen3, &c)));
  CHECK(c.arch == Architecture::kQwen3 && c.head_dim == 128 && c.hidden_size == 1024 && c.num_attention_heads == 16);
  CHECK(!c.qkv_bias && !c.o_bias && c.sliding_window == 0 && c.max_position_embeddings == 40960);
  CHECK(c.rope_theta == 1000000 && c.rope_scaling.type == RopeScaling::Type::kNone);
  CHECK(succeeds(parse(with(kQwen3, "attention_bias", "true"), &c)) && c.qkv_bias && c.o_bias);
  // transformers' Qwen3Config default.
  CHECK(succeeds(parse(without(kQwen3, "head_dim"), &c)) && c.head_dim == 128);
}

TEST(fills_in_transformers_defaults) {
  const std::string minimal = R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 100, "hidden_size": 64,
                                  "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4})";
  ModelConfig c;
  CHECK(succeeds(parse(minimal, &c)));
  CHECK(c.num_key_value_heads == 4 && c.head_dim == 16 && c.max_position_embeddings == 2048);
  CHECK(c.rms_norm_eps == 1e-6 && c.rope_theta == 10000 && !c.tie_word_embeddings && !c.dtype);
  CHECK(c.bos_token_ids.empty() && c.eos_token_ids.empty());
  CHECK(succeeds(parse(with(minimal, "eos_token_id", "null"), &c)) && c.eos_token_ids.empty());
}

TEST(refuses_unsupported_architectures_by_name) {
  CHECK(fails_with(parse(with(kLlama31, "architectures", R"(["GPT2LMHeadModel"])")),
                   "config.json: architecture \"GPT2LMHeadModel\" is not supported; Attune supports Llama, Mistral, "
                   "Qwen2 and Qwen3 models"));
  CHECK(fails_with(parse(without(kLlama31, "architectures")),
                   "config.json: field \"architectures\" must be a list naming the model class"));
  CHECK(fails_with(parse(with(kLlama31, "architectures", "[]")), "field \"architectures\" must be a list"));
  CHECK(fails_with(parse(with(kLlama31, "architectures", "\"LlamaForCausalLM\"")), "field \"architectures\" must be a list"));
}

TEST(refuses_what_the_engine_does_not_implement) {
  CHECK(fails_with(parse(with(kLlama31, "hidden_act", "\"gelu\"")),
                   "config.json: hidden_act \"gelu\" is not supported; Attune implements \"silu\""));
  CHECK(fails_with(parse(with(kLlama31, "mlp_bias", "true")), "config.json: mlp_bias true is not supported yet"));
  CHECK(fails_with(parse(with(kLlama31, "torch_dtype", "\"float64\"")),
                   "config.json: torch_dtype \"float64\" is not supported; Attune reads float32, float16 and bfloat16"));
  CHECK(fails_with(parse(with(kLlama31V5, "dtype", "\"int8\"")), "config.json: dtype \"int8\" is not supported"));
}

TEST(refuses_bad_sizes) {
  CHECK(fails_with(parse(with(kLlama31, "num_attention_heads", "0")),
                   "config.json: field \"num_attention_heads\" must be a positive integer"));
  CHECK(fails_with(parse(with(kLlama31, "hidden_size", "4096.5")), "field \"hidden_size\" must be a positive integer"));
  CHECK(fails_with(parse(with(kLlama31, "vocab_size", "\"128256\"")), "field \"vocab_size\" must be a positive integer"));
  CHECK(fails_with(parse(without(kLlama31, "intermediate_size")),
                   "field \"intermediate_size\" is missing; it must be a positive integer"));
  CHECK(fails_with(parse(with(kLlama31, "vocab_size", "100000000000")), "field \"vocab_size\" is 100000000000; at most"));
  CHECK(fails_with(parse(with(kLlama31, "num_key_value_heads", "5")),
                   "field \"num_key_value_heads\" must divide num_attention_heads (32)"));
  CHECK(fails_with(parse(with(kLlama31, "hidden_size", "4001")),
                   "field \"num_attention_heads\" must divide hidden_size (4001) when the config gives no head_dim"));
  CHECK(fails_with(parse(with(kLlama31V5, "head_dim", "127")), "field \"head_dim\" must be even"));
  CHECK(fails_with(parse(with(kLlama31, "rms_norm_eps", "-1e-5")), "field \"rms_norm_eps\" must be a positive number"));
  CHECK(fails_with(parse(with(kLlama31, "tie_word_embeddings", "1")), "field \"tie_word_embeddings\" must be true or false"));
  CHECK(fails_with(parse(with(kMistral7B, "sliding_window", "-1")), "field \"sliding_window\" must be a positive integer"));
}

TEST(reads_token_ids_as_one_or_many) {
  ModelConfig c;
  CHECK(succeeds(parse(with(kLlama31, "eos_token_id", "7"), &c)) && c.eos_token_ids == std::vector<int64_t>{7});
  CHECK(succeeds(parse(with(kLlama31, "eos_token_id", "[]"), &c)) && c.eos_token_ids.empty());
  CHECK(fails_with(parse(with(kLlama31, "eos_token_id", "-1")),
                   "field \"eos_token_id\" must be a token id or a list of token ids"));
  CHECK(fails_with(parse(with(kLlama31, "bos_token_id", "[1, \"2\"]")), "field \"bos_token_id\" must be a token id"));
}

TEST(reads_a_bitsandbytes_nf4_config) {
  const std::string nf4 = R"({"quant_method": "bitsandbytes", "load_in_4bit": true, "load_in_8bit": false,
    "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true, "bnb_4bit_compute_dtype": "bfloat16",
    "bnb_4bit_quant_storage": "uint8", "llm_int8_threshold": 6.0, "llm_int8_skip_modules": null})";
  ModelConfig c;
  CHECK(succeeds(parse(with(kLlama31, "quantization_config", nf4), &c)));
  CHECK(c.quantization && c.quantization->load_in_4bit && c.quantization->bnb_4bit_quant_type == "nf4");
  CHECK(c.quantization->bnb_4bit_use_double_quant && c.quantization->bnb_4bit_compute_dtype == "bfloat16");
  CHECK(succeeds(parse(with(kLlama31, "quantization_config", R"({"load_in_4bit": true, "bnb_4bit_quant_type": "nf4"})"), &c)));
  CHECK(!c.quantization->bnb_4bit_use_double_quant && c.quantization->bnb_4bit_compute_dtype == "float32");
}

TEST(refuses_other_quantizations_by_name) {
  const auto quant = [](const std::string& config) { return parse(with(kLlama31, "quantization_config", config)); };
  const std::string suffix = " is not supported; Attune reads bitsandbytes NF4 4-bit checkpoints";
  CHECK(fails_with(quant(R"({"quant_method": "gptq", "bits": 4})"),
                   "config.json: quantization_config: quant_method \"gptq\"" + suffix));
  CHECK(fails_with(quant(R"({"quant_method": "bitsandbytes", "load_in_8bit": true})"), "8-bit quantization (load_in_8bit)" + suffix));
  CHECK(fails_with(quant(R"({"quant_method": "bitsandbytes", "load_in_4bit": true})"), "bnb_4bit_quant_type \"fp4\"" + suffix));
  CHECK(fails_with(quant(R"({"quant_method": "bitsandbytes"})"), "a bitsandbytes config without load_in_4bit" + suffix));
  CHECK(fails_with(quant(R"({"load_in_4bit": true, "bnb_4bit_quant_type": "nf4", "bnb_4bit_quant_storage": "bfloat16"})"),
                   "bnb_4bit_quant_storage \"bfloat16\"" + suffix));
  CHECK(fails_with(quant(R"({"load_in_4bit": true, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "int8"})"),
                   "bnb_4bit_compute_dtype \"int8\"" + suffix));
  CHECK(fails_with(quant("[]"), "config.json: field \"quantization_config\" must be an object"));
}

TEST(refuses_text_that_is_not_a_config) {
  CHECK(fails_with(parse("{\"architectures\": "), "config.json: invalid JSON at byte 18"));
  CHECK(fails_with(parse("[]"), "config.json: must be a JSON object, not an array"));
}

TEST(loads_config_json_from_a_folder) {
  attune_test::TempDir dir;
  ModelConfig c;
  CHECK(fails_with(attune::load_model_config(dir.path(), &c), "Could not open " + dir.path() + "/config.json"));
  dir.write("config.json", kQwen3);
  CHECK(succeeds(attune::load_model_config(dir.path(), &c)) && c.arch == Architecture::kQwen3);
  dir.write("config.json", with(kQwen3, "num_hidden_layers", "0"));
  CHECK(fails_with(attune::load_model_config(dir.path(), &c),
                   dir.path() + "/config.json: field \"num_hidden_layers\" must be a positive integer"));
}
