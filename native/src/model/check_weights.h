// Checks a model's weights against its config before anything runs: every tensor the architecture
// needs is present with the shape the config implies, so a wrong or mixed-up checkpoint fails here,
// by name, instead of as a crash or as garbage output later.
#pragma once

#include "attune/status.h"
#include "io/model_weights.h"
#include "model/config.h"

namespace attune {

// Expected (V vocab, H hidden, I intermediate, heads·head_dim = Q, kv_heads·head_dim = K):
//   model.embed_tokens.weight [V, H], model.norm.weight [H], lm_head.weight [V, H] unless tied;
//   per layer model.layers.i.: input_layernorm.weight, post_attention_layernorm.weight [H];
//   self_attn.q_proj [Q, H], k_proj [K, H], v_proj [K, H], o_proj [H, Q] (.weight, .bias where the
//   architecture has one); Qwen3 self_attn.q_norm.weight, k_norm.weight [head_dim];
//   mlp.gate_proj [I, H], up_proj [I, H], down_proj [H, I].
// Float tensors must be F32, F16 or BF16. With a quantization_config, a projection may instead be
// stored as NF4 (see nf4_layout.h). Extra tensors are ignored.
Status check_weights(const ModelConfig& config, const ModelWeights& weights);

}  // namespace attune
