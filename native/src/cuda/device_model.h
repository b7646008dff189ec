// The frozen weights of a loaded model, copied to the GPU once: decoder linears (and lm_head) in
// the compute type (bf16, or fp32 to check against the CPU backend to rounding), the RMSNorm
// weights and biases in fp32, the embedding table in its file dtype. Shared by GPU training
// (cuda_trainer.h) and GPU generation.
#pragma once

#include <array>
#include <vector>

#include "cuda/cublaslt.h"
#include "cuda/device_memory.h"
#include "model/llama.h"

namespace attune::cuda {

struct DeviceLinear {
  DeviceBuffer weight;  // [out, in] in DeviceModel::type
  DeviceBuffer bias;    // [out] fp32, empty when the layer has none
  int64_t in = 0, out = 0;
  const float* bias_or_null() const { return bias.bytes() > 0 ? bias.as<float>() : nullptr; }
};

struct DeviceLayer {
  DeviceBuffer input_norm, post_attention_norm;  // [hidden] fp32
  DeviceBuffer q_norm, k_norm;                   // [head_dim] fp32, Qwen3 only (else empty)
  std::array<DeviceLinear, kModuleCount> linears;  // by Module
};

struct DeviceModel {
  GemmType type = GemmType::kBF16;
  std::vector<DeviceLayer> layers;
  DeviceBuffer embedding;  // [vocab, hidden] as stored in the file
  WeightType embedding_type = WeightType::F32;
  DeviceBuffer final_norm;  // [hidden] fp32
  DeviceLinear lm_head;
  int64_t bytes = 0;  // GPU memory held by all of the above
};

// Copies `model`'s frozen weights to the current GPU in `type`, and returns once they are there. A 4-bit base is copied as its
// dequantized values (the same numbers the CPU computes with). Out of memory: an error naming the
// weight and the sizes.
Status upload_model(const LlamaModel& model, GemmType type, DeviceModel* out);

// Copies `bytes` of host memory to a new device buffer named `what`, and returns once they are
// on the GPU: work queued later on any stream (the engine's streams are non-blocking, and do not
// wait for the legacy stream a plain cudaMemcpy runs on) sees them.
Status upload_to_device(const void* data, int64_t bytes, const std::string& what, DeviceBuffer* out);
// upload_to_device for fp32 values.
Status upload_floats(const float* values, int64_t n, const std::string& what, DeviceBuffer* out);

}  // namespace attune::cuda
