// Causal grouped-query attention on the GPU: the inference forward against a KV cache, the
// training forward that also keeps each row's log-sum-exp, and the training backward. Same
// semantics as the CPU ops of the same names (cpu/ops.h attention_forward, cpu/ops_backward.h
// attention_forward_train / attention_backward): query head h reads key/value head
// h / (heads / kv_heads), scores are scale·q·k with scale = 1/√dim, the softmax is in fp32, and
// query t (at position past + t) sees keys 0..past+t.
//
// Element type T is float or __nv_bfloat16 (q, k, v, out, dout, dq, dk, dv); lse and the backward's
// delta are fp32; all arithmetic is fp32. Pointers are device pointers; outputs must not alias
// inputs. Head dims 16, 32, 64, 80, 96, 128 and 256 are supported; any other is refused with
// Status::invalid_argument naming the size. No [T, T] matrix is ever stored: the kernels are tiled
// with an online softmax (attention_forward*) or recompute the probabilities from lse (backward).
// Each launcher validates its arguments, enqueues on `stream` and returns the launch status.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "attune/status.h"

namespace attune::cuda {

// Whether the ops below take head dim `dim` (16, 32, 64, 80, 96, 128 or 256): for callers that
// pick another path for the others, so that their list cannot drift from the kernels'.
bool attention_head_dim_supported(int64_t dim);

// Inference forward (cpu::attention_forward). q, out: [tokens, heads, dim]; k, v: [S, kv_heads,
// dim] with rows [0, past + tokens) filled (S itself is not needed: rows from past + tokens on are
// never read). Query t sits at position past + t and sees keys 0..past+t.
//
// workspace (optional, fp32-aligned device memory of workspace_bytes): lets short queries against
// long caches (decode) split the keys across blocks, flash-decoding style, with a second kernel
// combining the partial softmaxes. attention_forward_workspace_bytes() is the most it will use;
// a smaller workspace means fewer splits, none (nullptr) means one block per query tile reads all
// the keys. The result does not depend on whether or how the keys were split beyond fp32
// rounding. The workspace must not be used by other work on other streams meanwhile.
template <typename T>
Status attention_forward(const T* q, const T* k, const T* v, int64_t tokens, int64_t past, int64_t heads,
                         int64_t kv_heads, int64_t dim, T* out, cudaStream_t stream, void* workspace = nullptr,
                         size_t workspace_bytes = 0);

// Bytes of workspace attention_forward can use for `tokens` query rows (at most 64 key splits of
// fp32 partial rows): worth giving for decode (tokens = 1 or a few); prefill fills the GPU without
// splitting and does not use it.
size_t attention_forward_workspace_bytes(int64_t tokens, int64_t heads, int64_t dim);

// Training forward (cpu::attention_forward_train), no cache: q, out: [tokens, heads, dim]; k, v:
// [tokens, kv_heads, dim]; lse: [tokens, heads] fp32, lse[t, h] = log Σ_s exp(scale·q_t·k_s) over
// the keys query t sees, for the backward.
template <typename T>
Status attention_forward_train(const T* q, const T* k, const T* v, int64_t tokens, int64_t heads, int64_t kv_heads,
                               int64_t dim, T* out, float* lse, cudaStream_t stream);

// Training backward (cpu::attention_backward). dout, q, out, dq: [tokens, heads, dim]; k, v, dk,
// dv: [tokens, kv_heads, dim]; lse: [tokens, heads] from attention_forward_train. dq, dk, dv are
// overwritten (fp32 accumulation, rounded once to T).
//
// Unlike the CPU op this takes `out`, the forward's output: each row's D_i = Σ_j P_ij·dP_ij is
// computed as dO_i·O_i (the same number, mathematically) by a small kernel into `delta`
// ([tokens, heads] fp32 scratch, overwritten), instead of recomputing every row's probabilities
// a second time. dK/dV are summed over the query heads of each GQA group inside one block per
// (key block, key/value head), so the result is deterministic (no atomics).
template <typename T>
Status attention_backward(const T* dout, const T* q, const T* k, const T* v, const T* out, const float* lse,
                          int64_t tokens, int64_t heads, int64_t kv_heads, int64_t dim, T* dq, T* dk, T* dv,
                          float* delta, cudaStream_t stream);

}  // namespace attune::cuda
