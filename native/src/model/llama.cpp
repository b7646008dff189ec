#include "model/llama.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "model/check_weights.h"
#include "quant/nf4_weight.h"
#include "adapter/dora.h"
#include "tensor/convert.h"

namespace attune {

namespace {

Status weight_type(const TensorView& tensor, WeightType* out) {
  switch (tensor.dtype) {
    case DType::kF32: *out = WeightType::F32; return {};
    case DType::kBF16: *out = WeightType::BF16; return {};
    case DType::kF16: *out = WeightType::F16; return {};
    default:
      return Status::invalid_argument("Tensor \"" + tensor.name + "\" is stored as " + dtype_name(tensor.dtype) +
                                      "; Attune runs F32, F16 and BF16 weights here");
  }
}

RopeParams rope_params(const ModelConfig& c) {
  RopeParams p;
  p.theta = c.rope_theta;
  p.dim = c.head_dim;
  switch (c.rope_scaling.type) {
    case RopeScaling::Type::kNone: p.scaling = RopeParams::Scaling::kNone; break;
    case RopeScaling::Type::kLinear: p.scaling = RopeParams::Scaling::kLinear; break;
    case RopeScaling::Type::kLlama3: p.scaling = RopeParams::Scaling::kLlama3; break;
  }
  p.factor = c.rope_scaling.factor;
  p.low_freq_factor = c.rope_scaling.low_freq_factor;
  p.high_freq_factor = c.rope_scaling.high_freq_factor;
  p.original_max_positions = c.rope_scaling.original_max_position_embeddings;
  return p;
}

// Grows a scratch buffer without shrinking, so steady-state decoding never allocates.
float* sized(std::vector<float>& buffer, int64_t n) {
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(static_cast<size_t>(n));
  return buffer.data();
}

void apply_linear(Backend& backend, const float* x, const LinearWeight& w, float* y, int64_t T) {
  backend.linear(x, w.data, w.type, w.bias.empty() ? nullptr : w.bias.data(), y, T, w.in, w.out);
}

}  // namespace

Status LlamaModel::load(const std::string& dir, unsigned threads, std::unique_ptr<LlamaModel>* out, const LoadOptions& options) {
  std::unique_ptr<LlamaModel> model(new LlamaModel());
  Status status = load_model_config(dir, &model->config_);
  if (!status.ok()) return status;
  status = ModelWeights::open(dir, &model->weights_);
  if (!status.ok()) return status;
  status = check_weights(model->config_, model->weights_);
  if (!status.ok()) return status;
  model->backend_ = make_cpu_backend(std::max(1u, threads));
  model->rope_ = std::make_unique<RopeTable>(rope_params(model->config_));
  status = model->bind_weights(std::max(1u, threads), options);
  if (!status.ok()) return status;
  *out = std::move(model);
  return {};
}

Status LlamaModel::bind_weights(unsigned threads, const LoadOptions& options) {
  const ModelConfig& c = config_;
  nf4_base_ = c.quantization.has_value() || options.quantize_nf4;
  cpu::ThreadPool pool(threads);
  // A 4-bit base computes with its dequantized values, kept in fp32 (already rounded to the
  // model's dtype, as bitsandbytes hands them to the matmul).
  auto nf4_dequantized = [&](const std::string& name, int64_t out, int64_t in, LinearWeight* w) {
    quant::Nf4Weight nf4;
    Status s;
    if (c.quantization) {
      s = quant::Nf4Weight::load(weights_, *c.quantization, name, out, in, &nf4);
    } else {
      const TensorView* view = weights_.find(name);
      if (!view) return weights_.missing(name);
      quant::Nf4Quantized q;
      s = quant::nf4_quantize(*view, quant::Nf4Options(), &pool, &q);
      if (s.ok()) s = quant::Nf4Weight::from_quantized(std::move(q), out, in, view->dtype, &nf4);
    }
    if (!s.ok()) return s;
    dequantized_.push_back(nf4.dequantize(&pool));
    w->data = dequantized_.back().data();
    w->type = WeightType::F32;
    w->out = out;
    w->in = in;
    return Status();
  };
  // check_weights() has verified every name and shape; here they are only looked up.
  auto tensor = [&](const std::string& name, const TensorView** view) {
    *view = weights_.find(name);
    return *view ? Status() : weights_.missing(name);
  };
  auto vector = [&](const std::string& name, std::vector<float>* values) {
    const TensorView* view = nullptr;
    Status s = tensor(name, &view);
    return s.ok() ? to_f32(*view, values) : s;
  };
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  const int64_t q_out = c.num_attention_heads * c.head_dim, kv_out = c.num_key_value_heads * c.head_dim;
  // [out, in] of each decoder linear, by its name's suffix (a 4-bit tensor's shape is packed bytes).
  auto dims = [&](const std::string& prefix) -> std::pair<int64_t, int64_t> {
    auto ends = [&](const char* suffix) { return prefix.size() >= std::strlen(suffix) && prefix.compare(prefix.size() - std::strlen(suffix), std::string::npos, suffix) == 0; };
    if (ends("q_proj")) return {q_out, H};
    if (ends("k_proj") || ends("v_proj")) return {kv_out, H};
    if (ends("o_proj")) return {H, q_out};
    if (ends("down_proj")) return {H, I};
    return {I, H};  // gate_proj, up_proj
  };
  auto linear = [&](const std::string& prefix, bool bias, LinearWeight* w) {
    if (nf4_base_) {
      const auto [out, in] = dims(prefix);
      Status s = nf4_dequantized(prefix + ".weight", out, in, w);
      if (!s.ok()) return s;
      return bias ? vector(prefix + ".bias", &w->bias) : Status();
    }
    const TensorView* view = nullptr;
    Status s = tensor(prefix + ".weight", &view);
    if (!s.ok()) return s;
    s = weight_type(*view, &w->type);
    if (!s.ok()) return s;
    w->data = view->data;
    w->out = view->shape[0];
    w->in = view->shape[1];
    return bias ? vector(prefix + ".bias", &w->bias) : Status();
  };

  const TensorView* embedding = nullptr;
  Status s = tensor("model.embed_tokens.weight", &embedding);
  if (!s.ok()) return s;
  s = weight_type(*embedding, &embedding_type_);
  if (!s.ok()) return s;
  embedding_ = embedding->data;

  const bool qkv_bias = c.qkv_bias;
  layers_.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    DecoderLayer& layer = layers_[static_cast<size_t>(i)];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (Status step : {vector(p + "input_layernorm.weight", &layer.input_norm),
                        vector(p + "post_attention_layernorm.weight", &layer.post_attention_norm),
                        linear(p + "self_attn.q_proj", qkv_bias, &layer.q), linear(p + "self_attn.k_proj", qkv_bias, &layer.k),
                        linear(p + "self_attn.v_proj", qkv_bias, &layer.v), linear(p + "self_attn.o_proj", c.o_bias, &layer.o),
                        linear(p + "mlp.gate_proj", false, &layer.gate), linear(p + "mlp.up_proj", false, &layer.up),
                        linear(p + "mlp.down_proj", false, &layer.down)}) {
      if (!step.ok()) return step;
    }
    if (c.arch == Architecture::kQwen3) {
      s = vector(p + "self_attn.q_norm.weight", &layer.q_norm);
      if (s.ok()) s = vector(p + "self_attn.k_norm.weight", &layer.k_norm);
      if (!s.ok()) return s;
    }
  }
  s = vector("model.norm.weight", &final_norm_);
  if (!s.ok()) return s;
  if (c.tie_word_embeddings) {
    lm_head_.data = embedding_;
    lm_head_.type = embedding_type_;
    lm_head_.in = c.hidden_size;
    lm_head_.out = c.vocab_size;
    return {};
  }
  // lm_head is never quantized (it keeps its dtype in a 4-bit checkpoint too).
  const TensorView* head = nullptr;
  s = tensor("lm_head.weight", &head);
  if (!s.ok()) return s;
  s = weight_type(*head, &lm_head_.type);
  if (!s.ok()) return s;
  lm_head_.data = head->data;
  lm_head_.out = head->shape[0];
  lm_head_.in = head->shape[1];
  return {};
}

Status LlamaModel::new_cache(int64_t capacity, std::unique_ptr<KvCache>* out) const {
  const ModelConfig& c = config_;
  if (capacity <= 0) return Status::invalid_argument("The context must hold at least one token");
  if (c.sliding_window > 0 && capacity > c.sliding_window) {
    return Status::invalid_argument("This model was trained with sliding-window attention over " +
                                    std::to_string(c.sliding_window) +
                                    " tokens, which Attune does not implement yet; keep the text under that length");
  }
  try {
    *out = std::make_unique<KvCache>(c.num_hidden_layers, capacity, c.num_key_value_heads, c.head_dim);
  } catch (const std::bad_alloc&) {
    const double gb = 2.0 * c.num_hidden_layers * capacity * c.num_key_value_heads * c.head_dim * 4 / 1e9;
    return Status::invalid_argument("Not enough memory for a context of " + std::to_string(capacity) + " tokens (needs " +
                                    std::to_string(gb) + " GB); use a shorter context");
  }
  return {};
}

Status LlamaModel::forward(const int32_t* ids, int64_t T, KvCache& cache, ForwardWorkspace& ws, float* hidden) {
  // ids: [T]; hidden: [T, H]. Activations: x [T,H], q [T,nh·hd], k/v [T,nkv·hd], gate/up [T,I].
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim;
  const int64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads;
  const int64_t past = cache.length;
  if (T <= 0) return Status::invalid_argument("forward needs at least one token");
  if (past + T > cache.capacity) {
    return Status::invalid_argument("The text is longer than the context (" + std::to_string(past + T) + " > " +
                                    std::to_string(cache.capacity) + " tokens)");
  }
  for (int64_t t = 0; t < T; ++t) {
    if (ids[t] < 0 || ids[t] >= c.vocab_size) {
      return Status::invalid_argument("Token id " + std::to_string(ids[t]) + " is outside the vocabulary (0.." +
                                      std::to_string(c.vocab_size - 1) + ")");
    }
  }
  Backend& backend = *backend_;
  rope_->ensure(past + T);
  ws.positions.resize(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) ws.positions[static_cast<size_t>(t)] = static_cast<int32_t>(past + t);

  float* x = sized(ws.x, T * H);
  float* normed = sized(ws.normed, T * H);
  float* q = sized(ws.q, T * nh * hd);
  float* k = sized(ws.k, T * nkv * hd);
  float* v = sized(ws.v, T * nkv * hd);
  float* attn = sized(ws.attn, T * nh * hd);
  float* proj = sized(ws.proj, T * H);
  float* gate = sized(ws.gate, T * I);
  float* up = sized(ws.up, T * I);

  backend.embedding(ids, T, embedding_, embedding_type_, H, x);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const DecoderLayer& layer = layers_[l];
    backend.rmsnorm(x, layer.input_norm.data(), c.rms_norm_eps, T, H, normed, nullptr);
    project(static_cast<int64_t>(l), Module::kQ, normed, q, T);
    project(static_cast<int64_t>(l), Module::kK, normed, k, T);
    project(static_cast<int64_t>(l), Module::kV, normed, v, T);
    if (!layer.q_norm.empty()) {
      // Qwen3 normalises each head's query and key before the rotation.
      backend.rmsnorm(q, layer.q_norm.data(), c.rms_norm_eps, T * nh, hd, q, nullptr);
      backend.rmsnorm(k, layer.k_norm.data(), c.rms_norm_eps, T * nkv, hd, k, nullptr);
    }
    backend.rope(q, ws.positions.data(), T, nh, hd, rope_->cos(), rope_->sin());
    backend.rope(k, ws.positions.data(), T, nkv, hd, rope_->cos(), rope_->sin());
    const size_t row = static_cast<size_t>(cache.row_size);
    std::memcpy(cache.k[l].data() + past * cache.row_size, k, static_cast<size_t>(T) * row * sizeof(float));
    std::memcpy(cache.v[l].data() + past * cache.row_size, v, static_cast<size_t>(T) * row * sizeof(float));
    backend.attention(q, cache.k[l].data(), cache.v[l].data(), T, past, nh, nkv, hd, attn);
    project(static_cast<int64_t>(l), Module::kO, attn, proj, T);
    backend.add(x, proj, T * H);

    backend.rmsnorm(x, layer.post_attention_norm.data(), c.rms_norm_eps, T, H, normed, nullptr);
    project(static_cast<int64_t>(l), Module::kGate, normed, gate, T);
    project(static_cast<int64_t>(l), Module::kUp, normed, up, T);
    backend.swiglu(gate, up, T * I, gate);
    project(static_cast<int64_t>(l), Module::kDown, gate, proj, T);
    backend.add(x, proj, T * H);
  }
  cache.length = past + T;
  backend.rmsnorm(x, final_norm_.data(), c.rms_norm_eps, T, H, hidden, nullptr);
  return {};
}

int64_t LlamaModel::weight_file_bytes() const {
  int64_t n = 0;
  for (const SafetensorsFile& file : weights_.files()) n += static_cast<int64_t>(file.mapped_bytes());
  return n;
}

int64_t LlamaModel::dequantized_bytes() const {
  int64_t n = 0;
  for (const std::vector<float>& values : dequantized_) n += static_cast<int64_t>(values.capacity() * sizeof(float));
  return n;
}

const LinearWeight& LlamaModel::linear(int64_t layer, Module module) const {
  const DecoderLayer& l = layers_[static_cast<size_t>(layer)];
  const LinearWeight* weights[kModuleCount] = {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down};
  return *weights[static_cast<int>(module)];
}

void LlamaModel::project(int64_t layer, Module module, const float* x, float* y, int64_t T) {
  const LinearWeight& w = linear(layer, module);
  const InferenceAdapter::Factors* f = nullptr;
  if (adapter_) {
    const auto& slot = adapter_->layers[static_cast<size_t>(layer)][static_cast<size_t>(module)];
    if (slot) f = &*slot;
  }
  const float* bias = w.bias.empty() ? nullptr : w.bias.data();
  if (!f) {
    backend_->linear(x, w.data, w.type, bias, y, T, w.in, w.out);
  } else if (adapter_->dora) {
    backend_->dora_linear(x, w.data, w.type, bias, f->a.data(), f->b.data(), adapter_->rank, adapter_->scaling, f->magnitude.data(),
                          f->norm.data(), y, T, w.in, w.out);
  } else {
    backend_->lora_linear(x, w.data, w.type, bias, f->a.data(), f->b.data(), adapter_->rank, adapter_->scaling, y, T, w.in, w.out);
  }
}

Status LlamaModel::set_adapter(InferenceAdapter adapter) {
  const int64_t L = config_.num_hidden_layers, r = adapter.rank;
  if (static_cast<int64_t>(adapter.layers.size()) != L) {
    return Status::invalid_argument("The adapter has " + std::to_string(adapter.layers.size()) + " layers; this model has " + std::to_string(L));
  }
  cpu::ThreadPool pool(2);
  for (int64_t l = 0; l < L; ++l) {
    for (int m = 0; m < kModuleCount; ++m) {
      auto& slot = adapter.layers[static_cast<size_t>(l)][static_cast<size_t>(m)];
      if (!slot) continue;
      const LinearWeight& w = linear(l, static_cast<Module>(m));
      const std::string where = "layer " + std::to_string(l) + " " + module_name(static_cast<Module>(m));
      if (static_cast<int64_t>(slot->a.size()) != r * w.in || static_cast<int64_t>(slot->b.size()) != w.out * r) {
        return Status::invalid_argument("The adapter's " + where + " factors do not fit this model (trained for a different base model?)");
      }
      if (adapter.dora) {
        if (static_cast<int64_t>(slot->magnitude.size()) != w.out) return Status::invalid_argument("The adapter's " + where + " magnitude does not fit this model");
        slot->norm.resize(static_cast<size_t>(w.out));
        adapter::dora_weight_norm_direct(pool, {w.data, w.type, w.bias.empty() ? nullptr : w.bias.data(), w.in, w.out},
                                         {slot->a.data(), slot->b.data(), r, adapter.scaling}, slot->norm.data());
      }
    }
  }
  adapter_ = std::move(adapter);
  return {};
}

void LlamaModel::logits(const float* hidden, int64_t T, float* out) { apply_linear(*backend_, hidden, lm_head_, out, T); }

}  // namespace attune
