#include "train/memory_plan.h"

#include <algorithm>

namespace attune::train {

namespace {

constexpr int64_t kF32 = static_cast<int64_t>(sizeof(float));
constexpr int64_t kI32 = static_cast<int64_t>(sizeof(int32_t));

}  // namespace

ModuleDims module_dims(const ModelConfig& c, Module module) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, q = c.num_attention_heads * c.head_dim,
                kv = c.num_key_value_heads * c.head_dim;
  switch (module) {
    case Module::kQ: return {H, q};
    case Module::kK: return {H, kv};
    case Module::kV: return {H, kv};
    case Module::kO: return {q, H};
    case Module::kGate: return {H, I};
    case Module::kUp: return {H, I};
    case Module::kDown: return {I, H};
  }
  return {0, 0};
}

MemoryPlan plan_training_memory(const ModelConfig& c, const AdapterOptions& a, int64_t seq_len, bool gradient_checkpointing,
                                bool nf4_base, int64_t weight_file_bytes) {
  const int64_t T = std::max<int64_t>(seq_len, 0), H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size,
                L = c.num_hidden_layers, r = a.rank, nh = c.num_attention_heads, nkv = c.num_key_value_heads, hd = c.head_dim;
  const bool qk_norm = c.arch == Architecture::kQwen3;
  MemoryPlan p;

  // Weights: the mapped files; a 4-bit base adds an fp32 copy of every decoder linear.
  p.weights = weight_file_bytes;
  if (nf4_base) {
    for (int m = 0; m < kModuleCount; ++m) {
      const ModuleDims d = module_dims(c, static_cast<Module>(m));
      p.weights += L * d.in * d.out * kF32;
    }
  }

  // Adapters (train/adapter_set.cpp): A [r, in], B [out, r], DoRA's m [out] and its two cached
  // row norms [out]; a gradient per value and AdamW's two moments per value.
  int64_t values = 0, dora_norms = 0, max_in = 0, per_layer_u = 0;
  for (int m = 0; m < kModuleCount; ++m) {
    if (!a.targets[static_cast<size_t>(m)]) continue;
    const ModuleDims d = module_dims(c, static_cast<Module>(m));
    values += L * (r * d.in + d.out * r + (a.dora ? d.out : 0));
    if (a.dora) dora_norms += L * 2 * d.out;
    max_in = std::max(max_in, d.in);
    per_layer_u += T * r + (a.dora ? T * d.out : 0);  // Layer::u (A·x_d), and DoRA's Layer::inner
  }
  p.adapters = (values + dora_norms) * kF32;
  p.gradients = values * kF32;
  p.optimizer = 2 * values * kF32;

  // Activations: every layer's input (L + 1 of [T, H]) and one Layer of saved values
  // (checkpointing) or L of them (train/trainer.cpp, Trainer::Layer).
  int64_t layer = 4 * T * H                  // x_in, n1, x_mid, n2
                  + 2 * T                    // rstd1, rstd2
                  + 2 * T * nh * hd          // q, attn
                  + 2 * T * nkv * hd         // k, v
                  + T * nh                   // lse
                  + 3 * T * I                // gate, up, act
                  + per_layer_u;
  if (qk_norm) layer += T * nh * hd + T * nkv * hd + T * nh + T * nkv;  // q_pre, k_pre, rstd_q, rstd_k
  p.activations = ((L + 1) * T * H + (gradient_checkpointing ? 1 : L) * layer) * kF32;

  // Workspace at the peak (the backward of a layer): the head's hidden, rstd, dhidden and logits
  // chunk, dx, the recomputed layer output, backward_layer's gradients, the dropout mask and
  // dropped input (largest adapted input width), the shifted labels and the positions.
  int64_t ws = 2 * T * H + T + kLogitRows * V  // hidden, dhidden, rstd, logits
               + 2 * T * H                      // dx, recomputed
               + 3 * T * I + T * H              // d_act, dgate, dup, dn
               + 2 * T * nh * hd + 2 * T * nkv * hd;  // dattn, dq, dk, dv
  if (a.dropout > 0) ws += 2 * T * max_in;  // mask, scratch
  p.workspace = ws * kF32 + 2 * T * kI32;   // shifted labels, positions

  p.total = p.weights + p.adapters + p.gradients + p.optimizer + p.activations + p.workspace;
  return p;
}

}  // namespace attune::train
