#include "cuda/cuda_generator.h"

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "adapter/dora.h"
#include "cpu/thread_pool.h"
#include "cuda/adapter_layers.h"
#include "cuda/cublaslt.h"
#include "cuda/cuda_probe.h"
#include "cuda/cuda_status.h"
#include "cuda/device_memory.h"
#include "cuda/device_model.h"
#include "cuda/ops_attention.h"
#include "cuda/ops_decode.h"
#include "cuda/ops_elementwise.h"
#include "cuda/ops_generate.h"
#include "cuda/ops_norm.h"
#include "cuda/ops_rope.h"
#include "cuda/ops_sampling.h"
#include "generate/sampler.h"

namespace attune::cuda {

namespace {

// cuBLASLt's workspace for the prefill's products: what Hopper's fastest kernels ask for.
constexpr size_t kGemmWorkspace = 32u << 20;
// The cache grows in steps of this many positions, so a conversation does not reallocate (and
// re-capture its decode graph) for every few tokens.
constexpr int64_t kCapacityStep = 256;

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// Host fp32 values rounded to bf16 (nearest even), uploaded.
Status upload_bf16(const std::vector<float>& values, const std::string& what, DeviceBuffer* out) {
  std::vector<__nv_bfloat16> narrowed(values.size());
  for (size_t i = 0; i < values.size(); ++i) narrowed[i] = __float2bfloat16_rn(values[i]);
  return upload_to_device(narrowed.data(), static_cast<int64_t>(narrowed.size() * sizeof(__nv_bfloat16)), what, out);
}

}  // namespace

const char* precision_name(GenerationPrecision precision) {
  return precision == GenerationPrecision::kF32 ? "f32" : "bf16";
}

// --- CudaModel.

struct CudaModel::Impl {
  GpuInUse in_use;  // first in, last out: no probe resets the device under these weights
  LlamaModel* host = nullptr;
  GenerationPrecision precision = GenerationPrecision::kBF16;
  int device = 0;
  DeviceModel weights;
};

CudaModel::CudaModel() : impl_(std::make_unique<Impl>()) {}

CudaModel::~CudaModel() {
  // The buffers are freed by the members' destructors right after this: on the model's device.
  cudaSetDevice(impl_->device);
}

Status CudaModel::load(LlamaModel& model, const CudaModelOptions& options, std::shared_ptr<CudaModel>* out) {
  const std::string problem = cuda_device_problem(options.device);
  if (!problem.empty()) return Status::invalid_argument("Generating on the GPU needs a usable NVIDIA GPU: " + problem);
  ATTUNE_CUDA_TRY(check(cudaSetDevice(options.device), "selecting the GPU"));
  std::shared_ptr<CudaModel> loaded(new CudaModel());
  Impl& impl = *loaded->impl_;
  impl.host = &model;
  impl.precision = options.precision;
  impl.device = options.device;
  const GemmType type = options.precision == GenerationPrecision::kF32 ? GemmType::kF32 : GemmType::kBF16;
  ATTUNE_CUDA_TRY(upload_model(model, type, &impl.weights));
  *out = std::move(loaded);
  return {};
}

LlamaModel& CudaModel::host() const { return *impl_->host; }
GenerationPrecision CudaModel::precision() const { return impl_->precision; }
int CudaModel::device() const { return impl_->device; }
int64_t CudaModel::device_bytes() const { return impl_->weights.bytes; }

// --- CudaAdapter.

struct CudaAdapter::Impl {
  // One targeted module's factors on the GPU.
  struct Factors {
    bool present = false;
    DeviceBuffer a, b;                // fp32 A [r, in], B [out, r]: decode (lora_gemv_add)
    DeviceBuffer a16, b16;            // bf16 copies for the prefill's products (bf16 models only)
    DeviceBuffer magnitude, norm, g;  // DoRA: fp32 [out]; g = magnitude / norm (the prefill's scale)
  };
  const CudaModel::Impl* model = nullptr;
  int device = 0;
  int64_t rank = 0;
  float scaling = 1;
  bool dora = false;
  std::vector<std::array<Factors, kModuleCount>> layers;  // [layer][module]
  int64_t bytes = 0;
};

CudaAdapter::CudaAdapter() : impl_(std::make_unique<Impl>()) {}
CudaAdapter::~CudaAdapter() { cudaSetDevice(impl_->device); }
int64_t CudaAdapter::rank() const { return impl_->rank; }
bool CudaAdapter::dora() const { return impl_->dora; }
int64_t CudaAdapter::device_bytes() const { return impl_->bytes; }
const void* CudaAdapter::model_key() const { return impl_->model; }

Status CudaAdapter::upload(const CudaModel& model, const InferenceAdapter& adapter, std::shared_ptr<const CudaAdapter>* out) {
  const LlamaModel& host = model.host();
  const int64_t L = host.config().num_hidden_layers, r = adapter.rank;
  if (static_cast<int64_t>(adapter.layers.size()) != L) {
    return Status::invalid_argument("The adapter has " + std::to_string(adapter.layers.size()) + " layers; this model has " +
                                    std::to_string(L));
  }
  if (r < 1 || r > 1024) {
    return Status::invalid_argument("The adapter's rank is " + std::to_string(r) + "; the GPU runs ranks 1 to 1024");
  }
  ATTUNE_CUDA_TRY(check(cudaSetDevice(model.device()), "selecting the GPU"));
  std::shared_ptr<CudaAdapter> uploaded(new CudaAdapter());
  Impl& impl = *uploaded->impl_;
  impl.model = &model.impl();
  impl.device = model.device();
  impl.rank = r;
  impl.scaling = adapter.scaling;
  impl.dora = adapter.dora;
  impl.layers.resize(static_cast<size_t>(L));
  const bool bf16 = model.precision() == GenerationPrecision::kBF16;
  cpu::ThreadPool pool(2);
  std::vector<float> norm, g;
  for (int64_t l = 0; l < L; ++l) {
    for (int m = 0; m < kModuleCount; ++m) {
      const auto& slot = adapter.layers[static_cast<size_t>(l)][static_cast<size_t>(m)];
      if (!slot) continue;
      const LinearWeight& w = host.linear(l, static_cast<Module>(m));
      const std::string where = "layer " + std::to_string(l) + " " + module_name(static_cast<Module>(m));
      if (static_cast<int64_t>(slot->a.size()) != r * w.in || static_cast<int64_t>(slot->b.size()) != w.out * r) {
        return Status::invalid_argument("The adapter's " + where +
                                        " factors do not fit this model (trained for a different base model?)");
      }
      Impl::Factors& f = impl.layers[static_cast<size_t>(l)][static_cast<size_t>(m)];
      f.present = true;
      const std::string what = "the adapter's " + where;
      ATTUNE_CUDA_TRY(upload_floats(slot->a.data(), r * w.in, what + " A", &f.a));
      ATTUNE_CUDA_TRY(upload_floats(slot->b.data(), w.out * r, what + " B", &f.b));
      if (bf16) {
        ATTUNE_CUDA_TRY(upload_bf16(slot->a, what + " A (bf16)", &f.a16));
        ATTUNE_CUDA_TRY(upload_bf16(slot->b, what + " B (bf16)", &f.b16));
      }
      if (!adapter.dora) continue;
      if (static_cast<int64_t>(slot->magnitude.size()) != w.out) {
        return Status::invalid_argument("The adapter's " + where + " magnitude does not fit this model");
      }
      if (static_cast<int64_t>(slot->norm.size()) == w.out) {
        norm = slot->norm;
      } else {
        // ‖W + s·B·A‖ per row from the host weights, as LlamaModel::set_adapter computes it.
        norm.assign(static_cast<size_t>(w.out), 0.0f);
        adapter::dora_weight_norm_direct(pool, {w.data, w.type, w.bias.empty() ? nullptr : w.bias.data(), w.in, w.out},
                                         {slot->a.data(), slot->b.data(), r, adapter.scaling}, norm.data());
      }
      // g = m / n, one fp32 division as adapter::dora_forward's magnitude scale (and dora_scale).
      g.resize(norm.size());
      for (size_t o = 0; o < norm.size(); ++o) g[o] = slot->magnitude[o] / norm[o];
      ATTUNE_CUDA_TRY(upload_floats(slot->magnitude.data(), w.out, what + " magnitude", &f.magnitude));
      ATTUNE_CUDA_TRY(upload_floats(norm.data(), w.out, what + " weight norm", &f.norm));
      ATTUNE_CUDA_TRY(upload_floats(g.data(), w.out, what + " magnitude scale", &f.g));
    }
  }
  for (const auto& layer : impl.layers) {
    for (const Impl::Factors& f : layer) {
      for (const DeviceBuffer* b : {&f.a, &f.b, &f.a16, &f.b16, &f.magnitude, &f.norm, &f.g}) impl.bytes += b->bytes();
    }
  }
  *out = std::move(uploaded);
  return {};
}

// --- CudaGenerator.

namespace {

// What a captured decode graph has baked into its kernel arguments: when any of it changes, the
// graph is captured again.
struct GraphKey {
  float temperature = 0, top_p = 1, repetition_penalty = 1;
  int64_t top_k = 0;
  uint64_t adapter_version = 0;  // which adapter (its device pointers, rank, DoRA or not)
  uint64_t buffers_version = 0;  // which cache and per-position buffers (their pointers, capacity)
  bool operator==(const GraphKey& o) const {
    return temperature == o.temperature && top_p == o.top_p && repetition_penalty == o.repetition_penalty &&
           top_k == o.top_k && adapter_version == o.adapter_version && buffers_version == o.buffers_version;
  }
  bool operator!=(const GraphKey& o) const { return !(*this == o); }
};

DecodeSamplingParams decode_params(const SamplingParams& s) {
  DecodeSamplingParams p;
  p.temperature = s.temperature;
  p.top_p = s.top_p;
  p.top_k = s.top_k;
  p.repetition_penalty = s.repetition_penalty;
  return p;
}

// E: the compute type, float (fp32 mode) or __nv_bfloat16; the weights are stored in it too.
template <typename E>
class Generator final : public CudaGenerator {
 public:
  Generator(std::shared_ptr<const CudaModel> model, const CudaGeneratorOptions& options)
      : model_(std::move(model)), m_(model_->impl()), c_(m_.host->config()), options_(options) {}

  ~Generator() override {
    cudaSetDevice(m_.device);
    if (stream_) cudaStreamSynchronize(stream_);
    if (graph_) cudaGraphExecDestroy(graph_);
    for (cudaEvent_t& e : token_ready_) {
      if (e) cudaEventDestroy(e);
    }
    if (host_tokens_) cudaFreeHost(host_tokens_);
    gemm_.reset();
    if (stream_) cudaStreamDestroy(stream_);
    // The DeviceBuffers are freed by the members' destructors, on this device.
  }

  Status init() {
    ATTUNE_CUDA_TRY(check(cudaSetDevice(m_.device), "selecting the GPU"));
    if (options_.prefill_chunk < 1) return Status::invalid_argument("prefill_chunk must be at least 1");
    ATTUNE_CUDA_TRY(check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating a CUDA stream"));
    for (cudaEvent_t& e : token_ready_) {
      ATTUNE_CUDA_TRY(check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating a CUDA event"));
    }
    ATTUNE_CUDA_TRY(Gemm::create(stream_, kGemmWorkspace, &gemm_));
    const int64_t H = c_.hidden_size, I = c_.intermediate_size, hd = c_.head_dim;
    const int64_t nh = c_.num_attention_heads, nkv = c_.num_key_value_heads;
    if (hd > kCacheAttentionMaxDim) {
      return Status::invalid_argument("Generation on the GPU supports head dims up to " + std::to_string(kCacheAttentionMaxDim) +
                                      "; this model's is " + std::to_string(hd));
    }
    // Key splits of decode attention: about two blocks per SM over the heads.
    int sms = 0;
    ATTUNE_CUDA_TRY(check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, m_.device), "reading the GPU's SM count"));
    splits_ = std::clamp<int64_t>((2 * static_cast<int64_t>(sms) + nh - 1) / nh, 1, kCacheAttentionMaxSplits);
    // decode scratch, fp32, fixed for the generator's life (the decode graph points into it)
    ATTUNE_CUDA_TRY(ensure<float>(x32_, H, "decode activations"));
    ATTUNE_CUDA_TRY(ensure<float>(n32_, H, "decode activations"));
    ATTUNE_CUDA_TRY(ensure<float>(p32_, H, "decode activations"));
    ATTUNE_CUDA_TRY(ensure<float>(q32_, nh * hd, "decode queries"));
    ATTUNE_CUDA_TRY(ensure<float>(attn32_, nh * hd, "decode attention output"));
    ATTUNE_CUDA_TRY(ensure<float>(k32_, nkv * hd, "decode keys"));
    ATTUNE_CUDA_TRY(ensure<float>(v32_, nkv * hd, "decode values"));
    ATTUNE_CUDA_TRY(ensure<float>(gate32_, I, "decode MLP activations"));
    ATTUNE_CUDA_TRY(ensure<float>(up32_, I, "decode MLP activations"));
    ATTUNE_CUDA_TRY(ensure<float>(logits_, c_.vocab_size, "the logits"));
    ATTUNE_CUDA_TRY(ensure<float>(partial_, cache_attention_workspace_floats(1, nh, hd, splits_), "decode attention's workspace"));
    ATTUNE_CUDA_TRY(ensure<int32_t>(state_, kStateFields, "the decode state"));
    if (options_.initial_capacity > 0) ATTUNE_CUDA_TRY(ensure_capacity(options_.initial_capacity));
    return synchronize("creating the generator");
  }

  Status set_adapter(std::shared_ptr<const CudaAdapter> adapter) override {
    if (adapter && adapter->model_key() != &m_) {
      return Status::invalid_argument("This adapter was uploaded for another model on the GPU");
    }
    ATTUNE_CUDA_TRY(check(cudaSetDevice(m_.device), "selecting the GPU"));
    if (adapter) ATTUNE_CUDA_TRY(ensure<float>(lora_u32_, adapter->rank(), "the adapter's x·Aᵀ"));
    adapter_ = std::move(adapter);
    ++adapter_version_;  // the decode graph has the adapter's pointers baked in
    return {};
  }

  bool has_adapter() const override { return adapter_ != nullptr; }

  Status generate(const std::vector<int32_t>& prompt, const GenerationParams& params, const CancelToken& cancel,
                  const TokenCallback& on_token, GenerationResult* result) override {
    *result = GenerationResult();
    if (prompt.empty()) return Status::invalid_argument("The prompt is empty");
    if (params.max_new_tokens < 0) return Status::invalid_argument("max_new_tokens must not be negative");
    ATTUNE_CUDA_TRY(check_ids(prompt.data(), static_cast<int64_t>(prompt.size())));
    ATTUNE_CUDA_TRY(check(cudaSetDevice(m_.device), "selecting the GPU"));
    const int64_t T = static_cast<int64_t>(prompt.size()), max_new = params.max_new_tokens;
    ATTUNE_CUDA_TRY(ensure_capacity(T + std::max<int64_t>(max_new, 1)));
    const DecodeSamplingParams sampling = decode_params(params.sampling);
    const auto start = std::chrono::steady_clock::now();

    Status status = prefill(prompt.data(), T, false);
    if (status.ok() && max_new > 0) status = start_decode(prompt, max_new, params.sampling);
    if (!status.ok() || max_new == 0) {
      const Status drained = synchronize("running the prefill on the GPU");
      result->prefill_ms = ms_since(start);
      return status.ok() ? drained : status;
    }
    // Token 0 comes from the prefill's logits; token i + 1 from decode step i + 1. Step i + 1 is
    // queued before the host waits for token i, so the GPU computes it while the host hands token
    // i over; a stop or cancel then wastes at most that one step (its cache row is never used).
    status = enqueue_sample(sampling, 0);
    if (status.ok()) status = record(0);
    auto decode_start = std::chrono::steady_clock::now();
    for (int64_t i = 0; status.ok() && i < max_new; ++i) {
      if (i + 1 < max_new) {
        status = decode_step(sampling);
        if (status.ok()) status = record(i + 1);
        if (!status.ok()) break;
      }
      status = check(cudaEventSynchronize(token_ready_[i & 1]), "running a decode step on the GPU");
      if (!status.ok()) break;
      if (i == 0) {
        result->prefill_ms = ms_since(start);
        decode_start = std::chrono::steady_clock::now();
      }
      if (cancel.cancelled()) {
        result->finish_reason = FinishReason::kCancelled;
        break;
      }
      const int32_t token = host_token(i);
      result->tokens.push_back(token);
      on_token(token);
      if (std::find(params.stop_ids.begin(), params.stop_ids.end(), token) != params.stop_ids.end()) {
        result->finish_reason = FinishReason::kStop;
        break;
      }
    }
    // Wait for the step queued ahead (or anything left after an error) before returning.
    const Status drained = synchronize("running a decode step on the GPU");
    result->decode_ms = ms_since(decode_start);
    return status.ok() ? drained : status;
  }

  Status prefill_logits(const int32_t* ids, int64_t T, std::vector<float>* logits) override {
    if (T <= 0) return Status::invalid_argument("prefill_logits needs at least one token");
    ATTUNE_CUDA_TRY(check_ids(ids, T));
    ATTUNE_CUDA_TRY(check(cudaSetDevice(m_.device), "selecting the GPU"));
    ATTUNE_CUDA_TRY(ensure_capacity(T));
    ATTUNE_CUDA_TRY(ensure<float>(logits_all_, T * c_.vocab_size, "the prompt's logits"));
    Status status = prefill(ids, T, true);
    logits->resize(static_cast<size_t>(T * c_.vocab_size));
    if (status.ok()) {
      status = check(cudaMemcpyAsync(logits->data(), logits_all_.data(), logits->size() * sizeof(float), cudaMemcpyDeviceToHost,
                                     stream_),
                     "reading the logits");
    }
    const Status drained = synchronize("running the prefill on the GPU");
    return status.ok() ? drained : status;
  }

  Status decode_logits(const std::vector<int32_t>& prompt, int64_t steps, std::vector<int32_t>* tokens,
                       std::vector<float>* logits) override {
    if (prompt.empty() || steps < 0) return Status::invalid_argument("decode_logits needs a prompt and steps >= 0");
    ATTUNE_CUDA_TRY(check_ids(prompt.data(), static_cast<int64_t>(prompt.size())));
    ATTUNE_CUDA_TRY(check(cudaSetDevice(m_.device), "selecting the GPU"));
    const int64_t T = static_cast<int64_t>(prompt.size()), V = c_.vocab_size;
    ATTUNE_CUDA_TRY(ensure_capacity(T + steps + 1));
    logits->assign(static_cast<size_t>((steps + 1) * V), 0.0f);
    tokens->clear();
    const SamplingParams greedy;  // temperature 0: the logits are left as they are
    const DecodeSamplingParams sampling = decode_params(greedy);
    Status status = prefill(prompt.data(), T, false);
    if (status.ok()) status = start_decode(prompt, steps + 1, greedy);
    // Row 0: the prefill's logits, then the first sample; row i > 0: decode step i (which
    // samples token i itself). A greedy sample leaves the logits as they are.
    for (int64_t i = 0; status.ok() && i <= steps; ++i) {
      if (i > 0) status = decode_step(sampling);
      if (status.ok()) {
        status = check(cudaMemcpyAsync(logits->data() + i * V, logits_.data(), static_cast<size_t>(V) * sizeof(float),
                                       cudaMemcpyDeviceToHost, stream_),
                       "reading the logits");
      }
      if (status.ok() && i == 0) status = enqueue_sample(sampling, 0);
    }
    const Status drained = synchronize("running decode steps on the GPU");
    if (!status.ok() || !drained.ok()) return status.ok() ? drained : status;
    for (int64_t i = 0; i <= steps; ++i) tokens->push_back(host_token(i));
    return {};
  }

  int64_t device_bytes() const override {
    int64_t total = static_cast<int64_t>(kGemmWorkspace);
    for (const DeviceBuffer& b : k_cache_) total += b.bytes();
    for (const DeviceBuffer& b : v_cache_) total += b.bytes();
    for (const DeviceBuffer* b : {&cos_, &sin_, &positions_, &context_, &uniforms_, &ids_, &state_, &x32_, &n32_, &p32_, &q32_,
                                  &attn32_, &k32_, &v32_, &gate32_, &up32_, &lora_u32_, &logits_, &partial_, &x_, &normed_,
                                  &q_, &q_pre_, &k_pre_, &attn_, &proj_, &gate_, &up_, &u_, &inner_, &prefill_partial_,
                                  &logits_all_, &scratch_.dropped, &scratch_.tmp, &scratch_.du, &scratch_.scaled,
                                  &scratch_.wx, &scratch_.wxd}) {
      total += b->bytes();
    }
    return total;
  }

  int64_t cache_capacity() const override { return capacity_; }
  const CudaGeneratorStats& stats() const override { return stats_; }

 private:
  Status synchronize(const char* what) { return check(cudaStreamSynchronize(stream_), what); }

  Status check_ids(const int32_t* ids, int64_t T) const {
    for (int64_t t = 0; t < T; ++t) {
      if (ids[t] < 0 || ids[t] >= c_.vocab_size) {
        return Status::invalid_argument("Token id " + std::to_string(ids[t]) + " is outside the vocabulary (0.." +
                                        std::to_string(c_.vocab_size - 1) + ")");
      }
    }
    return {};
  }

  // Grows the cache and every per-position buffer to hold `needed` positions (the CPU's
  // new_cache limits and messages). Their contents are not kept: every generation starts over.
  Status ensure_capacity(int64_t needed) {
    if (needed <= 0) return Status::invalid_argument("The context must hold at least one token");
    if (c_.sliding_window > 0 && needed > c_.sliding_window) {
      return Status::invalid_argument("This model was trained with sliding-window attention over " +
                                      std::to_string(c_.sliding_window) +
                                      " tokens, which Attune does not implement yet; keep the text under that length");
    }
    if (needed <= capacity_) return {};
    if (needed >= std::numeric_limits<int32_t>::max() - kCapacityStep) {
      return Status::invalid_argument("A context of " + std::to_string(needed) + " tokens is too long");
    }
    int64_t capacity = (needed + kCapacityStep - 1) / kCapacityStep * kCapacityStep;
    if (c_.sliding_window > 0) capacity = std::min<int64_t>(capacity, c_.sliding_window);
    // From here on the old buffers are invalid: drop them (and the graph that points into them)
    // first, so a failed allocation leaves an empty generator that the next call grows again.
    ATTUNE_CUDA_TRY(synchronize("finishing the GPU's work before growing the cache"));
    capacity_ = 0;
    drop_graph();
    ++buffers_version_;
    const int64_t L = c_.num_hidden_layers, row = c_.num_key_value_heads * c_.head_dim;
    k_cache_.resize(static_cast<size_t>(L));
    v_cache_.resize(static_cast<size_t>(L));
    for (auto* caches : {&k_cache_, &v_cache_}) {
      for (DeviceBuffer& b : *caches) b.release();
    }
    for (int64_t l = 0; l < L; ++l) {
      const std::string what = "the KV cache of " + std::to_string(capacity) + " tokens";
      ATTUNE_CUDA_TRY(k_cache_[static_cast<size_t>(l)].allocate(capacity * row * static_cast<int64_t>(sizeof(E)), what));
      ATTUNE_CUDA_TRY(v_cache_[static_cast<size_t>(l)].allocate(capacity * row * static_cast<int64_t>(sizeof(E)), what));
    }
    // RoPE tables for every position (the host model's own tables: the same numbers as the CPU).
    RopeTable& rope = m_.host->rope();
    rope.ensure(capacity);
    ATTUNE_CUDA_TRY(upload_floats(rope.cos(), capacity * rope.half_dim(), "RoPE's cosines", &cos_));
    ATTUNE_CUDA_TRY(upload_floats(rope.sin(), capacity * rope.half_dim(), "RoPE's sines", &sin_));
    // positions_[p] = p: the prefill's rope and attention read their positions from here.
    std::vector<int32_t> iota(static_cast<size_t>(capacity));
    for (size_t p = 0; p < iota.size(); ++p) iota[p] = static_cast<int32_t>(p);
    ATTUNE_CUDA_TRY(upload_to_device(iota.data(), capacity * 4, "the positions", &positions_));
    ATTUNE_CUDA_TRY(context_.allocate(capacity * 4, "the context ids"));
    ATTUNE_CUDA_TRY(ids_.allocate(capacity * 4, "the prompt ids"));
    ATTUNE_CUDA_TRY(uniforms_.allocate(capacity * 4, "the sampling draws"));
    if (host_tokens_) cudaFreeHost(host_tokens_);
    host_tokens_ = nullptr;
    host_tokens_device_ = nullptr;
    void* pinned = nullptr;
    ATTUNE_CUDA_TRY(check(cudaHostAlloc(&pinned, static_cast<size_t>(capacity) * 4, cudaHostAllocMapped),
                          "allocating pinned memory for the sampled ids"));
    host_tokens_ = static_cast<int32_t*>(pinned);
    void* mapped = nullptr;
    ATTUNE_CUDA_TRY(check(cudaHostGetDevicePointer(&mapped, pinned, 0), "mapping the sampled ids' memory"));
    host_tokens_device_ = static_cast<int32_t*>(mapped);
    capacity_ = capacity;
    return {};
  }

  // The adapter's factors of (layer, module), or null.
  const CudaAdapter::Impl::Factors* factors(int64_t layer, Module module) const {
    if (!adapter_) return nullptr;
    const CudaAdapter::Impl::Factors& f = adapter_->impl().layers[static_cast<size_t>(layer)][static_cast<size_t>(module)];
    return f.present ? &f : nullptr;
  }

  // --- Prefill: T type activations, cuBLASLt products.

  // y[rows, out] = the linear (layer, module) on x[rows, in], with the adapter when it targets it.
  Status linear(int64_t layer, Module module, const E* x, int64_t rows, E* y) {
    const DeviceLinear& w = m_.weights.layers[static_cast<size_t>(layer)].linears[static_cast<size_t>(module)];
    const CudaAdapter::Impl::Factors* f = factors(layer, module);
    if (f == nullptr) return linear_forward<E>(*gemm_, w, nullptr, x, nullptr, rows, y, nullptr, nullptr, scratch_, stream_);
    const CudaAdapter::Impl& a = adapter_->impl();
    DeviceAdapter view;
    view.rank = a.rank;
    view.scaling = a.scaling;
    view.A = std::is_same_v<E, float> ? f->a.data() : f->a16.data();
    view.B = std::is_same_v<E, float> ? f->b.data() : f->b16.data();
    if (a.dora) {
      view.norm = f->norm.as<float>();
      view.g = f->g.as<float>();
    }
    return linear_forward<E>(*gemm_, w, &view, x, nullptr, rows, y, u_.as<E>(), a.dora ? inner_.as<float>() : nullptr, scratch_,
                             stream_);
  }

  // Scratch for a prefill chunk of `rows` tokens (grown, never shrunk).
  Status ensure_prefill(int64_t rows) {
    const int64_t H = c_.hidden_size, I = c_.intermediate_size, q_dim = c_.num_attention_heads * c_.head_dim,
                  kv_dim = c_.num_key_value_heads * c_.head_dim;
    ATTUNE_CUDA_TRY(ensure<E>(x_, rows * H, "the prefill's hidden states"));
    ATTUNE_CUDA_TRY(ensure<E>(normed_, rows * H, "the prefill's normed states"));
    ATTUNE_CUDA_TRY(ensure<E>(proj_, rows * H, "the prefill's projections"));
    ATTUNE_CUDA_TRY(ensure<E>(q_, rows * q_dim, "the prefill's queries"));
    ATTUNE_CUDA_TRY(ensure<E>(attn_, rows * q_dim, "the prefill's attention output"));
    ATTUNE_CUDA_TRY(ensure<E>(gate_, rows * I, "the prefill's MLP activations"));
    ATTUNE_CUDA_TRY(ensure<E>(up_, rows * I, "the prefill's MLP activations"));
    if (m_.weights.layers[0].q_norm.bytes() > 0) {
      ATTUNE_CUDA_TRY(ensure<E>(q_pre_, rows * q_dim, "the prefill's queries before their norm"));
      ATTUNE_CUDA_TRY(ensure<E>(k_pre_, rows * kv_dim, "the prefill's keys before their norm"));
    }
    if (!attention_head_dim_supported(c_.head_dim)) {
      ATTUNE_CUDA_TRY(ensure<float>(prefill_partial_, cache_attention_workspace_floats(rows, c_.num_attention_heads, c_.head_dim, 1),
                                    "the prefill attention's workspace"));
    }
    if (adapter_) {
      ATTUNE_CUDA_TRY(ensure<E>(u_, rows * adapter_->rank(), "the adapter's x·Aᵀ"));
      if (adapter_->dora()) {
        ATTUNE_CUDA_TRY(ensure<float>(inner_, rows * std::max({H, I, q_dim, kv_dim}), "DoRA's direction"));
      }
    }
    return {};
  }

  // One decoder layer over `rows` prompt tokens at positions [pos, pos + rows); their keys and
  // values go straight into the cache rows of those positions.
  Status prefill_layer(int64_t l, int64_t rows, int64_t pos) {
    const DeviceLayer& w = m_.weights.layers[static_cast<size_t>(l)];
    const int64_t H = c_.hidden_size, I = c_.intermediate_size, hd = c_.head_dim, nh = c_.num_attention_heads,
                  nkv = c_.num_key_value_heads, kv_dim = nkv * hd;
    const float eps = static_cast<float>(c_.rms_norm_eps);
    E* k_all = k_cache_[static_cast<size_t>(l)].template as<E>();
    E* v_all = v_cache_[static_cast<size_t>(l)].template as<E>();
    E* k = k_all + pos * kv_dim;
    E* v = v_all + pos * kv_dim;
    E *x = x_.as<E>(), *normed = normed_.as<E>(), *q = q_.as<E>(), *attn = attn_.as<E>(), *proj = proj_.as<E>();
    const int32_t* positions = positions_.as<int32_t>() + pos;

    ATTUNE_CUDA_TRY(rmsnorm_forward<E>(x, w.input_norm.as<float>(), eps, rows, H, normed, nullptr, stream_));
    if (w.q_norm.bytes() > 0) {
      // Qwen3: each head's query and key are normalised before the rotation.
      ATTUNE_CUDA_TRY(linear(l, Module::kQ, normed, rows, q_pre_.as<E>()));
      ATTUNE_CUDA_TRY(linear(l, Module::kK, normed, rows, k_pre_.as<E>()));
      ATTUNE_CUDA_TRY(rmsnorm_forward<E>(q_pre_.as<E>(), w.q_norm.as<float>(), eps, rows * nh, hd, q, nullptr, stream_));
      ATTUNE_CUDA_TRY(rmsnorm_forward<E>(k_pre_.as<E>(), w.k_norm.as<float>(), eps, rows * nkv, hd, k, nullptr, stream_));
    } else {
      ATTUNE_CUDA_TRY(linear(l, Module::kQ, normed, rows, q));
      ATTUNE_CUDA_TRY(linear(l, Module::kK, normed, rows, k));
    }
    ATTUNE_CUDA_TRY(linear(l, Module::kV, normed, rows, v));
    ATTUNE_CUDA_TRY(rope_forward<E>(q, positions, rows, nh, hd, cos_.as<float>(), sin_.as<float>(), stream_));
    ATTUNE_CUDA_TRY(rope_forward<E>(k, positions, rows, nkv, hd, cos_.as<float>(), sin_.as<float>(), stream_));
    if (attention_head_dim_supported(hd)) {
      ATTUNE_CUDA_TRY(attention_forward<E>(q, k_all, v_all, rows, pos, nh, nkv, hd, attn, stream_));
    } else {
      ATTUNE_CUDA_TRY((cache_attention<E, E>(q, k_all, v_all, positions, rows, capacity_, nh, nkv, hd, attention_scale(), 1,
                                             prefill_partial_.as<float>(), attn, stream_)));
    }
    ATTUNE_CUDA_TRY(linear(l, Module::kO, attn, rows, proj));
    ATTUNE_CUDA_TRY(add_inplace<E>(x, proj, rows * H, stream_));

    ATTUNE_CUDA_TRY(rmsnorm_forward<E>(x, w.post_attention_norm.as<float>(), eps, rows, H, normed, nullptr, stream_));
    ATTUNE_CUDA_TRY(linear(l, Module::kGate, normed, rows, gate_.as<E>()));
    ATTUNE_CUDA_TRY(linear(l, Module::kUp, normed, rows, up_.as<E>()));
    ATTUNE_CUDA_TRY(swiglu_forward<E>(gate_.as<E>(), up_.as<E>(), rows * I, gate_.as<E>(), stream_));
    ATTUNE_CUDA_TRY(linear(l, Module::kDown, gate_.as<E>(), rows, proj));
    return add_inplace<E>(x, proj, rows * H, stream_);
  }

  // The prompt ids[T] into cache rows [0, T), in chunks of prefill_chunk tokens. Leaves the last
  // position's logits in logits_ (fp32, via gemv as decode computes them) and, with all_logits,
  // every position's logits in logits_all_ [T, vocab] (fp32, via cuBLASLt).
  Status prefill(const int32_t* ids, int64_t T, bool all_logits) {
    const int64_t H = c_.hidden_size, V = c_.vocab_size;
    const float eps = static_cast<float>(c_.rms_norm_eps);
    // (cache_attention, the prefill's attention for some head dims, takes up to 65535 tokens.)
    const int64_t chunk = std::min({options_.prefill_chunk, T, int64_t{65535}});
    ATTUNE_CUDA_TRY(ensure_prefill(chunk));
    ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(ids_.data(), ids, static_cast<size_t>(T) * 4, cudaMemcpyHostToDevice, stream_),
                          "copying the prompt"));
    const DeviceLinear& head = m_.weights.lm_head;
    int64_t rows = 0;
    for (int64_t pos = 0; pos < T; pos += rows) {
      rows = std::min(chunk, T - pos);
      ATTUNE_CUDA_TRY(embedding_forward<E>(ids_.as<int32_t>() + pos, rows, m_.weights.embedding.data(), m_.weights.embedding_type,
                                           H, x_.as<E>(), stream_));
      for (int64_t l = 0; l < c_.num_hidden_layers; ++l) ATTUNE_CUDA_TRY(prefill_layer(l, rows, pos));
      if (all_logits) {
        ATTUNE_CUDA_TRY(rmsnorm_forward<E>(x_.as<E>(), m_.weights.final_norm.as<float>(), eps, rows, H, normed_.as<E>(), nullptr,
                                           stream_));
        float* out = logits_all_.as<float>() + pos * V;
        ATTUNE_CUDA_TRY(gemm_->matmul(false, true, rows, V, H, 1.0f, normed_.data(), head.weight.data(), gemm_type<E>(), 0.0f, out,
                                      GemmType::kF32));
        if (head.bias_or_null() != nullptr) ATTUNE_CUDA_TRY(add_bias<float>(out, head.bias_or_null(), rows, V, stream_));
      }
    }
    // The last position: final norm (in E, as every position above), widened to fp32, lm_head by gemv.
    const E* last = x_.as<E>() + (rows - 1) * H;
    ATTUNE_CUDA_TRY(rmsnorm_forward<E>(last, m_.weights.final_norm.as<float>(), eps, 1, H, normed_.as<E>(), nullptr, stream_));
    ATTUNE_CUDA_TRY((convert<E, float>(normed_.as<E>(), n32_.as<float>(), H, stream_)));
    return gemv<E>(n32_.as<float>(), head.weight.as<E>(), head.bias_or_null(), logits_.as<float>(), 1, H, V, false, stream_);
  }

  float attention_scale() const { return 1.0f / std::sqrt(static_cast<float>(c_.head_dim)); }

  // --- Decode: fp32 activations, gemv products, everything read from device memory.

  // y[out] = the linear (layer, module) on x[in], with the adapter when it targets it.
  Status project(int64_t layer, Module module, const float* x, float* y) {
    const DeviceLinear& w = m_.weights.layers[static_cast<size_t>(layer)].linears[static_cast<size_t>(module)];
    const CudaAdapter::Impl::Factors* f = factors(layer, module);
    const E* weight = w.weight.as<E>();
    if (f == nullptr) return gemv<E>(x, weight, w.bias_or_null(), y, 1, w.in, w.out, false, stream_);
    const CudaAdapter::Impl& a = adapter_->impl();
    if (!a.dora) {
      ATTUNE_CUDA_TRY(gemv<E>(x, weight, w.bias_or_null(), y, 1, w.in, w.out, false, stream_));
      return lora_gemv_add(x, f->a.as<float>(), f->b.as<float>(), a.scaling, lora_u32_.as<float>(), y, 1, w.in, w.out, a.rank,
                           stream_);
    }
    // DoRA: y = (m/n)⊙(W·x + s·B·A·x) + bias.
    ATTUNE_CUDA_TRY(gemv<E>(x, weight, nullptr, y, 1, w.in, w.out, false, stream_));
    ATTUNE_CUDA_TRY(lora_gemv_add(x, f->a.as<float>(), f->b.as<float>(), a.scaling, lora_u32_.as<float>(), y, 1, w.in, w.out,
                                  a.rank, stream_));
    return dora_scale(f->magnitude.as<float>(), f->norm.as<float>(), w.bias_or_null(), y, 1, w.out, stream_);
  }

  // One decode step, only enqueued (no allocation, no synchronization: it may be captured): the
  // token state[kStateToken] at position state[kStatePosition] through the model, its key and
  // value into the cache, the next token sampled into state[kStateToken], the state advanced.
  Status enqueue_decode_step(const DecodeSamplingParams& sampling) {
    const int64_t H = c_.hidden_size, I = c_.intermediate_size, hd = c_.head_dim, nh = c_.num_attention_heads,
                  nkv = c_.num_key_value_heads;
    const float eps = static_cast<float>(c_.rms_norm_eps);
    int32_t* state = state_.as<int32_t>();
    const int32_t* position = state + kStatePosition;
    float *x = x32_.as<float>(), *n = n32_.as<float>(), *q = q32_.as<float>(), *k = k32_.as<float>(), *v = v32_.as<float>();
    float *attn = attn32_.as<float>(), *p = p32_.as<float>(), *gate = gate32_.as<float>(), *up = up32_.as<float>();
    const float *cos = cos_.as<float>(), *sin = sin_.as<float>();

    ATTUNE_CUDA_TRY(embedding_forward<float>(state + kStateToken, 1, m_.weights.embedding.data(), m_.weights.embedding_type, H, x,
                                             stream_));
    for (int64_t l = 0; l < c_.num_hidden_layers; ++l) {
      const DeviceLayer& w = m_.weights.layers[static_cast<size_t>(l)];
      ATTUNE_CUDA_TRY(rmsnorm_forward<float>(x, w.input_norm.as<float>(), eps, 1, H, n, nullptr, stream_));
      ATTUNE_CUDA_TRY(project(l, Module::kQ, n, q));
      ATTUNE_CUDA_TRY(project(l, Module::kK, n, k));
      ATTUNE_CUDA_TRY(project(l, Module::kV, n, v));
      if (w.q_norm.bytes() > 0) {
        ATTUNE_CUDA_TRY(rmsnorm_forward<float>(q, w.q_norm.as<float>(), eps, nh, hd, q, nullptr, stream_));
        ATTUNE_CUDA_TRY(rmsnorm_forward<float>(k, w.k_norm.as<float>(), eps, nkv, hd, k, nullptr, stream_));
      }
      ATTUNE_CUDA_TRY(rope_forward<float>(q, position, 1, nh, hd, cos, sin, stream_));
      ATTUNE_CUDA_TRY(rope_forward<float>(k, position, 1, nkv, hd, cos, sin, stream_));
      E* k_cache = k_cache_[static_cast<size_t>(l)].template as<E>();
      E* v_cache = v_cache_[static_cast<size_t>(l)].template as<E>();
      ATTUNE_CUDA_TRY(kv_append<E>(k, v, position, nkv * hd, capacity_, k_cache, v_cache, stream_));
      ATTUNE_CUDA_TRY((cache_attention<float, E>(q, k_cache, v_cache, position, 1, capacity_, nh, nkv, hd, attention_scale(),
                                                 splits_, partial_.as<float>(), attn, stream_)));
      ATTUNE_CUDA_TRY(project(l, Module::kO, attn, p));
      ATTUNE_CUDA_TRY(add_inplace<float>(x, p, H, stream_));
      ATTUNE_CUDA_TRY(rmsnorm_forward<float>(x, w.post_attention_norm.as<float>(), eps, 1, H, n, nullptr, stream_));
      ATTUNE_CUDA_TRY(project(l, Module::kGate, n, gate));
      ATTUNE_CUDA_TRY(project(l, Module::kUp, n, up));
      ATTUNE_CUDA_TRY(swiglu_forward<float>(gate, up, I, gate, stream_));
      ATTUNE_CUDA_TRY(project(l, Module::kDown, gate, p));
      ATTUNE_CUDA_TRY(add_inplace<float>(x, p, H, stream_));
    }
    ATTUNE_CUDA_TRY(rmsnorm_forward<float>(x, m_.weights.final_norm.as<float>(), eps, 1, H, n, nullptr, stream_));
    const DeviceLinear& head = m_.weights.lm_head;
    ATTUNE_CUDA_TRY(gemv<E>(n, head.weight.as<E>(), head.bias_or_null(), logits_.as<float>(), 1, H, c_.vocab_size, false, stream_));
    return enqueue_sample(sampling, 1);
  }

  // sample_token on logits_ into state[kStateToken], then decode_advance (position_delta: 1 after
  // a decode step, whose token now sits in the cache; 0 after the prefill).
  Status enqueue_sample(const DecodeSamplingParams& sampling, int32_t position_delta) {
    int32_t* state = state_.as<int32_t>();
    ATTUNE_CUDA_TRY(sample_token(logits_.as<float>(), c_.vocab_size, context_.as<int32_t>(), state + kStateContextLength, sampling,
                                 uniforms_.as<float>(), state + kStateSampleStep, state + kStateToken, stream_));
    return decode_advance(state, context_.as<int32_t>(), capacity_, host_tokens_device_, capacity_, position_delta, stream_);
  }

  // The state, context ids and uniforms of a new generation of up to `samples` tokens after
  // `prompt` (whose keys and values the prefill has just written).
  Status start_decode(const std::vector<int32_t>& prompt, int64_t samples, const SamplingParams& sampling) {
    const int32_t T = static_cast<int32_t>(prompt.size());
    host_state_.fill(0);
    host_state_[kStatePosition] = T;
    host_state_[kStateContextLength] = T;
    ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(state_.data(), host_state_.data(), sizeof(host_state_), cudaMemcpyHostToDevice, stream_),
                          "copying the decode state"));
    ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(context_.data(), prompt.data(), prompt.size() * 4, cudaMemcpyHostToDevice, stream_),
                          "copying the context ids"));
    if (sampling.temperature > 0.0f) {
      // The uniforms the CPU's Sampler would draw, in order: one per (non-greedy) sample.
      Rng rng(sampling.seed);
      host_uniforms_.resize(static_cast<size_t>(samples));
      for (float& u : host_uniforms_) u = rng.uniform();
      ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(uniforms_.data(), host_uniforms_.data(), host_uniforms_.size() * 4,
                                            cudaMemcpyHostToDevice, stream_),
                            "copying the sampling draws"));
    }
    // The host's copies above are read by the GPU asynchronously: wait, so that the vectors may
    // change (a pageable copy is staged before the call returns, but nothing here relies on it).
    return synchronize("copying the decode state");
  }

  Status record(int64_t token_index) {
    return check(cudaEventRecord(token_ready_[token_index & 1], stream_), "recording a CUDA event");
  }

  int32_t host_token(int64_t i) const {
    // Written by decode_advance through the mapped pointer; read after waiting for that kernel.
    return static_cast<const volatile int32_t*>(host_tokens_)[i];
  }

  GraphKey graph_key(const DecodeSamplingParams& s) const {
    GraphKey key;
    key.temperature = s.temperature;
    key.top_p = s.top_p;
    key.top_k = s.top_k;
    key.repetition_penalty = s.repetition_penalty;
    key.adapter_version = adapter_version_;
    key.buffers_version = buffers_version_;
    return key;
  }

  void drop_graph() {
    if (graph_) cudaGraphExecDestroy(graph_);
    graph_ = nullptr;
  }

  // Captures enqueue_decode_step into graph_ (nothing runs during a capture). On failure the
  // stream is left out of capture mode, the error cleared, and the reason returned.
  Status capture(const DecodeSamplingParams& sampling) {
    drop_graph();
    ATTUNE_CUDA_TRY(check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "starting a CUDA graph capture"));
    const Status enqueued = enqueue_decode_step(sampling);
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
    if (!enqueued.ok() || ended != cudaSuccess) {
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();  // a capture error is not sticky: clear it
      return enqueued.ok() ? cuda_error(ended, "capturing the decode step in a CUDA graph") : enqueued;
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (instantiated != cudaSuccess) {
      cudaGetLastError();
      return cuda_error(instantiated, "instantiating the decode step's CUDA graph");
    }
    graph_ = exec;
    graph_key_ = graph_key(sampling);
    ++stats_.graph_captures;
    return {};
  }

  // Enqueues one decode step: by replaying the graph when one is captured for these settings;
  // else the first step with new settings is launched kernel by kernel (a warm-up outside any
  // capture: first-use initialisation and argument checks happen there), and the graph is
  // captured for the steps after it. A capture that fails is reported in stats().graph_error and
  // these settings keep launching kernel by kernel (the same kernels, the same results).
  Status decode_step(const DecodeSamplingParams& sampling) {
    if (!options_.use_graph) return eager_step(sampling);
    const GraphKey key = graph_key(sampling);
    if (graph_ && graph_key_ == key) {
      ++stats_.graph_replays;
      return check(cudaGraphLaunch(graph_, stream_), "launching the decode step's CUDA graph");
    }
    if (failed_key_valid_ && failed_key_ == key) return eager_step(sampling);
    if (!warmed_key_valid_ || warmed_key_ != key) {
      warmed_key_ = key;
      warmed_key_valid_ = true;
      return eager_step(sampling);
    }
    const Status captured = capture(sampling);
    if (!captured.ok()) {
      stats_.graph_error = captured.message();
      failed_key_ = key;
      failed_key_valid_ = true;
      return eager_step(sampling);
    }
    stats_.graph_error.clear();
    ++stats_.graph_replays;
    return check(cudaGraphLaunch(graph_, stream_), "launching the decode step's CUDA graph");
  }

  Status eager_step(const DecodeSamplingParams& sampling) {
    ++stats_.eager_steps;
    return enqueue_decode_step(sampling);
  }

  std::shared_ptr<const CudaModel> model_;
  const CudaModel::Impl& m_;
  const ModelConfig& c_;
  CudaGeneratorOptions options_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Gemm> gemm_;
  std::array<cudaEvent_t, 2> token_ready_{};  // token i is on the host once token_ready_[i % 2] fired
  std::shared_ptr<const CudaAdapter> adapter_;
  uint64_t adapter_version_ = 0, buffers_version_ = 0;

  // The cache and the per-position buffers, sized by capacity_ (ensure_capacity).
  int64_t capacity_ = 0;
  std::vector<DeviceBuffer> k_cache_, v_cache_;  // [layer]: [capacity, kv_heads · head_dim] E
  DeviceBuffer cos_, sin_;                       // [capacity, head_dim / 2] fp32
  DeviceBuffer positions_;                       // int32 [capacity]: positions_[p] = p
  DeviceBuffer context_;                         // int32 [capacity]: prompt + sampled ids
  DeviceBuffer ids_;                             // int32 [capacity]: the prompt
  DeviceBuffer uniforms_;                        // fp32 [capacity]: the sampling draws
  int32_t* host_tokens_ = nullptr;               // [capacity] mapped pinned: the sampled ids
  int32_t* host_tokens_device_ = nullptr;        // its device address
  DeviceBuffer state_;                           // int32 [kStateFields]
  std::array<int32_t, kStateFields> host_state_{};
  std::vector<float> host_uniforms_;

  // Decode scratch (fp32), fixed at creation except lora_u32_ (grown by set_adapter).
  int64_t splits_ = 1;
  DeviceBuffer x32_, n32_, p32_, q32_, attn32_, k32_, v32_, gate32_, up32_, lora_u32_, logits_, partial_;
  // Prefill scratch (E unless noted), grown per chunk size.
  DeviceBuffer x_, normed_, q_, q_pre_, k_pre_, attn_, proj_, gate_, up_, u_;
  DeviceBuffer inner_, prefill_partial_, logits_all_;  // fp32
  LinearScratch scratch_;

  // The decode graph and the settings it was captured for.
  cudaGraphExec_t graph_ = nullptr;
  GraphKey graph_key_, warmed_key_, failed_key_;
  bool warmed_key_valid_ = false, failed_key_valid_ = false;
  CudaGeneratorStats stats_;
};

}  // namespace

Status CudaGenerator::create(std::shared_ptr<const CudaModel> model, const CudaGeneratorOptions& options,
                             std::unique_ptr<CudaGenerator>* out) {
  if (!model) return Status::invalid_argument("CudaGenerator::create needs a model");
  const bool f32 = model->precision() == GenerationPrecision::kF32;
  std::unique_ptr<CudaGenerator> generator;
  Status status;
  if (f32) {
    auto g = std::make_unique<Generator<float>>(std::move(model), options);
    status = g->init();
    generator = std::move(g);
  } else {
    auto g = std::make_unique<Generator<__nv_bfloat16>>(std::move(model), options);
    status = g->init();
    generator = std::move(g);
  }
  if (!status.ok()) return status;
  *out = std::move(generator);
  return {};
}

}  // namespace attune::cuda
