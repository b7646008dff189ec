#include "train/trainer.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "adapter/dora.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu/ops_backward.h"
#include "train/grad_clip.h"

namespace attune::train {

namespace {

float* sized(std::vector<float>& buffer, int64_t n) {
  if (static_cast<int64_t>(buffer.size()) < n) {
    buffer.reserve(static_cast<size_t>(n));  // exactly n: what memory_plan.cpp counts
    buffer.resize(static_cast<size_t>(n));
  }
  return buffer.data();
}

// The bytes a buffer holds (its capacity).
template <typename T>
int64_t bytes(const std::vector<T>& v) {
  return static_cast<int64_t>(v.capacity() * sizeof(T));
}

}  // namespace

// What the backward of one decoder layer needs from its forward.
struct Trainer::Layer {
  std::vector<float> x_in, n1, rstd1, q_pre, k_pre, rstd_q, rstd_k, q, k, v, attn, lse, x_mid, n2, rstd2, gate, up, act;
  std::array<std::vector<float>, kModuleCount> u, inner;  // per adapted module: A·x_d, and DoRA's W·x_d + s·B·A·x_d
};

Trainer::Trainer(LlamaModel& model, AdapterSet adapters, unsigned threads, const TrainerOptions& options)
    : model_(model), adapters_(std::move(adapters)), pool_(std::max(1u, threads)), options_(options), optimizer_(options.adamw) {
  for (const Parameter& p : adapters_.parameters()) optimizer_.add_param(static_cast<int64_t>(p.value.size()));
  adapters_.refresh_weight_norms(pool_, model_);
}

MemoryPlan Trainer::allocated() const {
  MemoryPlan p;
  p.weights = model_.weight_file_bytes() + model_.dequantized_bytes();
  for (const Parameter& param : adapters_.parameters()) {
    p.adapters += bytes(param.value);
    p.gradients += bytes(param.grad);
  }
  for (const ModuleAdapter& a : adapters_.modules()) p.adapters += bytes(a.frozen_norm_sq) + bytes(a.weight_norm);
  for (size_t i = 0; i < optimizer_.num_params(); ++i) {
    p.optimizer += bytes(optimizer_.state(i).exp_avg) + bytes(optimizer_.state(i).exp_avg_sq);
  }
  p.activations = peak_activations_;
  p.workspace = peak_workspace_;
  p.total = p.weights + p.adapters + p.gradients + p.optimizer + p.activations + p.workspace;
  return p;
}

MemoryPlan Trainer::plan(int64_t seq_len) const {
  return plan_training_memory(model_.config(), adapters_.options(), seq_len, options_.gradient_checkpointing, model_.nf4_base(),
                              model_.weight_file_bytes());
}

Status Trainer::optimizer_step(double lr, double max_grad_norm, float* grad_norm) {
  std::vector<GradSpan> grads;
  std::vector<ParamSlot> slots;
  for (Parameter& p : adapters_.parameters()) {
    const int64_t n = static_cast<int64_t>(p.value.size());
    grads.push_back({p.grad.data(), n});
    slots.push_back({p.value.data(), p.grad.data(), n});
  }
  *grad_norm = max_grad_norm > 0 ? clip_grad_norm(grads, max_grad_norm, &pool_) : total_grad_norm(grads, &pool_);
  optimizer_.set_lr(lr);
  const Status status = optimizer_.step(slots, &pool_);
  if (!status.ok()) return status;
  adapters_.zero_grads();
  adapters_.refresh_weight_norms(pool_, model_);
  return {};
}

namespace {

// One linear layer of the decoder with its adapter (if targeted): forward and backward.
struct AdaptedLinear {
  cpu::ThreadPool& pool;
  const LlamaModel& model;
  AdapterSet& adapters;
  uint64_t seed;
  uint64_t sample;
  std::vector<float>& mask;
  std::vector<float>& scratch;

  const float* dropout(const ModuleAdapter& a, int64_t T, int64_t in) {
    const float p = adapters.options().dropout;
    if (p == 0) return nullptr;
    adapter::dropout_mask(pool, dropout_seed(seed, sample, a.layer, a.module), 0, p, T * in, sized(mask, T * in));
    return mask.data();
  }

  void forward(int64_t layer, Module module, const float* x, int64_t T, float* y, std::vector<float>& u, std::vector<float>& inner) {
    const LinearWeight& w = model.linear(layer, module);
    ModuleAdapter* a = adapters.find(layer, module);
    if (!a) {
      cpu::linear(pool, x, w.data, w.type, w.bias.empty() ? nullptr : w.bias.data(), y, T, w.in, w.out);
      return;
    }
    const float* m = dropout(*a, T, w.in);
    float* xd = m ? sized(scratch, T * w.in) : nullptr;
    sized(u, T * adapters.options().rank);
    if (adapters.options().dora) {
      adapter::dora_forward(pool, adapters.frozen(model, *a), adapters.lora(*a), adapters.parameters()[a->magnitude].value.data(),
                            a->weight_norm.data(), x, m, T, y, u.data(), sized(inner, T * w.out), xd);
    } else {
      adapter::lora_forward(pool, adapters.frozen(model, *a), adapters.lora(*a), x, m, T, y, u.data(), xd);
    }
  }

  // dx (=, or += when accumulate) ← dy through the layer; adapter gradients += .
  void backward(int64_t layer, Module module, const float* dy, const float* x, int64_t T, float* dx, bool accumulate,
                std::vector<float>& u, std::vector<float>& inner) {
    const LinearWeight& w = model.linear(layer, module);
    ModuleAdapter* a = adapters.find(layer, module);
    if (!a) {
      cpu::linear_backward_input(pool, dy, w.data, w.type, dx, T, w.in, w.out, accumulate);
      return;
    }
    const float* m = dropout(*a, T, w.in);
    float* xd = m ? sized(scratch, T * w.in) : nullptr;
    if (adapters.options().dora) {
      Parameter& magnitude = adapters.parameters()[a->magnitude];
      adapter::dora_backward(pool, adapters.frozen(model, *a), adapters.lora(*a), magnitude.value.data(), a->weight_norm.data(), dy,
                             x, m, u.data(), inner.data(), T, dx, accumulate, adapters.grads(*a), magnitude.grad.data(), xd);
    } else {
      adapter::lora_backward(pool, adapters.frozen(model, *a), adapters.lora(*a), dy, x, m, u.data(), T, dx, accumulate,
                             adapters.grads(*a), xd);
    }
  }
};

}  // namespace

void Trainer::forward_layer(int64_t l, const float* x_in, int64_t T, uint64_t sample, Layer& s, float* x_out) {
  // x_in, x_out: [T, H]
  const ModelConfig& c = model_.config();
  const DecoderLayer& w = model_.layers()[static_cast<size_t>(l)];
  const int64_t H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim, nh = c.num_attention_heads, nkv = c.num_key_value_heads;
  const float eps = static_cast<float>(c.rms_norm_eps);
  std::vector<float> mask, scratch;
  AdaptedLinear linear{pool_, model_, adapters_, options_.seed, sample, mask, scratch};

  std::memcpy(sized(s.x_in, T * H), x_in, static_cast<size_t>(T * H) * sizeof(float));
  cpu::rmsnorm_forward(pool_, s.x_in.data(), w.input_norm.data(), eps, T, H, sized(s.n1, T * H), sized(s.rstd1, T));
  linear.forward(l, Module::kQ, s.n1.data(), T, sized(s.q, T * nh * hd), s.u[0], s.inner[0]);
  linear.forward(l, Module::kK, s.n1.data(), T, sized(s.k, T * nkv * hd), s.u[1], s.inner[1]);
  linear.forward(l, Module::kV, s.n1.data(), T, sized(s.v, T * nkv * hd), s.u[2], s.inner[2]);
  if (!w.q_norm.empty()) {
    // Qwen3: each head's query and key are normalised before the rotation.
    s.q_pre.assign(s.q.begin(), s.q.begin() + T * nh * hd);
    s.k_pre.assign(s.k.begin(), s.k.begin() + T * nkv * hd);
    cpu::rmsnorm_forward(pool_, s.q_pre.data(), w.q_norm.data(), eps, T * nh, hd, s.q.data(), sized(s.rstd_q, T * nh));
    cpu::rmsnorm_forward(pool_, s.k_pre.data(), w.k_norm.data(), eps, T * nkv, hd, s.k.data(), sized(s.rstd_k, T * nkv));
  }
  RopeTable& rope = model_.rope();
  cpu::rope_forward(pool_, s.q.data(), positions_.data(), T, nh, hd, rope.cos(), rope.sin());
  cpu::rope_forward(pool_, s.k.data(), positions_.data(), T, nkv, hd, rope.cos(), rope.sin());
  cpu::attention_forward_train(pool_, s.q.data(), s.k.data(), s.v.data(), T, nh, nkv, hd, sized(s.attn, T * nh * hd),
                               sized(s.lse, T * nh));
  linear.forward(l, Module::kO, s.attn.data(), T, x_out, s.u[3], s.inner[3]);
  cpu::add_inplace(pool_, x_out, s.x_in.data(), T * H);
  std::memcpy(sized(s.x_mid, T * H), x_out, static_cast<size_t>(T * H) * sizeof(float));

  cpu::rmsnorm_forward(pool_, s.x_mid.data(), w.post_attention_norm.data(), eps, T, H, sized(s.n2, T * H), sized(s.rstd2, T));
  linear.forward(l, Module::kGate, s.n2.data(), T, sized(s.gate, T * I), s.u[4], s.inner[4]);
  linear.forward(l, Module::kUp, s.n2.data(), T, sized(s.up, T * I), s.u[5], s.inner[5]);
  cpu::swiglu_forward(pool_, s.gate.data(), s.up.data(), T * I, sized(s.act, T * I));
  linear.forward(l, Module::kDown, s.act.data(), T, x_out, s.u[6], s.inner[6]);
  cpu::add_inplace(pool_, x_out, s.x_mid.data(), T * H);
}

void Trainer::backward_layer(int64_t l, Layer& s, int64_t T, uint64_t sample, float* dx) {
  // dx [T, H]: in, the gradient at the layer's output; out, at its input.
  const ModelConfig& c = model_.config();
  const DecoderLayer& w = model_.layers()[static_cast<size_t>(l)];
  const int64_t H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim, nh = c.num_attention_heads, nkv = c.num_key_value_heads;
  std::vector<float> mask, scratch, d_act(static_cast<size_t>(T * I)), dgate(static_cast<size_t>(T * I)),
      dup(static_cast<size_t>(T * I)), dn(static_cast<size_t>(T * H)), dattn(static_cast<size_t>(T * nh * hd)),
      dq(static_cast<size_t>(T * nh * hd)), dk(static_cast<size_t>(T * nkv * hd)), dv(static_cast<size_t>(T * nkv * hd));
  AdaptedLinear linear{pool_, model_, adapters_, options_.seed, sample, mask, scratch};

  // MLP: x_out = x_mid + down(silu(gate(n2)) · up(n2)), n2 = norm(x_mid)
  linear.backward(l, Module::kDown, dx, s.act.data(), T, d_act.data(), false, s.u[6], s.inner[6]);
  cpu::swiglu_backward(pool_, d_act.data(), s.gate.data(), s.up.data(), T * I, dgate.data(), dup.data());
  linear.backward(l, Module::kGate, dgate.data(), s.n2.data(), T, dn.data(), false, s.u[4], s.inner[4]);
  linear.backward(l, Module::kUp, dup.data(), s.n2.data(), T, dn.data(), true, s.u[5], s.inner[5]);
  cpu::rmsnorm_backward(pool_, dn.data(), s.x_mid.data(), w.post_attention_norm.data(), s.rstd2.data(), T, H, dx, true);

  // Attention: x_mid = x_in + o(attn(rope(q(n1)), rope(k(n1)), v(n1))), n1 = norm(x_in)
  linear.backward(l, Module::kO, dx, s.attn.data(), T, dattn.data(), false, s.u[3], s.inner[3]);
  cpu::attention_backward(pool_, dattn.data(), s.q.data(), s.k.data(), s.v.data(), s.lse.data(), T, nh, nkv, hd, dq.data(),
                          dk.data(), dv.data());
  RopeTable& rope = model_.rope();
  cpu::rope_backward(pool_, dq.data(), positions_.data(), T, nh, hd, rope.cos(), rope.sin());
  cpu::rope_backward(pool_, dk.data(), positions_.data(), T, nkv, hd, rope.cos(), rope.sin());
  if (!w.q_norm.empty()) {
    cpu::rmsnorm_backward(pool_, dq.data(), s.q_pre.data(), w.q_norm.data(), s.rstd_q.data(), T * nh, hd, dq.data(), false);
    cpu::rmsnorm_backward(pool_, dk.data(), s.k_pre.data(), w.k_norm.data(), s.rstd_k.data(), T * nkv, hd, dk.data(), false);
  }
  linear.backward(l, Module::kQ, dq.data(), s.n1.data(), T, dn.data(), false, s.u[0], s.inner[0]);
  linear.backward(l, Module::kK, dk.data(), s.n1.data(), T, dn.data(), true, s.u[1], s.inner[1]);
  linear.backward(l, Module::kV, dv.data(), s.n1.data(), T, dn.data(), true, s.u[2], s.inner[2]);
  cpu::rmsnorm_backward(pool_, dn.data(), s.x_in.data(), w.input_norm.data(), s.rstd1.data(), T, H, dx, true);
  int64_t held = 0;
  for (const std::vector<float>* b : {&mask, &scratch, &d_act, &dgate, &dup, &dn, &dattn, &dq, &dk, &dv}) held += bytes(*b);
  backward_scratch_ = std::max(backward_scratch_, held);
}

Status check_training_sequence(const int32_t* ids, const int32_t* labels, int64_t T, int64_t vocab) {
  if (T < 2) return Status::invalid_argument("A training sequence needs at least two tokens");
  for (int64_t t = 0; t < T; ++t) {
    if (ids[t] < 0 || ids[t] >= vocab) return Status::invalid_argument("Token id " + std::to_string(ids[t]) + " is outside the vocabulary");
    if (labels[t] != -100 && (labels[t] < 0 || labels[t] >= vocab)) {
      return Status::invalid_argument("Label " + std::to_string(labels[t]) + " is neither a token id nor -100");
    }
  }
  return {};
}

Status Trainer::accumulate(const int32_t* ids, const int32_t* labels, int64_t T, float loss_scale, uint64_t sample,
                           double* loss_sum, int64_t* targets) {
  const ModelConfig& c = model_.config();
  const int64_t H = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
  *loss_sum = 0;
  *targets = 0;
  if (Status checked = check_training_sequence(ids, labels, T, V); !checked.ok()) return checked;
  model_.rope().ensure(T);
  positions_.resize(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) positions_[static_cast<size_t>(t)] = static_cast<int32_t>(t);

  // Forward, keeping each layer's input (checkpointing) or all its activations.
  const size_t kept = options_.gradient_checkpointing ? 1 : static_cast<size_t>(L);
  std::vector<Layer> saved(kept);
  std::vector<std::vector<float>> inputs(static_cast<size_t>(L + 1), std::vector<float>(static_cast<size_t>(T * H)));
  cpu::embedding_forward(pool_, ids, T, model_.embedding(), model_.embedding_type(), H, inputs[0].data());
  for (int64_t l = 0; l < L; ++l) {
    forward_layer(l, inputs[static_cast<size_t>(l)].data(), T, sample, saved[options_.gradient_checkpointing ? 0 : static_cast<size_t>(l)],
                  inputs[static_cast<size_t>(l + 1)].data());
  }

  // Head: final norm, lm_head and cross-entropy a chunk of positions at a time; position t scores labels[t+1].
  const float eps = static_cast<float>(c.rms_norm_eps);
  std::vector<float> hidden(static_cast<size_t>(T * H)), rstd(static_cast<size_t>(T)), dhidden(static_cast<size_t>(T * H));
  cpu::rmsnorm_forward(pool_, inputs[static_cast<size_t>(L)].data(), model_.final_norm().data(), eps, T, H, hidden.data(), rstd.data());
  std::vector<int32_t> shifted(static_cast<size_t>(T), -100);
  std::copy(labels + 1, labels + T, shifted.begin());
  const LinearWeight& head = model_.lm_head();
  std::vector<float> logits(static_cast<size_t>(kLogitRows * V));
  for (int64_t t0 = 0; t0 < T; t0 += kLogitRows) {
    const int64_t rows = std::min(kLogitRows, T - t0);
    cpu::linear(pool_, hidden.data() + t0 * H, head.data, head.type, nullptr, logits.data(), rows, H, V);
    *loss_sum += cpu::cross_entropy_forward_backward(pool_, logits.data(), shifted.data() + t0, rows, V, loss_scale, logits.data(), targets);
    cpu::linear_backward_input(pool_, logits.data(), head.data, head.type, dhidden.data() + t0 * H, rows, H, V, false);
  }
  std::vector<float> dx(static_cast<size_t>(T * H));
  cpu::rmsnorm_backward(pool_, dhidden.data(), inputs[static_cast<size_t>(L)].data(), model_.final_norm().data(), rstd.data(), T, H,
                        dx.data(), false);

  // Backward through the layers, recomputing each one's activations when checkpointing.
  std::vector<float> recomputed(static_cast<size_t>(T * H));
  backward_scratch_ = 0;
  for (int64_t l = L - 1; l >= 0; --l) {
    Layer& acts = saved[options_.gradient_checkpointing ? 0 : static_cast<size_t>(l)];
    if (options_.gradient_checkpointing) forward_layer(l, inputs[static_cast<size_t>(l)].data(), T, sample, acts, recomputed.data());
    backward_layer(l, acts, T, sample, dx.data());
  }

  // What this sequence held at its peak (the backward of a layer): for allocated().
  int64_t activations = 0;
  for (const std::vector<float>& input : inputs) activations += bytes(input);
  for (const Layer& layer : saved) {
    for (const std::vector<float>* b : {&layer.x_in, &layer.n1, &layer.rstd1, &layer.q_pre, &layer.k_pre, &layer.rstd_q, &layer.rstd_k,
                                        &layer.q, &layer.k, &layer.v, &layer.attn, &layer.lse, &layer.x_mid, &layer.n2, &layer.rstd2,
                                        &layer.gate, &layer.up, &layer.act}) {
      activations += bytes(*b);
    }
    for (size_t m = 0; m < layer.u.size(); ++m) activations += bytes(layer.u[m]) + bytes(layer.inner[m]);
  }
  const int64_t workspace = bytes(hidden) + bytes(rstd) + bytes(dhidden) + bytes(logits) + bytes(dx) + bytes(recomputed) +
                            bytes(shifted) + bytes(positions_) + backward_scratch_;
  peak_activations_ = std::max(peak_activations_, activations);
  peak_workspace_ = std::max(peak_workspace_, workspace);
  return {};
}

}  // namespace attune::train
