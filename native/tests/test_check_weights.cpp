#include <algorithm>
#include <string>
#include <vector>

#include "check.h"
#include "io/model_weights.h"
#include "model/check_weights.h"
#include "model/config.h"
#include "model/nf4_layout.h"
#include "safetensors_writer.h"
#include "status_matchers.h"
#include "temp_dir.h"

using attune::ModelConfig;
using attune::ModelWeights;
using attune::Status;
using attune_test::bytes_tensor;
using attune_test::fails_with;
using attune_test::make_tensor;
using attune_test::succeeds;
using attune_test::TestTensor;

namespace {

// Tiny models: V 32, H 16, I 24, 2 layers, 4 heads, 2 KV heads (head_dim 4; Qwen3: 8, explicit).
std::string tiny_config(const std::string& architecture, const std::string& extra = "", int vocab_size = 32) {
  return R"({"architectures": [")" + architecture + R"("], "vocab_size": )" + std::to_string(vocab_size) + R"(, "hidden_size": 16,
             "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2)" + (architecture == "Qwen3ForCausalLM" ? ", \"head_dim\": 8" : "") + extra + "}";
}

ModelConfig parse_config(const std::string& text) {
  ModelConfig config;
  CHECK(succeeds(attune::parse_model_config(text, "config.json", &config)));
  return config;
}

// The NF4 tensors of a [out, in] weight called `weight`, as bitsandbytes saves them.
void add_nf4(std::vector<TestTensor>* tensors, const std::string& weight, int64_t out, int64_t in, bool nested) {
  const int64_t n = out * in, blocks = (n + 63) / 64;
  tensors->push_back(make_tensor(weight, "U8", {(n + 1) / 2, 1}));
  tensors->push_back(make_tensor(weight + ".absmax", nested ? "U8" : "F32", {blocks}));
  tensors->push_back(make_tensor(weight + ".quant_map", "F32", {16}));
  std::string state = R"({"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [)" +
                      std::to_string(out) + ", " + std::to_string(in) + "]";
  if (nested) {
    tensors->push_back(make_tensor(weight + ".nested_absmax", "F32", {(blocks + 255) / 256}));
    tensors->push_back(make_tensor(weight + ".nested_quant_map", "F32", {256}));
    state += R"(, "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.0123)";
  }
  tensors->push_back(bytes_tensor(weight + ".quant_state.bitsandbytes__nf4", state + "}"));
}

enum class Quant { kNone, kNf4, kNf4Nested };

// Every tensor `config` implies, in `dtype`; linear layers in NF4 when asked.
std::vector<TestTensor> model_tensors(const ModelConfig& c, const std::string& dtype, Quant quant = Quant::kNone) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t Q = c.num_attention_heads * c.head_dim, K = c.num_key_value_heads * c.head_dim;
  std::vector<TestTensor> t = {make_tensor("model.embed_tokens.weight", dtype, {V, H})};
  for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    t.push_back(make_tensor(p + "input_layernorm.weight", dtype, {H}));
    t.push_back(make_tensor(p + "post_attention_layernorm.weight", dtype, {H}));
    const struct {
      std::string name;
      int64_t out, in;
      bool bias;
    } linears[] = {{"self_attn.q_proj", Q, H, c.qkv_bias},  {"self_attn.k_proj", K, H, c.qkv_bias},
                   {"self_attn.v_proj", K, H, c.qkv_bias},  {"self_attn.o_proj", H, Q, c.o_bias},
                   {"mlp.gate_proj", I, H, false},          {"mlp.up_proj", I, H, false},
                   {"mlp.down_proj", H, I, false}};
    for (const auto& linear : linears) {
      if (quant == Quant::kNone) {
        t.push_back(make_tensor(p + linear.name + ".weight", dtype, {linear.out, linear.in}));
      } else {
        add_nf4(&t, p + linear.name + ".weight", linear.out, linear.in, quant == Quant::kNf4Nested);
      }
      if (linear.bias) t.push_back(make_tensor(p + linear.name + ".bias", dtype, {linear.out}));
    }
    if (c.arch == attune::Architecture::kQwen3) {
      t.push_back(make_tensor(p + "self_attn.q_norm.weight", dtype, {c.head_dim}));
      t.push_back(make_tensor(p + "self_attn.k_norm.weight", dtype, {c.head_dim}));
    }
  }
  t.push_back(make_tensor("model.norm.weight", dtype, {H}));
  if (!c.tie_word_embeddings) t.push_back(make_tensor("lm_head.weight", dtype, {V, H}));
  return t;
}

std::vector<TestTensor> without(std::vector<TestTensor> tensors, const std::string& name) {
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(), [&](const TestTensor& t) { return t.name == name; }),
                tensors.end());
  return tensors;
}

std::vector<TestTensor> replaced(std::vector<TestTensor> tensors, const TestTensor& replacement) {
  for (TestTensor& t : tensors) {
    if (t.name == replacement.name) t = replacement;
  }
  return tensors;
}

// Writes the tensors as dir/model.safetensors and checks them against `config`.
Status check(const attune_test::TempDir& dir, const ModelConfig& config, const std::vector<TestTensor>& tensors) {
  dir.write("model.safetensors", attune_test::safetensors_file(tensors));
  ModelWeights weights;
  if (Status status = ModelWeights::open(dir.path(), &weights); !status.ok()) return status;
  return attune::check_weights(config, weights);
}

}  // namespace

TEST(accepts_complete_models_of_each_architecture) {
  attune_test::TempDir dir;
  for (const char* arch : {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}) {
    const ModelConfig config = parse_config(tiny_config(arch));
    CHECK(succeeds(check(dir, config, model_tensors(config, "BF16"))));
    CHECK(succeeds(check(dir, config, model_tensors(config, "F32"))));
  }
  const ModelConfig biased = parse_config(tiny_config("LlamaForCausalLM", ", \"attention_bias\": true"));
  CHECK(succeeds(check(dir, biased, model_tensors(biased, "F16"))));
}

TEST(names_a_missing_tensor) {
  attune_test::TempDir dir;
  const ModelConfig config = parse_config(tiny_config("LlamaForCausalLM"));
  const auto tensors = model_tensors(config, "BF16");
  CHECK(fails_with(check(dir, config, without(tensors, "model.layers.1.self_attn.k_proj.weight")),
                   dir.path() + ": the model's weights have no tensor \"model.layers.1.self_attn.k_proj.weight\""));
  CHECK(fails_with(check(dir, config, without(tensors, "model.norm.weight")), "no tensor \"model.norm.weight\""));
  CHECK(fails_with(check(dir, config, without(tensors, "lm_head.weight")), "no tensor \"lm_head.weight\""));
}

TEST(names_a_wrong_shape_with_file_and_both_shapes) {
  attune_test::TempDir dir;
  const ModelConfig config = parse_config(tiny_config("MistralForCausalLM"));
  const auto tensors = replaced(model_tensors(config, "BF16"), make_tensor("model.layers.0.mlp.down_proj.weight", "BF16", {24, 16}));
  CHECK(fails_with(check(dir, config, tensors),
                   dir.path() + "/model.safetensors: tensor \"model.layers.0.mlp.down_proj.weight\" has shape [24, 16]; "
                                "expected [16, 24]"));
  // A checkpoint of another size: the embedding is checked first.
  const ModelConfig bigger = parse_config(tiny_config("MistralForCausalLM", "", 64));
  CHECK(fails_with(check(dir, bigger, model_tensors(config, "BF16")),
                   "tensor \"model.embed_tokens.weight\" has shape [32, 16]; expected [64, 16]"));
}

TEST(refuses_non_float_weights) {
  attune_test::TempDir dir;
  const ModelConfig config = parse_config(tiny_config("LlamaForCausalLM"));
  const auto tensors = replaced(model_tensors(config, "BF16"), make_tensor("model.layers.0.input_layernorm.weight", "I32", {16}));
  CHECK(fails_with(check(dir, config, tensors),
                   "model.safetensors: tensor \"model.layers.0.input_layernorm.weight\" has dtype I32; expected F32, F16 or BF16"));
}

TEST(checks_the_architecture_specific_tensors) {
  attune_test::TempDir dir;
  const ModelConfig qwen2 = parse_config(tiny_config("Qwen2ForCausalLM"));
  CHECK(fails_with(check(dir, qwen2, without(model_tensors(qwen2, "BF16"), "model.layers.0.self_attn.v_proj.bias")),
                   "no tensor \"model.layers.0.self_attn.v_proj.bias\""));
  CHECK(fails_with(check(dir, qwen2, replaced(model_tensors(qwen2, "BF16"), make_tensor("model.layers.1.self_attn.q_proj.bias", "BF16", {8}))),
                   "tensor \"model.layers.1.self_attn.q_proj.bias\" has shape [8]; expected [16]"));
  const ModelConfig qwen3 = parse_config(tiny_config("Qwen3ForCausalLM"));
  CHECK(fails_with(check(dir, qwen3, without(model_tensors(qwen3, "BF16"), "model.layers.1.self_attn.k_norm.weight")),
                   "no tensor \"model.layers.1.self_attn.k_norm.weight\""));
  // Qwen3's head_dim (8) is not hidden / heads (4): q_proj is [heads · 8, hidden].
  CHECK(fails_with(check(dir, qwen3, replaced(model_tensors(qwen3, "BF16"), make_tensor("model.layers.0.self_attn.q_proj.weight", "BF16", {16, 16}))),
                   "has shape [16, 16]; expected [32, 16]"));
}

TEST(tied_embeddings_need_no_lm_head_but_a_present_one_must_fit) {
  attune_test::TempDir dir;
  const ModelConfig tied = parse_config(tiny_config("Qwen2ForCausalLM", ", \"tie_word_embeddings\": true"));
  auto tensors = model_tensors(tied, "BF16");
  CHECK(succeeds(check(dir, tied, tensors)));
  tensors.push_back(make_tensor("lm_head.weight", "BF16", {32, 8}));
  CHECK(fails_with(check(dir, tied, tensors), "tensor \"lm_head.weight\" has shape [32, 8]; expected [32, 16]"));
}

TEST(accepts_nf4_quantized_linear_layers) {
  attune_test::TempDir dir;
  const std::string quant = R"(, "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": true,
                                 "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": )";
  const ModelConfig plain = parse_config(tiny_config("LlamaForCausalLM", quant + "false}"));
  CHECK(succeeds(check(dir, plain, model_tensors(plain, "BF16", Quant::kNf4))));
  const ModelConfig nested = parse_config(tiny_config("Qwen2ForCausalLM", quant + "true}"));
  CHECK(succeeds(check(dir, nested, model_tensors(nested, "BF16", Quant::kNf4Nested))));
  // A quantized config may still hold plain float layers (e.g. modules bitsandbytes skipped).
  CHECK(succeeds(check(dir, nested, model_tensors(nested, "BF16"))));

  dir.write("model.safetensors", attune_test::safetensors_file(model_tensors(nested, "BF16", Quant::kNf4Nested)));
  ModelWeights weights;
  CHECK(succeeds(ModelWeights::open(dir.path(), &weights)));
  attune::Nf4Layout layout;
  CHECK(succeeds(attune::check_nf4_weight(weights, *nested.quantization, "model.layers.0.mlp.up_proj.weight", 24, 16, &layout)));
  CHECK(layout.blocksize == 64 && layout.nested && layout.nested_blocksize == 256);
  CHECK(layout.nested_offset == 0.0123 && layout.dtype == "bfloat16");
}

TEST(refuses_broken_nf4_layers) {
  attune_test::TempDir dir;
  const ModelConfig config = parse_config(tiny_config("LlamaForCausalLM", R"(, "quantization_config": {
      "load_in_4bit": true, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true})"));
  const auto good = model_tensors(config, "BF16", Quant::kNf4Nested);
  const std::string up = "model.layers.0.mlp.up_proj.weight";
  CHECK(fails_with(check(dir, config, replaced(good, make_tensor(up, "U8", {100, 1}))),
                   "tensor \"" + up + "\" has shape [100, 1]; expected [192, 1]"));
  CHECK(fails_with(check(dir, config, replaced(good, make_tensor(up + ".absmax", "U8", {5}))),
                   "tensor \"" + up + ".absmax\" has shape [5]; expected [6]"));
  CHECK(fails_with(check(dir, config, replaced(good, make_tensor(up + ".absmax", "F32", {6}))),
                   "tensor \"" + up + ".absmax\" has dtype F32; a 4-bit NF4 layer stores it as U8"));
  CHECK(fails_with(check(dir, config, without(good, up + ".nested_quant_map")), "no tensor \"" + up + ".nested_quant_map\""));
  CHECK(fails_with(check(dir, config, without(good, up + ".quant_state.bitsandbytes__nf4")),
                   "no tensor \"" + up + ".quant_state.bitsandbytes__nf4\""));
  const std::string state = up + ".quant_state.bitsandbytes__nf4";
  CHECK(fails_with(check(dir, config, replaced(good, bytes_tensor(state, R"({"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16",
      "shape": [16, 24], "nested_blocksize": 256, "nested_offset": 0.0})"))),
                   "tensor \"" + state + "\": field \"shape\" must be [24, 16], the layer's shape from the model's config"));
  CHECK(fails_with(check(dir, config, replaced(good, bytes_tensor(state, R"({"quant_type": "fp4", "blocksize": 64})"))),
                   "field \"quant_type\" is \"fp4\"; Attune reads \"nf4\""));
  CHECK(fails_with(check(dir, config, replaced(good, bytes_tensor(state, "{\"quant_type\": "))),
                   "tensor \"" + state + "\": invalid JSON at byte 15"));
  // The layer is not double-quantized but the config says it is.
  std::vector<TestTensor> single;
  add_nf4(&single, up, 24, 16, false);
  auto mixed = good;
  for (const TestTensor& t : single) mixed = replaced(mixed, t);
  CHECK(fails_with(check(dir, config, mixed),
                   "tensor \"" + up + "\" is not double-quantized, but config.json's bnb_4bit_use_double_quant says otherwise"));
}

TEST(refuses_quantized_weights_without_a_quantization_config) {
  attune_test::TempDir dir;
  const ModelConfig config = parse_config(tiny_config("LlamaForCausalLM"));
  CHECK(fails_with(check(dir, config, model_tensors(config, "BF16", Quant::kNf4)),
                   "tensor \"model.layers.0.self_attn.q_proj.weight\" is U8, a quantized layer, but config.json has no "
                   "quantization_config"));
}
