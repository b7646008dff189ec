#include "cuda/device_model.h"

#include <cuda_bf16.h>

#include <algorithm>

#include "adapter/lora.h"
#include "cuda/cuda_status.h"

namespace attune::cuda {

namespace {

// Rows converted per block on the host: bounds the staging memory to a few MB.
constexpr int64_t kRowsPerBlock = 256;

int64_t element_bytes(GemmType type) { return type == GemmType::kBF16 ? 2 : 4; }

// W [out, in] from its file dtype to `type`, a block of rows at a time: bf16 files copy as they
// are when the compute type is bf16; everything else goes through fp32 (exact for bf16/f16) and
// is rounded to nearest even when narrowed.
Status upload_linear(const LinearWeight& w, GemmType type, const std::string& what, DeviceLinear* out) {
  out->in = w.in;
  out->out = w.out;
  ATTUNE_CUDA_TRY(out->weight.allocate(w.out * w.in * element_bytes(type), what));
  const adapter::FrozenLinear frozen{w.data, w.type, nullptr, w.in, w.out};
  if (type == GemmType::kBF16 && w.type == WeightType::BF16) {
    ATTUNE_CUDA_TRY(check(cudaMemcpy(out->weight.data(), w.data, static_cast<size_t>(w.out * w.in * 2), cudaMemcpyHostToDevice),
                          ("copying " + what).c_str()));
  } else {
    std::vector<float> rows(static_cast<size_t>(std::min(kRowsPerBlock, w.out) * w.in));
    std::vector<__nv_bfloat16> narrowed(type == GemmType::kBF16 ? rows.size() : 0);
    for (int64_t row0 = 0; row0 < w.out; row0 += kRowsPerBlock) {
      const int64_t count = std::min(kRowsPerBlock, w.out - row0), n = count * w.in;
      adapter::detail::frozen_rows_to_f32(frozen, row0, count, rows.data());
      const void* source = rows.data();
      if (type == GemmType::kBF16) {
        for (int64_t i = 0; i < n; ++i) narrowed[static_cast<size_t>(i)] = __float2bfloat16_rn(rows[static_cast<size_t>(i)]);
        source = narrowed.data();
      }
      char* target = out->weight.as<char>() + row0 * w.in * element_bytes(type);
      ATTUNE_CUDA_TRY(check(cudaMemcpy(target, source, static_cast<size_t>(n * element_bytes(type)), cudaMemcpyHostToDevice),
                            ("copying " + what).c_str()));
    }
  }
  if (!w.bias.empty()) ATTUNE_CUDA_TRY(upload_floats(w.bias.data(), w.out, what + " bias", &out->bias));
  // The copies above ran on the legacy stream: wait until the weight has landed.
  return check(cudaStreamSynchronize(nullptr), ("copying " + what).c_str());
}

}  // namespace

Status upload_to_device(const void* data, int64_t bytes, const std::string& what, DeviceBuffer* out) {
  ATTUNE_CUDA_TRY(out->allocate(bytes, what));
  if (bytes == 0) return {};
  ATTUNE_CUDA_TRY(check(cudaMemcpy(out->data(), data, static_cast<size_t>(bytes), cudaMemcpyHostToDevice), ("copying " + what).c_str()));
  // From pageable memory cudaMemcpy may return before the data has landed; later work on the
  // engine's non-blocking streams would not wait for it.
  return check(cudaStreamSynchronize(nullptr), ("copying " + what).c_str());
}

Status upload_floats(const float* values, int64_t n, const std::string& what, DeviceBuffer* out) {
  return upload_to_device(values, n * static_cast<int64_t>(sizeof(float)), what, out);
}

Status upload_model(const LlamaModel& model, GemmType type, DeviceModel* out) {
  const ModelConfig& c = model.config();
  out->type = type;
  out->layers.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const DecoderLayer& host = model.layers()[static_cast<size_t>(l)];
    DeviceLayer& layer = out->layers[static_cast<size_t>(l)];
    const std::string prefix = "layer " + std::to_string(l) + " ";
    ATTUNE_CUDA_TRY(upload_floats(host.input_norm.data(), c.hidden_size, prefix + "input norm", &layer.input_norm));
    ATTUNE_CUDA_TRY(upload_floats(host.post_attention_norm.data(), c.hidden_size, prefix + "post-attention norm",
                                  &layer.post_attention_norm));
    if (!host.q_norm.empty()) {
      ATTUNE_CUDA_TRY(upload_floats(host.q_norm.data(), c.head_dim, prefix + "q norm", &layer.q_norm));
      ATTUNE_CUDA_TRY(upload_floats(host.k_norm.data(), c.head_dim, prefix + "k norm", &layer.k_norm));
    }
    for (int m = 0; m < kModuleCount; ++m) {
      const Module module = static_cast<Module>(m);
      ATTUNE_CUDA_TRY(upload_linear(model.linear(l, module), type, prefix + module_name(module),
                                    &layer.linears[static_cast<size_t>(m)]));
    }
  }
  const int64_t embedding_bytes = c.vocab_size * c.hidden_size * (model.embedding_type() == WeightType::F32 ? 4 : 2);
  out->embedding_type = model.embedding_type();
  ATTUNE_CUDA_TRY(upload_to_device(model.embedding(), embedding_bytes, "the embedding table", &out->embedding));
  ATTUNE_CUDA_TRY(upload_floats(model.final_norm().data(), c.hidden_size, "the final norm", &out->final_norm));
  ATTUNE_CUDA_TRY(upload_linear(model.lm_head(), type, "lm_head", &out->lm_head));

  out->bytes = out->embedding.bytes() + out->final_norm.bytes() + out->lm_head.weight.bytes() + out->lm_head.bias.bytes();
  for (const DeviceLayer& layer : out->layers) {
    out->bytes += layer.input_norm.bytes() + layer.post_attention_norm.bytes() + layer.q_norm.bytes() + layer.k_norm.bytes();
    for (const DeviceLinear& linear : layer.linears) out->bytes += linear.weight.bytes() + linear.bias.bytes();
  }
  return {};
}

}  // namespace attune::cuda
