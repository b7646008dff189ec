// The small kernels of GPU generation (cuda/cuda_generator.h) that make a decode step replayable
// as a CUDA graph: everything that changes from one token to the next — the token id, its
// position, the cache length, where the sampled id goes — is read from (and advanced in) a small
// int32 state array in device memory instead of being passed as a kernel argument, so one captured
// step serves every token.
//
//   kv_append         writes one position's key and value rows (fp32) into the KV cache (T) at the
//                     position held in device memory.
//   cache_attention   query tokens against the cache rows up to each one's position, the first
//                     position read from device memory: the semantics of attention_forward
//                     (ops_attention.h) with past = that position, any head dim up to 256,
//                     computed flash-decoding style (the keys split in a fixed number of parts,
//                     merged by a second kernel in a fixed order).
//   decode_advance    after sample_token (ops_sampling.h) picked state[kToken]: appends it to the
//                     context ids (for the repetition penalty) and to the host's token list (mapped
//                     pinned memory), counts it, and moves the position on.
//
// All pointers are device pointers (host_tokens: a device pointer to mapped pinned host memory).
// Each launcher validates its arguments, enqueues on `stream` and returns the launch status; none
// allocates, synchronizes or sets function attributes, so all can be captured in a graph.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "attune/status.h"

namespace attune::cuda {

// The fields of the decode state (int32 each) and the array's length.
enum DecodeStateField : int {
  kStateToken = 0,          // the last sampled id: the next decode step's input
  kStatePosition = 1,       // the position the next decode step's token takes = the cache length
  kStateSampleStep = 2,     // which pre-drawn uniform the next non-greedy sample uses
  kStateContextLength = 3,  // ids in the context buffer (prompt + sampled so far)
  kStateGenerated = 4,      // ids sampled so far in this generation (= the next host_tokens slot)
  kStateFields = 8          // the array's length (padded)
};

// k_cache[p·row + i] = k[i], v_cache[p·row + i] = v[i] for i < row (rounded to T), with
// p = position[0]. row = kv_heads · head_dim. Nothing is written when p is outside [0, capacity):
// the caller keeps the position in range (the generator sizes the cache for the whole answer);
// this only guarantees a bad state cannot write outside the cache.
template <typename T>
Status kv_append(const float* k, const float* v, const int32_t* position, int64_t row, int64_t capacity, T* k_cache,
                 T* v_cache, cudaStream_t stream);

// The most head_dim cache_attention takes (each lane of a warp keeps dim / 32 values).
constexpr int64_t kCacheAttentionMaxDim = 256;
// The most key splits.
constexpr int64_t kCacheAttentionMaxSplits = 64;

// Floats of `partial` workspace cache_attention needs.
int64_t cache_attention_workspace_floats(int64_t tokens, int64_t heads, int64_t dim, int64_t splits);

// Causal attention of `tokens` query tokens against the KV cache, the first query's position read
// from device memory: with p = position[0], query t (at position p + t) sees the cache rows
// [0, n_t), n_t = min(p + t + 1, capacity):
//   out[t, h, :] = softmax(scale · q[t, h, :]·Kᵀ) · V  over those rows,
// q and out [tokens, heads, dim] in Q (float or bf16; out is rounded once), k_cache and v_cache
// [capacity, kv_heads, dim] in T (float or bf16, Q = float or Q = T); query head h reads kv head
// h / (heads / kv_heads); scale = 1/√dim as the CPU's attention computes it (given by the caller).
// The semantics of attention_forward (ops_attention.h) with past = p, for any head dim up to 256:
// decode uses it (tokens = 1) because the position comes from device memory; the prefill uses it
// for the head dims attention_forward does not take (attention_head_dim_supported).
// Each query's keys are split in `splits` equal parts of ceil(n_t / splits) keys (parts past n_t
// are empty); each part's unnormalized output and (max, sum) go to `partial`, and a second kernel
// merges the parts in index order and divides once: the result depends on n_t and splits only,
// never on timing. 1 ≤ dim ≤ kCacheAttentionMaxDim, heads a multiple of kv_heads,
// 1 ≤ splits ≤ kCacheAttentionMaxSplits, 1 ≤ tokens ≤ 65535. Arithmetic in fp32.
template <typename Q, typename T>
Status cache_attention(const Q* q, const T* k_cache, const T* v_cache, const int32_t* position, int64_t tokens,
                       int64_t capacity, int64_t heads, int64_t kv_heads, int64_t dim, float scale, int64_t splits,
                       float* partial, Q* out, cudaStream_t stream);

// One thread: with t = state[kStateToken],
//   context[state[kStateContextLength]++] = t   (skipped, though still counted, past context_capacity)
//   host_tokens[state[kStateGenerated]++] = t    (skipped past host_capacity; host_tokens may be null)
//   state[kStatePosition] += position_delta      (1 after a decode step, 0 after the prefill's sample)
Status decode_advance(int32_t* state, int32_t* context, int64_t context_capacity, int32_t* host_tokens,
                      int64_t host_capacity, int32_t position_delta, cudaStream_t stream);

}  // namespace attune::cuda
