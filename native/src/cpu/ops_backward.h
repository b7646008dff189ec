// The backward passes of the CPU backend's model ops (fp32), llm.c style: one explicit function per
// op, the shapes in the first comment, every buffer passed in. Each takes dOut and what the forward
// saved, and writes the input gradients; verified by finite differences in
// tests/test_op_gradients.cpp. Linear layers' backward lives in gemm.h (linear_backward_input,
// linear_backward_weight); the adapter layers in adapter/. Residual adds need no op (the gradient
// passes through unchanged); the embedding is frozen (no backward).
#pragma once

#include <cstdint>

#include "cpu/thread_pool.h"

namespace attune::cpu {

// dy, x, dx: [T,H]; weight: [H]; rstd: [T] as saved by rmsnorm_forward; dweight: [H] or null.
// y = x·r·w with r = rsqrt(mean(x²) + eps):
//   dx = r·(w⊙dy) − x·(r³/H)·Σ_j dy_j·w_j·x_j   (overwritten, or added to dx when accumulate)
//   dweight += Σ_t dy_t ⊙ x_t·r_t               (only when dweight is not null; always accumulated)
// dx may be the same buffer as dy when accumulate is false (in place).
void rmsnorm_backward(ThreadPool& pool, const float* dy, const float* x, const float* weight, const float* rstd,
                      int64_t T, int64_t H, float* dx, bool accumulate, float* dweight = nullptr);

// dx[T, heads, dim] in place: the gradient of rope_forward's output becomes the gradient of its
// input. The rotation is orthogonal, so its backward is the inverse rotation:
// (a, b) = (dx[i], dx[i + dim/2]) → (a·cos + b·sin, b·cos − a·sin). Same tables and positions.
void rope_backward(ThreadPool& pool, float* dx, const int32_t* positions, int64_t T, int64_t heads, int64_t dim,
                   const float* cos_table, const float* sin_table);

// Training attention (no cache, past = 0): q, out: [T, heads, dim]; k, v: [T, kv_heads, dim];
// lse: [T, heads]. The same causal GQA attention as attention_forward (query t sees keys 0..t,
// softmax in fp32, scale 1/√dim), and also keeps lse[t, h] = log Σ_s exp(scale·q_t·k_s), the
// log-sum-exp of the scaled scores of each query row, so the backward can recompute the
// probabilities block by block instead of saving the [heads, T, T] matrix.
void attention_forward_train(ThreadPool& pool, const float* q, const float* k, const float* v, int64_t T, int64_t heads,
                             int64_t kv_heads, int64_t dim, float* out, float* lse);

// dout, q, dq: [T, heads, dim]; k, v, dk, dv: [T, kv_heads, dim]; lse: [T, heads] from
// attention_forward_train. dq, dk, dv are overwritten. Per head and block of query rows:
//   P = exp(scale·Q·Kᵀ − lse) (causal), dP = dO·Vᵀ, D_i = Σ_j P_ij·dP_ij,
//   dS = P ⊙ (dP − D), dQ = scale·dS·K, dK += scale·dSᵀ·Q, dV += Pᵀ·dO,
// dK and dV summed over the query heads that share a key/value head (GQA).
void attention_backward(ThreadPool& pool, const float* dout, const float* q, const float* k, const float* v,
                        const float* lse, int64_t T, int64_t heads, int64_t kv_heads, int64_t dim, float* dq,
                        float* dk, float* dv);

// dout, gate, up, dgate, dup: [count] (= T·I); out = silu(gate)·up, silu(g) = g·σ(g):
//   dgate = dout·up·σ(g)·(1 + g·(1 − σ(g))), dup = dout·silu(g)   (both overwritten)
// dgate may be the same buffer as gate, dup as up (in place).
void swiglu_backward(ThreadPool& pool, const float* dout, const float* gate, const float* up, int64_t count,
                     float* dgate, float* dup);

// The causal-LM loss and its gradient in one pass. logits, dlogits: [T,V] fp32; targets: [T],
// −100 (any negative) = ignored; targets ≥ 0 must be < V (checked by the caller).
// Returns Σ −log softmax(logits[t])[targets[t]] over the counted rows (as cross_entropy_sum) and
// adds their number to *count (when not null); writes dlogits[t] = scale·(softmax(logits[t]) −
// onehot(targets[t])) for counted rows and zeros for ignored ones. scale is typically 1/(number of
// counted targets in the batch). dlogits may be logits itself (in place).
double cross_entropy_forward_backward(ThreadPool& pool, const float* logits, const int32_t* targets, int64_t T,
                                      int64_t V, float scale, float* dlogits, int64_t* count);

}  // namespace attune::cpu
