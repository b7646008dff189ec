#include "cuda/cuda_trainer.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <array>
#include <map>
#include <vector>

#include "cuda/adapter_layers.h"
#include "cuda/cuda_probe.h"
#include "cuda/cuda_status.h"
#include "cuda/device_model.h"
#include "cuda/ops_adapter.h"
#include "cuda/ops_attention.h"
#include "cuda/ops_elementwise.h"
#include "cuda/ops_loss.h"
#include "cuda/ops_norm.h"
#include "cuda/ops_optimizer.h"
#include "cuda/ops_rope.h"
#include "train/gpu_memory_plan.h"

namespace attune::cuda {

namespace {

// Full-vocabulary logits exist for kLogitRows positions at a time only; cuBLASLt gets the
// workspace Hopper's fastest kernels ask for. Both are in the memory plan (train/gpu_memory_plan.h),
// which counts every buffer below.
constexpr int64_t kLogitRows = train::kGpuLogitRows;
constexpr size_t kGemmWorkspace = static_cast<size_t>(train::kGpuGemmWorkspace);

// One trainable tensor on the GPU: fp32 value, gradient and AdamW moments, plus the value in the
// compute type that the products read (the value itself in fp32 mode).
struct DeviceParam {
  DeviceBuffer value, grad, exp_avg, exp_avg_sq, compute;
  int64_t numel = 0;
};

// One targeted module's adapter: indices into the parameters, and DoRA's per-row state.
struct ModuleState {
  int64_t layer = 0;
  Module module = Module::kQ;
  size_t a = 0, b = 0, magnitude = SIZE_MAX;
  DeviceBuffer w_norm_sq, norm, g, wa, gram;  // DoRA: ‖W‖², n, m/n, A·Wᵀ [r,out], A·Aᵀ [r,r]
};

// What the backward of one decoder layer needs from its forward (train::Trainer::Layer).
struct LayerActs {
  DeviceBuffer x_in, n1, rstd1, q_pre, k_pre, rstd_q, rstd_k, q, k, v, attn, lse, x_mid, n2, rstd2, gate, up, act;
  std::array<DeviceBuffer, kModuleCount> u, inner;
};

int64_t sum_bytes(std::initializer_list<const DeviceBuffer*> buffers) {
  int64_t total = 0;
  for (const DeviceBuffer* b : buffers) total += b->bytes();
  return total;
}

template <typename E>
class Trainer final : public CudaTrainer {
 public:
  Trainer(LlamaModel& model, const CudaTrainerOptions& options) : model_(model), options_(options) {}
  ~Trainer() override {
    gemm_.reset();
    if (stream_) cudaStreamDestroy(stream_);
  }

  Status init(const train::AdapterSet& adapters) {
    ATTUNE_CUDA_TRY(check(cudaSetDevice(options_.device), "selecting the GPU"));
    ATTUNE_CUDA_TRY(check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating a CUDA stream"));
    ATTUNE_CUDA_TRY(Gemm::create(stream_, kGemmWorkspace, &gemm_));
    ATTUNE_CUDA_TRY(upload_model(model_, gemm_type<E>(), &weights_));
    rank_ = adapters.options().rank;
    scaling_ = adapters.scaling();
    dora_ = adapters.options().dora;
    dropout_ = adapters.options().dropout;
    for (const train::Parameter& p : adapters.parameters()) {
      DeviceParam& d = params_.emplace_back();
      d.numel = static_cast<int64_t>(p.value.size());
      ATTUNE_CUDA_TRY(upload_floats(p.value.data(), d.numel, p.name, &d.value));
      for (DeviceBuffer* b : {&d.grad, &d.exp_avg, &d.exp_avg_sq}) ATTUNE_CUDA_TRY(zeroed(*b, d.numel, p.name));
      if (gemm_type<E>() == GemmType::kBF16) ATTUNE_CUDA_TRY(d.compute.allocate(d.numel * 2, p.name + " (bf16)"));
    }
    for (const train::ModuleAdapter& a : adapters.modules()) {
      ModuleState& m = modules_.emplace_back();
      m.layer = a.layer;
      m.module = a.module;
      m.a = a.a;
      m.b = a.b;
      m.magnitude = a.magnitude;
      if (dora_) {
        const int64_t out = weights_.layers[static_cast<size_t>(a.layer)].linears[static_cast<size_t>(a.module)].out;
        ATTUNE_CUDA_TRY(upload_floats(a.frozen_norm_sq.data(), out, "DoRA's frozen norms", &m.w_norm_sq));
        ATTUNE_CUDA_TRY(m.norm.allocate(out * 4, "DoRA's weight norms"));
        ATTUNE_CUDA_TRY(m.g.allocate(out * 4, "DoRA's magnitude scales"));
        ATTUNE_CUDA_TRY(m.wa.allocate(rank_ * out * 4, "DoRA's A·Wᵀ"));
        ATTUNE_CUDA_TRY(m.gram.allocate(rank_ * rank_ * 4, "DoRA's A·Aᵀ"));
      }
    }
    for (const ModuleState& m : modules_) by_module_[key(m.layer, m.module)] = &m - modules_.data();
    // The copies and memsets above ran on the legacy default stream, which stream_ (non-blocking)
    // does not wait for: a copy from pageable memory may return before its data has landed.
    ATTUNE_CUDA_TRY(check(cudaDeviceSynchronize(), "copying the model and the adapters to the GPU"));
    ATTUNE_CUDA_TRY(refresh_adapters());
    return synchronize();
  }

  Status accumulate(const int32_t* ids, const int32_t* labels, int64_t T, float loss_scale, uint64_t sample,
                    double* loss_sum, int64_t* targets) override {
    const ModelConfig& c = model_.config();
    const int64_t H = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
    *loss_sum = 0;
    *targets = 0;
    if (Status checked = train::check_training_sequence(ids, labels, T, V); !checked.ok()) return checked;
    sample_ = sample;
    ATTUNE_CUDA_TRY(prepare_sequence(ids, labels, T, targets));

    // Forward, keeping each layer's input (checkpointing) or all its activations.
    const bool checkpointing = options_.trainer.gradient_checkpointing;
    saved_.resize(checkpointing ? 1 : static_cast<size_t>(L));
    inputs_.resize(static_cast<size_t>(L + 1));
    for (DeviceBuffer& input : inputs_) ATTUNE_CUDA_TRY(ensure<E>(input, T * H, "the layers' inputs"));
    ATTUNE_CUDA_TRY(embedding_forward(ids_.as<int32_t>(), T, weights_.embedding.data(), weights_.embedding_type, H,
                                      inputs_[0].as<E>(), stream_));
    for (int64_t l = 0; l < L; ++l) {
      ATTUNE_CUDA_TRY(forward_layer(l, inputs_[static_cast<size_t>(l)].as<E>(), T, saved_[checkpointing ? 0 : static_cast<size_t>(l)],
                                    inputs_[static_cast<size_t>(l + 1)].as<E>()));
    }

    // Head: final norm, then lm_head and the loss a chunk of positions at a time.
    const float eps = static_cast<float>(c.rms_norm_eps);
    ATTUNE_CUDA_TRY(ensure<E>(hidden_, T * H, "the final hidden states"));
    ATTUNE_CUDA_TRY(ensure<E>(dhidden_, T * H, "the final hidden states' gradient"));
    ATTUNE_CUDA_TRY(ensure<float>(rstd_, T, "the final norm's statistics"));
    ATTUNE_CUDA_TRY(ensure<float>(row_loss_, T, "the per-position losses"));
    ATTUNE_CUDA_TRY(ensure<double>(loss_total_, 1, "the loss"));
    ATTUNE_CUDA_TRY(ensure<E>(logits_, std::min(kLogitRows, T) * V, "a chunk of logits"));
    ATTUNE_CUDA_TRY(rmsnorm_forward(inputs_[static_cast<size_t>(L)].as<E>(), weights_.final_norm.as<float>(), eps, T, H,
                                    hidden_.as<E>(), rstd_.as<float>(), stream_));
    const DeviceLinear& head = weights_.lm_head;
    for (int64_t t0 = 0; t0 < T; t0 += kLogitRows) {
      const int64_t rows = std::min(kLogitRows, T - t0);
      E* logits = logits_.as<E>();
      ATTUNE_CUDA_TRY(gemm_->matmul(false, true, rows, V, H, 1.0f, hidden_.as<E>() + t0 * H, head.weight.data(), gemm_type<E>(),
                                    0.0f, logits, gemm_type<E>()));
      ATTUNE_CUDA_TRY(cross_entropy_forward_backward(logits, shifted_.as<int32_t>() + t0, rows, V, loss_scale, logits,
                                                     row_loss_.as<float>() + t0, stream_));
      ATTUNE_CUDA_TRY(gemm_->matmul(false, false, rows, H, V, 1.0f, logits, head.weight.data(), gemm_type<E>(), 0.0f,
                                    dhidden_.as<E>() + t0 * H, gemm_type<E>()));
    }
    ATTUNE_CUDA_TRY(sum_floats(row_loss_.as<float>(), T, loss_total_.as<double>(), false, stream_));
    ATTUNE_CUDA_TRY(ensure<E>(dx_, T * H, "the hidden states' gradient"));
    ATTUNE_CUDA_TRY(rmsnorm_backward(dhidden_.as<E>(), inputs_[static_cast<size_t>(L)].as<E>(), weights_.final_norm.as<float>(),
                                     rstd_.as<float>(), T, H, dx_.as<E>(), false, nullptr, stream_));

    // Backward through the layers, recomputing each one's activations when checkpointing.
    ATTUNE_CUDA_TRY(ensure<E>(recomputed_, T * H, "a recomputed layer output"));
    for (int64_t l = L - 1; l >= 0; --l) {
      LayerActs& acts = saved_[checkpointing ? 0 : static_cast<size_t>(l)];
      if (checkpointing) ATTUNE_CUDA_TRY(forward_layer(l, inputs_[static_cast<size_t>(l)].as<E>(), T, acts, recomputed_.as<E>()));
      ATTUNE_CUDA_TRY(backward_layer(l, acts, T, dx_.as<E>()));
    }
    ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(loss_sum, loss_total_.data(), sizeof(double), cudaMemcpyDeviceToHost, stream_),
                          "reading the loss"));
    return synchronize();
  }

  Status optimizer_step(double lr, double max_grad_norm, float* grad_norm) override {
    std::vector<DeviceGrad> grads;
    for (DeviceParam& p : params_) grads.push_back({p.grad.as<float>(), p.numel});
    const int64_t count = static_cast<int64_t>(grads.size());
    ATTUNE_CUDA_TRY(ensure<double>(norm_workspace_, grad_sum_squares_workspace(count) + 1, "the gradient norm's workspace"));
    ATTUNE_CUDA_TRY(ensure<float>(clip_, 2, "the clipping coefficient"));
    double* sum_squares = norm_workspace_.as<double>() + grad_sum_squares_workspace(count);
    ATTUNE_CUDA_TRY(grad_sum_squares(grads.data(), count, norm_workspace_.as<double>(), sum_squares, stream_));
    // Without clipping the coefficient is computed and left unused: the norm comes out the same.
    float* total = clip_.as<float>();
    ATTUNE_CUDA_TRY(grad_clip_coef(sum_squares, max_grad_norm > 0 ? max_grad_norm : 1.0, total, total + 1, stream_));
    if (max_grad_norm > 0) ATTUNE_CUDA_TRY(grad_scale(grads.data(), count, total + 1, stream_));
    ++step_;
    for (DeviceParam& p : params_) {
      ATTUNE_CUDA_TRY(adamw_step(options_.trainer.adamw, lr, step_, p.value.as<float>(), p.grad.as<float>(), p.exp_avg.as<float>(),
                                 p.exp_avg_sq.as<float>(), p.numel, stream_));
      ATTUNE_CUDA_TRY(check(cudaMemsetAsync(p.grad.data(), 0, static_cast<size_t>(p.numel) * 4, stream_), "clearing a gradient"));
    }
    ATTUNE_CUDA_TRY(refresh_adapters());
    ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(grad_norm, total, sizeof(float), cudaMemcpyDeviceToHost, stream_), "reading the norm"));
    return synchronize();
  }

  Status download(train::AdapterSet* adapters) override {
    std::vector<train::Parameter>& host = adapters->parameters();
    if (host.size() != params_.size()) return Status::invalid_argument("download() was given another adapter set");
    ATTUNE_CUDA_TRY(synchronize());
    for (size_t i = 0; i < params_.size(); ++i) {
      const DeviceParam& d = params_[i];
      if (static_cast<int64_t>(host[i].value.size()) != d.numel) return Status::invalid_argument("download() was given another adapter set");
      ATTUNE_CUDA_TRY(check(cudaMemcpy(host[i].value.data(), d.value.data(), static_cast<size_t>(d.numel) * 4, cudaMemcpyDeviceToHost),
                            "reading an adapter"));
      ATTUNE_CUDA_TRY(check(cudaMemcpy(host[i].grad.data(), d.grad.data(), static_cast<size_t>(d.numel) * 4, cudaMemcpyDeviceToHost),
                            "reading a gradient"));
    }
    return {};
  }

  Status upload(const train::AdapterSet& adapters) override {
    const std::vector<train::Parameter>& host = adapters.parameters();
    if (host.size() != params_.size()) return Status::invalid_argument("upload() was given another adapter set");
    for (size_t i = 0; i < params_.size(); ++i) {
      if (static_cast<int64_t>(host[i].value.size()) != params_[i].numel) return Status::invalid_argument("upload() was given another adapter set");
      // On stream_, so that refresh_adapters() below reads the new values.
      ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(params_[i].value.data(), host[i].value.data(), static_cast<size_t>(params_[i].numel) * 4,
                                            cudaMemcpyHostToDevice, stream_),
                            "copying an adapter to the GPU"));
    }
    ATTUNE_CUDA_TRY(refresh_adapters());
    return synchronize();
  }

  Status optimizer_state(size_t index, train::AdamWState* out) override {
    if (index >= params_.size()) return Status::invalid_argument("No parameter " + std::to_string(index));
    const DeviceParam& p = params_[index];
    out->step = step_;
    out->exp_avg.resize(static_cast<size_t>(p.numel));
    out->exp_avg_sq.resize(static_cast<size_t>(p.numel));
    ATTUNE_CUDA_TRY(synchronize());
    ATTUNE_CUDA_TRY(check(cudaMemcpy(out->exp_avg.data(), p.exp_avg.data(), static_cast<size_t>(p.numel) * 4, cudaMemcpyDeviceToHost),
                          "reading AdamW's state"));
    return check(cudaMemcpy(out->exp_avg_sq.data(), p.exp_avg_sq.data(), static_cast<size_t>(p.numel) * 4, cudaMemcpyDeviceToHost),
                 "reading AdamW's state");
  }

  Status restore_optimizer_state(size_t index, const train::AdamWState& state) override {
    if (index >= params_.size()) return Status::invalid_argument("No parameter " + std::to_string(index));
    DeviceParam& p = params_[index];
    if (static_cast<int64_t>(state.exp_avg.size()) != p.numel || static_cast<int64_t>(state.exp_avg_sq.size()) != p.numel) {
      return Status::invalid_argument("AdamW's state for parameter " + std::to_string(index) + " has the wrong size");
    }
    // One step count for all parameters, as they always step together.
    step_ = state.step;
    // On stream_, which the optimizer's kernels run on (then waited for: `state` may go away).
    ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(p.exp_avg.data(), state.exp_avg.data(), static_cast<size_t>(p.numel) * 4,
                                          cudaMemcpyHostToDevice, stream_),
                          "restoring AdamW's state"));
    ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(p.exp_avg_sq.data(), state.exp_avg_sq.data(), static_cast<size_t>(p.numel) * 4,
                                          cudaMemcpyHostToDevice, stream_),
                          "restoring AdamW's state"));
    return synchronize();
  }

  int64_t device_bytes() const override {
    int64_t total = weights_.bytes + static_cast<int64_t>(gemm_->workspace_bytes());
    for (const DeviceParam& p : params_) total += sum_bytes({&p.value, &p.grad, &p.exp_avg, &p.exp_avg_sq, &p.compute});
    for (const ModuleState& m : modules_) total += sum_bytes({&m.w_norm_sq, &m.norm, &m.g, &m.wa, &m.gram});
    for (const DeviceBuffer& b : inputs_) total += b.bytes();
    for (const LayerActs& a : saved_) {
      total += sum_bytes({&a.x_in, &a.n1, &a.rstd1, &a.q_pre, &a.k_pre, &a.rstd_q, &a.rstd_k, &a.q, &a.k, &a.v, &a.attn, &a.lse,
                          &a.x_mid, &a.n2, &a.rstd2, &a.gate, &a.up, &a.act});
      for (size_t m = 0; m < a.u.size(); ++m) total += a.u[m].bytes() + a.inner[m].bytes();
    }
    total += sum_bytes({&hidden_, &dhidden_, &rstd_, &row_loss_, &loss_total_, &logits_, &dx_, &recomputed_, &ids_, &shifted_,
                        &positions_, &cos_, &sin_, &mask_, &d_act_, &dgate_, &dup_, &dn_, &dattn_, &dq_, &dk_, &dv_, &delta_,
                        &norm_workspace_, &clip_});
    total += sum_bytes({&scratch_.dropped, &scratch_.tmp, &scratch_.du, &scratch_.scaled, &scratch_.wx, &scratch_.wxd});
    return total;
  }

 private:
  static int key(int64_t layer, Module module) { return static_cast<int>(layer) * kModuleCount + static_cast<int>(module); }

  Status synchronize() { return check(cudaStreamSynchronize(stream_), "running the training step on the GPU"); }

  static Status zeroed(DeviceBuffer& buffer, int64_t numel, const std::string& what) {
    ATTUNE_CUDA_TRY(buffer.allocate(numel * 4, what));
    return check(cudaMemset(buffer.data(), 0, static_cast<size_t>(numel) * 4), "clearing GPU memory");
  }

  // The sequence's ids, shifted labels, positions and RoPE tables on the GPU.
  Status prepare_sequence(const int32_t* ids, const int32_t* labels, int64_t T, int64_t* targets) {
    std::vector<int32_t> shifted(static_cast<size_t>(T), -100), positions(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      if (t + 1 < T) shifted[static_cast<size_t>(t)] = labels[t + 1];  // position t scores the next token
      positions[static_cast<size_t>(t)] = static_cast<int32_t>(t);
      if (shifted[static_cast<size_t>(t)] >= 0) ++*targets;
    }
    ATTUNE_CUDA_TRY(ensure<int32_t>(ids_, T, "the token ids"));
    ATTUNE_CUDA_TRY(ensure<int32_t>(shifted_, T, "the labels"));
    ATTUNE_CUDA_TRY(ensure<int32_t>(positions_, T, "the positions"));
    ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(ids_.data(), ids, static_cast<size_t>(T) * 4, cudaMemcpyHostToDevice, stream_), "copying ids"));
    ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(shifted_.data(), shifted.data(), static_cast<size_t>(T) * 4, cudaMemcpyHostToDevice, stream_),
                          "copying labels"));
    ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(positions_.data(), positions.data(), static_cast<size_t>(T) * 4, cudaMemcpyHostToDevice,
                                          stream_),
                          "copying positions"));
    if (T > rope_rows_) {
      RopeTable& rope = model_.rope();
      rope.ensure(T);
      const int64_t n = T * rope.half_dim();
      // On stream_, so that the rope kernels read them (a cudaMemcpy would go on the legacy stream).
      ATTUNE_CUDA_TRY(cos_.allocate(n * 4, "RoPE's cosines"));
      ATTUNE_CUDA_TRY(sin_.allocate(n * 4, "RoPE's sines"));
      ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(cos_.data(), rope.cos(), static_cast<size_t>(n) * 4, cudaMemcpyHostToDevice, stream_),
                            "copying RoPE's cosines"));
      ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(sin_.data(), rope.sin(), static_cast<size_t>(n) * 4, cudaMemcpyHostToDevice, stream_),
                            "copying RoPE's sines"));
      rope_rows_ = T;
    }
    // The host vectors die here: wait for the copies that read them.
    return synchronize();
  }

  // The adapter of (layer, module) as the linear layers read it, or null; draws its dropout mask
  // (the CPU's) into mask_ when dropout is on.
  Status adapter_for(int64_t layer, Module module, int64_t T, int64_t in, DeviceAdapter* view, const DeviceAdapter** out,
                     const float** mask) {
    *out = nullptr;
    *mask = nullptr;
    const auto found = by_module_.find(key(layer, module));
    if (found == by_module_.end()) return {};
    ModuleState& m = modules_[found->second];
    DeviceParam &a = params_[m.a], &b = params_[m.b];
    view->rank = rank_;
    view->scaling = scaling_;
    view->A = gemm_type<E>() == GemmType::kBF16 ? a.compute.data() : a.value.data();
    view->B = gemm_type<E>() == GemmType::kBF16 ? b.compute.data() : b.value.data();
    view->dA = a.grad.as<float>();
    view->dB = b.grad.as<float>();
    if (dora_) {
      view->norm = m.norm.as<float>();
      view->g = m.g.as<float>();
      view->dmagnitude = params_[m.magnitude].grad.as<float>();
    }
    *out = view;
    if (dropout_ > 0) {
      ATTUNE_CUDA_TRY(ensure<float>(mask_, T * in, "a dropout mask"));
      const float keep_scale = static_cast<float>(1.0 / (1.0 - static_cast<double>(dropout_)));
      ATTUNE_CUDA_TRY(dropout_mask(train::dropout_seed(options_.trainer.seed, sample_, layer, module), 0, dropout_, keep_scale, T * in,
                                   mask_.as<float>(), stream_));
      *mask = mask_.as<float>();
    }
    return {};
  }

  Status linear(int64_t l, Module module, const E* x, int64_t T_, E* y, LayerActs& s) {
    const DeviceLinear& w = weights_.layers[static_cast<size_t>(l)].linears[static_cast<size_t>(module)];
    DeviceAdapter view;
    const DeviceAdapter* adapter = nullptr;
    const float* mask = nullptr;
    ATTUNE_CUDA_TRY(adapter_for(l, module, T_, w.in, &view, &adapter, &mask));
    E* u = nullptr;
    float* inner = nullptr;
    if (adapter) {
      const size_t m = static_cast<size_t>(module);
      ATTUNE_CUDA_TRY(ensure<E>(s.u[m], T_ * rank_, "an adapter's saved x·Aᵀ"));
      u = s.u[m].template as<E>();
      if (dora_) {
        ATTUNE_CUDA_TRY(ensure<float>(s.inner[m], T_ * w.out, "DoRA's saved direction"));
        inner = s.inner[m].template as<float>();
      }
    }
    return linear_forward(*gemm_, w, adapter, x, mask, T_, y, u, inner, scratch_, stream_);
  }

  Status linear_grad(int64_t l, Module module, const E* dy, const E* x, int64_t T_, E* dx, bool accumulate, LayerActs& s) {
    const DeviceLinear& w = weights_.layers[static_cast<size_t>(l)].linears[static_cast<size_t>(module)];
    DeviceAdapter view;
    const DeviceAdapter* adapter = nullptr;
    const float* mask = nullptr;
    ATTUNE_CUDA_TRY(adapter_for(l, module, T_, w.in, &view, &adapter, &mask));
    const size_t m = static_cast<size_t>(module);
    const E* u = adapter ? s.u[m].template as<E>() : nullptr;
    const float* inner = adapter && dora_ ? s.inner[m].template as<float>() : nullptr;
    return linear_backward(*gemm_, w, adapter, dy, x, mask, u, inner, T_, dx, accumulate, scratch_, stream_);
  }

  Status forward_layer(int64_t l, const E* x_in, int64_t T_, LayerActs& s, E* x_out) {
    const ModelConfig& c = model_.config();
    const DeviceLayer& w = weights_.layers[static_cast<size_t>(l)];
    const int64_t H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim, nh = c.num_attention_heads, nkv = c.num_key_value_heads;
    const float eps = static_cast<float>(c.rms_norm_eps);
    const bool qk_norm = w.q_norm.bytes() > 0;
    ATTUNE_CUDA_TRY(ensure<E>(s.x_in, T_ * H, "a layer's input"));
    ATTUNE_CUDA_TRY(ensure<E>(s.n1, T_ * H, "a layer's normed input"));
    ATTUNE_CUDA_TRY(ensure<float>(s.rstd1, T_, "a norm's statistics"));
    ATTUNE_CUDA_TRY(ensure<E>(s.q, T_ * nh * hd, "the queries"));
    ATTUNE_CUDA_TRY(ensure<E>(s.k, T_ * nkv * hd, "the keys"));
    ATTUNE_CUDA_TRY(ensure<E>(s.v, T_ * nkv * hd, "the values"));
    ATTUNE_CUDA_TRY(ensure<E>(s.attn, T_ * nh * hd, "the attention output"));
    ATTUNE_CUDA_TRY(ensure<float>(s.lse, T_ * nh, "the attention statistics"));
    ATTUNE_CUDA_TRY(ensure<E>(s.x_mid, T_ * H, "a layer's residual"));
    ATTUNE_CUDA_TRY(ensure<E>(s.n2, T_ * H, "a layer's normed residual"));
    ATTUNE_CUDA_TRY(ensure<float>(s.rstd2, T_, "a norm's statistics"));
    ATTUNE_CUDA_TRY(ensure<E>(s.gate, T_ * I, "the MLP's gate"));
    ATTUNE_CUDA_TRY(ensure<E>(s.up, T_ * I, "the MLP's up projection"));
    ATTUNE_CUDA_TRY(ensure<E>(s.act, T_ * I, "the MLP's activation"));

    ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(s.x_in.data(), x_in, static_cast<size_t>(T_ * H) * sizeof(E), cudaMemcpyDeviceToDevice, stream_),
                          "saving a layer's input"));
    ATTUNE_CUDA_TRY(rmsnorm_forward(s.x_in.template as<E>(), w.input_norm.as<float>(), eps, T_, H, s.n1.template as<E>(),
                                    s.rstd1.template as<float>(), stream_));
    E* q = s.q.template as<E>();
    E* k = s.k.template as<E>();
    if (qk_norm) {
      // Qwen3: each head's query and key are normalised before the rotation.
      ATTUNE_CUDA_TRY(ensure<E>(s.q_pre, T_ * nh * hd, "the queries before their norm"));
      ATTUNE_CUDA_TRY(ensure<E>(s.k_pre, T_ * nkv * hd, "the keys before their norm"));
      ATTUNE_CUDA_TRY(ensure<float>(s.rstd_q, T_ * nh, "the query norms' statistics"));
      ATTUNE_CUDA_TRY(ensure<float>(s.rstd_k, T_ * nkv, "the key norms' statistics"));
      ATTUNE_CUDA_TRY(linear(l, Module::kQ, s.n1.template as<E>(), T_, s.q_pre.template as<E>(), s));
      ATTUNE_CUDA_TRY(linear(l, Module::kK, s.n1.template as<E>(), T_, s.k_pre.template as<E>(), s));
      ATTUNE_CUDA_TRY(rmsnorm_forward(s.q_pre.template as<E>(), w.q_norm.as<float>(), eps, T_ * nh, hd, q, s.rstd_q.template as<float>(),
                                      stream_));
      ATTUNE_CUDA_TRY(rmsnorm_forward(s.k_pre.template as<E>(), w.k_norm.as<float>(), eps, T_ * nkv, hd, k, s.rstd_k.template as<float>(),
                                      stream_));
    } else {
      ATTUNE_CUDA_TRY(linear(l, Module::kQ, s.n1.template as<E>(), T_, q, s));
      ATTUNE_CUDA_TRY(linear(l, Module::kK, s.n1.template as<E>(), T_, k, s));
    }
    ATTUNE_CUDA_TRY(linear(l, Module::kV, s.n1.template as<E>(), T_, s.v.template as<E>(), s));
    ATTUNE_CUDA_TRY(rope_forward(q, positions_.as<int32_t>(), T_, nh, hd, cos_.as<float>(), sin_.as<float>(), stream_));
    ATTUNE_CUDA_TRY(rope_forward(k, positions_.as<int32_t>(), T_, nkv, hd, cos_.as<float>(), sin_.as<float>(), stream_));
    ATTUNE_CUDA_TRY(attention_forward_train(q, k, s.v.template as<E>(), T_, nh, nkv, hd, s.attn.template as<E>(),
                                            s.lse.template as<float>(), stream_));
    ATTUNE_CUDA_TRY(linear(l, Module::kO, s.attn.template as<E>(), T_, x_out, s));
    ATTUNE_CUDA_TRY(add_inplace(x_out, s.x_in.template as<E>(), T_ * H, stream_));
    ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(s.x_mid.data(), x_out, static_cast<size_t>(T_ * H) * sizeof(E), cudaMemcpyDeviceToDevice, stream_),
                          "saving a layer's residual"));

    ATTUNE_CUDA_TRY(rmsnorm_forward(s.x_mid.template as<E>(), w.post_attention_norm.as<float>(), eps, T_, H, s.n2.template as<E>(),
                                    s.rstd2.template as<float>(), stream_));
    ATTUNE_CUDA_TRY(linear(l, Module::kGate, s.n2.template as<E>(), T_, s.gate.template as<E>(), s));
    ATTUNE_CUDA_TRY(linear(l, Module::kUp, s.n2.template as<E>(), T_, s.up.template as<E>(), s));
    ATTUNE_CUDA_TRY(swiglu_forward(s.gate.template as<E>(), s.up.template as<E>(), T_ * I, s.act.template as<E>(), stream_));
    ATTUNE_CUDA_TRY(linear(l, Module::kDown, s.act.template as<E>(), T_, x_out, s));
    return add_inplace(x_out, s.x_mid.template as<E>(), T_ * H, stream_);
  }

  Status backward_layer(int64_t l, LayerActs& s, int64_t T_, E* dx) {
    // dx [T, H]: in, the gradient at the layer's output; out, at its input.
    const ModelConfig& c = model_.config();
    const DeviceLayer& w = weights_.layers[static_cast<size_t>(l)];
    const int64_t H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim, nh = c.num_attention_heads, nkv = c.num_key_value_heads;
    ATTUNE_CUDA_TRY(ensure<E>(d_act_, T_ * I, "the MLP's gradients"));
    ATTUNE_CUDA_TRY(ensure<E>(dgate_, T_ * I, "the MLP's gradients"));
    ATTUNE_CUDA_TRY(ensure<E>(dup_, T_ * I, "the MLP's gradients"));
    ATTUNE_CUDA_TRY(ensure<E>(dn_, T_ * H, "a norm's gradient"));
    ATTUNE_CUDA_TRY(ensure<E>(dattn_, T_ * nh * hd, "the attention's gradient"));
    ATTUNE_CUDA_TRY(ensure<E>(dq_, T_ * nh * hd, "the queries' gradient"));
    ATTUNE_CUDA_TRY(ensure<E>(dk_, T_ * nkv * hd, "the keys' gradient"));
    ATTUNE_CUDA_TRY(ensure<E>(dv_, T_ * nkv * hd, "the values' gradient"));
    ATTUNE_CUDA_TRY(ensure<float>(delta_, T_ * nh, "the attention backward's row sums"));
    E *d_act = d_act_.as<E>(), *dgate = dgate_.as<E>(), *dup = dup_.as<E>(), *dn = dn_.as<E>();
    E *dattn = dattn_.as<E>(), *dq = dq_.as<E>(), *dk = dk_.as<E>(), *dv = dv_.as<E>();

    // MLP: x_out = x_mid + down(silu(gate(n2)) · up(n2)), n2 = norm(x_mid)
    ATTUNE_CUDA_TRY(linear_grad(l, Module::kDown, dx, s.act.template as<E>(), T_, d_act, false, s));
    ATTUNE_CUDA_TRY(swiglu_backward(d_act, s.gate.template as<E>(), s.up.template as<E>(), T_ * I, dgate, dup, stream_));
    ATTUNE_CUDA_TRY(linear_grad(l, Module::kGate, dgate, s.n2.template as<E>(), T_, dn, false, s));
    ATTUNE_CUDA_TRY(linear_grad(l, Module::kUp, dup, s.n2.template as<E>(), T_, dn, true, s));
    ATTUNE_CUDA_TRY(rmsnorm_backward(dn, s.x_mid.template as<E>(), w.post_attention_norm.as<float>(), s.rstd2.template as<float>(), T_, H,
                                     dx, true, nullptr, stream_));

    // Attention: x_mid = x_in + o(attn(rope(q(n1)), rope(k(n1)), v(n1))), n1 = norm(x_in)
    ATTUNE_CUDA_TRY(linear_grad(l, Module::kO, dx, s.attn.template as<E>(), T_, dattn, false, s));
    ATTUNE_CUDA_TRY(attention_backward(dattn, s.q.template as<E>(), s.k.template as<E>(), s.v.template as<E>(),
                                       s.attn.template as<E>(), s.lse.template as<float>(), T_, nh, nkv, hd, dq, dk, dv,
                                       delta_.as<float>(), stream_));
    ATTUNE_CUDA_TRY(rope_backward(dq, positions_.as<int32_t>(), T_, nh, hd, cos_.as<float>(), sin_.as<float>(), stream_));
    ATTUNE_CUDA_TRY(rope_backward(dk, positions_.as<int32_t>(), T_, nkv, hd, cos_.as<float>(), sin_.as<float>(), stream_));
    if (w.q_norm.bytes() > 0) {
      ATTUNE_CUDA_TRY(rmsnorm_backward(dq, s.q_pre.template as<E>(), w.q_norm.as<float>(), s.rstd_q.template as<float>(), T_ * nh, hd,
                                       dq, false, nullptr, stream_));
      ATTUNE_CUDA_TRY(rmsnorm_backward(dk, s.k_pre.template as<E>(), w.k_norm.as<float>(), s.rstd_k.template as<float>(), T_ * nkv, hd,
                                       dk, false, nullptr, stream_));
    }
    ATTUNE_CUDA_TRY(linear_grad(l, Module::kQ, dq, s.n1.template as<E>(), T_, dn, false, s));
    ATTUNE_CUDA_TRY(linear_grad(l, Module::kK, dk, s.n1.template as<E>(), T_, dn, true, s));
    ATTUNE_CUDA_TRY(linear_grad(l, Module::kV, dv, s.n1.template as<E>(), T_, dn, true, s));
    return rmsnorm_backward(dn, s.x_in.template as<E>(), w.input_norm.as<float>(), s.rstd1.template as<float>(), T_, H, dx, true,
                            nullptr, stream_);
  }

  // After A, B or m change: the compute-type copies and DoRA's norms and scales.
  Status refresh_adapters() {
    if (gemm_type<E>() == GemmType::kBF16) {
      for (DeviceParam& p : params_) {
        ATTUNE_CUDA_TRY((convert<float, __nv_bfloat16>(p.value.as<float>(), p.compute.as<__nv_bfloat16>(), p.numel, stream_)));
      }
    }
    if (!dora_) return {};
    for (ModuleState& m : modules_) {
      const DeviceLinear& w = weights_.layers[static_cast<size_t>(m.layer)].linears[static_cast<size_t>(m.module)];
      const DeviceParam &a = params_[m.a], &b = params_[m.b], &magnitude = params_[m.magnitude];
      // wa[r,out] = A·Wᵀ (A in the compute type, as W); gram[r,r] = A·Aᵀ from the fp32 master.
      const void* a_compute = gemm_type<E>() == GemmType::kBF16 ? a.compute.data() : a.value.data();
      ATTUNE_CUDA_TRY(gemm_->matmul(false, true, rank_, w.out, w.in, 1.0f, a_compute, w.weight.data(), gemm_type<E>(), 0.0f,
                                    m.wa.data(), GemmType::kF32));
      ATTUNE_CUDA_TRY(gemm_->matmul(false, true, rank_, rank_, w.in, 1.0f, a.value.data(), a.value.data(), GemmType::kF32, 0.0f,
                                    m.gram.data(), GemmType::kF32));
      ATTUNE_CUDA_TRY(dora_norm(m.wa.as<float>(), m.gram.as<float>(), b.value.as<float>(), m.w_norm_sq.as<float>(),
                                magnitude.value.as<float>(), scaling_, w.out, rank_, m.norm.as<float>(), m.g.as<float>(), stream_));
    }
    return {};
  }

  GpuInUse in_use_;  // first in, last out: no probe resets the device under this trainer
  LlamaModel& model_;
  CudaTrainerOptions options_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Gemm> gemm_;
  DeviceModel weights_;
  int64_t rank_ = 0;
  float scaling_ = 1, dropout_ = 0;
  bool dora_ = false;
  std::vector<DeviceParam> params_;
  std::vector<ModuleState> modules_;
  std::map<int, size_t> by_module_;
  int64_t step_ = 0;
  uint64_t sample_ = 0;
  int64_t rope_rows_ = 0;
  LinearScratch scratch_;
  std::vector<DeviceBuffer> inputs_;
  std::vector<LayerActs> saved_;
  DeviceBuffer hidden_, dhidden_, rstd_, row_loss_, loss_total_, logits_, dx_, recomputed_, ids_, shifted_, positions_, cos_, sin_,
      mask_, d_act_, dgate_, dup_, dn_, dattn_, dq_, dk_, dv_, delta_, norm_workspace_, clip_;
};

}  // namespace

Status CudaTrainer::create(LlamaModel& model, const train::AdapterSet& adapters, const CudaTrainerOptions& options,
                           std::unique_ptr<CudaTrainer>* out) {
  const std::string problem = cuda_device_problem(options.device);
  if (!problem.empty()) return Status::invalid_argument("Training on the GPU needs a usable NVIDIA GPU: " + problem);
  std::unique_ptr<CudaTrainer> trainer;
  Status status;
  if (options.precision == Precision::kF32) {
    auto t = std::make_unique<Trainer<float>>(model, options);
    status = t->init(adapters);
    trainer = std::move(t);
  } else {
    auto t = std::make_unique<Trainer<__nv_bfloat16>>(model, options);
    status = t->init(adapters);
    trainer = std::move(t);
  }
  if (!status.ok()) return status;
  *out = std::move(trainer);
  return {};
}

}  // namespace attune::cuda
