#include "train/gpu_memory_plan.h"

#include <algorithm>

namespace attune::train {

namespace {

constexpr int64_t kF32 = 4, kI32 = 4, kF64 = 8;
// ops_optimizer.cu's partial sums per gradient tensor for the norm (grad_sum_squares_workspace).
constexpr int64_t kNormPartials = 64;

}  // namespace

MemoryPlan plan_gpu_training_memory(const ModelConfig& c, const AdapterOptions& a, const GpuPlanInputs& in) {
  const int64_t T = std::max<int64_t>(in.seq_len, 0), e = in.element_bytes, H = c.hidden_size, I = c.intermediate_size,
                V = c.vocab_size, L = c.num_hidden_layers, r = a.rank, nh = c.num_attention_heads, nkv = c.num_key_value_heads,
                hd = c.head_dim;
  const bool qk_norm = c.arch == Architecture::kQwen3;
  const bool bf16 = e == 2;
  MemoryPlan p;

  // Weights (cuda/device_model.cpp): every decoder linear and lm_head in the compute type, their
  // biases, the norms (fp32), the embedding as stored; and cuBLASLt's workspace.
  int64_t linears = 0, biases = 0;
  for (int m = 0; m < kModuleCount; ++m) {
    const Module module = static_cast<Module>(m);
    const ModuleDims d = module_dims(c, module);
    linears += d.in * d.out;
    const bool qkv = module == Module::kQ || module == Module::kK || module == Module::kV;
    if ((qkv && c.qkv_bias) || (module == Module::kO && c.o_bias)) biases += d.out;
  }
  p.weights = L * (linears * e + biases * kF32 + 2 * H * kF32 + (qk_norm ? 2 * hd * kF32 : 0)) + V * H * in.embedding_bytes +
              H * kF32 + V * H * e + kGpuGemmWorkspace;

  // Adapters: fp32 values (plus a bf16 copy for the products), gradients, AdamW's two moments;
  // DoRA's ‖W‖², n and g per row, A·Wᵀ [r, out] and A·Aᵀ [r, r] per module.
  int64_t values = 0, tensors = 0, dora = 0, max_in = 0, max_out = 0, per_layer_u = 0;
  for (int m = 0; m < kModuleCount; ++m) {
    if (!a.targets[static_cast<size_t>(m)]) continue;
    const ModuleDims d = module_dims(c, static_cast<Module>(m));
    values += L * (r * d.in + d.out * r + (a.dora ? d.out : 0));
    tensors += L * (a.dora ? 3 : 2);
    if (a.dora) dora += L * (3 * d.out + r * d.out + r * r) * kF32;
    max_in = std::max(max_in, d.in);
    max_out = std::max(max_out, d.out);
    per_layer_u += T * r * e + (a.dora ? T * d.out * kF32 : 0);  // u, and DoRA's inner
  }
  p.adapters = values * (kF32 + (bf16 ? 2 : 0)) + dora;
  p.gradients = values * kF32;
  p.optimizer = 2 * values * kF32;

  // Activations: the layers' inputs and one set of saved values (checkpointing) or L of them.
  int64_t layer = (4 * T * H + 2 * T * nh * hd + 2 * T * nkv * hd + 3 * T * I) * e + (2 * T + T * nh) * kF32 + per_layer_u;
  if (qk_norm) layer += (T * nh * hd + T * nkv * hd) * e + (T * nh + T * nkv) * kF32;
  p.activations = (L + 1) * T * H * e + (in.gradient_checkpointing ? 1 : L) * layer;

  // Workspace: the head (hidden, dhidden, a chunk of logits, rstd, per-position losses, the loss),
  // dx and the recomputed output, the backward's gradients, ids/labels/positions, RoPE's tables,
  // the adapter layers' scratch, the gradient norm's partial sums and the clipping scalars.
  int64_t ws = (2 * T * H + std::min(kGpuLogitRows, T) * V + 2 * T * H + 3 * T * I + T * H + 2 * T * nh * hd + 2 * T * nkv * hd) * e +
               (2 * T + T * nh) * kF32 + kF64 + 3 * T * kI32 + 2 * T * (hd / 2) * kF32 + T * r * e +
               (tensors * kNormPartials + 1) * kF64 + 2 * kF32;
  if (a.dora) ws += T * max_out * e;  // g⊙dy
  if (a.dropout > 0) {
    ws += T * max_in * kF32 + 2 * T * max_in * e;  // the mask, the dropped input, the branch's input gradient
    if (a.dora) ws += 2 * T * max_out * kF32;      // W·x and W·x_d
  }
  p.workspace = ws;
  p.total = p.weights + p.adapters + p.gradients + p.optimizer + p.activations + p.workspace;
  return p;
}

}  // namespace attune::train
