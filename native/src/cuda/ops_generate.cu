// The decode-step kernels of GPU generation (ops_generate.h): the KV cache write, attention of query
// tokens against the cache, and the state update after sampling, all reading the position from
// device memory so that a captured CUDA graph of a decode step can be replayed for every token.
//
// cache_attention, the one kernel here that matters for speed (it reads the whole cache of a
// layer per token), is flash-decoding on CUDA cores:
//   - grid (heads, splits, tokens): block (h, s, t) handles head h of query t against keys
//     [s·per, min(n, (s+1)·per)), n = the keys query t sees, per = ceil(n / splits); n is computed
//     from a position in device memory, so the same launch serves every cache length (splits past
//     n find no keys and write an empty part);
//   - 4 warps per block, keys dealt round-robin to the warps; a warp takes one key at a time: each
//     lane multiplies dim/32 elements of q (kept in registers) with the key row (coalesced loads),
//     a butterfly sums the dot product over the warp (all lanes get the same score), and the lane
//     updates an online softmax (running max m, sum l, output columns lane, lane+32, ...) exactly as
//     every lane of the warp does, so no lane ever waits on another;
//   - the 4 warps' (m, l, acc) merge through shared memory into the block's part, written
//     unnormalized with its (m, l) to `partial`; cache_attention_combine_kernel merges the parts
//     in index order and divides once.
// All arithmetic is fp32 with expf (not __expf): in fp32 mode the result must match the CPU's
// attention to rounding so that greedy tokens come out identical. Registers stay small (q: 8,
// acc: 8 floats per lane at dim 256).
// Faster paths left for later: one block per kv head serving all heads of its GQA group (each key
// row read once instead of group times, from L2 today), 16-byte K/V loads, and tensor-core tiles;
// at batch 1 the weights dominate a step's bytes until the context reaches thousands of tokens.
#include "cuda/ops_generate.h"

#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "cuda/cuda_status.h"
#include "cuda/dtype.cuh"
#include "cuda/reduce.cuh"

namespace attune::cuda {

namespace {

constexpr int kAttnWarps = 4;
constexpr int kAttnThreads = kAttnWarps * 32;
constexpr int kMaxPerLane = static_cast<int>(kCacheAttentionMaxDim / 32);
constexpr int kCombineThreads = 128;
constexpr unsigned kAppendThreads = 256;

template <typename T>
__global__ void kv_append_kernel(const float* __restrict__ k, const float* __restrict__ v,
                                 const int32_t* __restrict__ position, int64_t row, int64_t capacity,
                                 T* __restrict__ k_cache, T* __restrict__ v_cache) {
  const int64_t p = position[0];
  if (p < 0 || p >= capacity) return;  // never outside the cache (see ops_generate.h)
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < row;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    k_cache[p * row + i] = from_float<T>(k[i]);
    v_cache[p * row + i] = from_float<T>(v[i]);
  }
}

// One part of one (token, head): see the file comment. With r = t·heads + h,
// partial[(r·splits + s)·(dim + 2) + {0, 1, 2 + d}] = (m, l, acc[d]), acc unnormalized
// (Σ exp(score − m)·v); an empty part writes (−inf, 0, 0, …).
template <typename Q, typename T>
__global__ void __launch_bounds__(kAttnThreads)
    cache_attention_split_kernel(const Q* __restrict__ q, const T* __restrict__ k_cache, const T* __restrict__ v_cache,
                                 const int32_t* __restrict__ position, int64_t capacity, int heads, int kv_heads, int dim,
                                 float scale, int splits, float* __restrict__ partial) {
  __shared__ float s_acc[kAttnWarps][kCacheAttentionMaxDim];
  __shared__ float s_m[kAttnWarps];
  __shared__ float s_l[kAttnWarps];
  const int h = static_cast<int>(blockIdx.x);
  const int split = static_cast<int>(blockIdx.y);
  const int64_t t = blockIdx.z;
  const int64_t row = t * heads + h;  // the (token, head) pair
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;

  // The keys this query sees: positions 0 .. p + t (itself included).
  int64_t n = static_cast<int64_t>(position[0]) + t + 1;
  if (n > capacity) n = capacity;
  const int64_t per = n > 0 ? (n + splits - 1) / splits : 0;
  const int64_t begin = static_cast<int64_t>(split) * per;
  const int64_t end = begin + per < n ? begin + per : n;
  const int kv_head = h / (heads / kv_heads);
  const int64_t key_stride = static_cast<int64_t>(kv_heads) * dim;
  const T* k_head = k_cache + static_cast<int64_t>(kv_head) * dim;
  const T* v_head = v_cache + static_cast<int64_t>(kv_head) * dim;

  float qr[kMaxPerLane];
  float acc[kMaxPerLane];
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int d = lane + 32 * i;
    qr[i] = d < dim ? to_float(q[row * dim + d]) : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  // The loop bound is the same for all lanes of a warp, so the shuffles see the full warp.
  for (int64_t key = begin + warp; key < end; key += kAttnWarps) {
    const T* kr = k_head + key * key_stride;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < dim) dot = fmaf(qr[i], to_float(kr[d]), dot);
    }
    const float score = warp_sum(dot) * scale;
    const float m_new = fmaxf(m, score);
    const float correction = expf(m - m_new);  // exp(−inf) = 0 on the first key
    const float p = expf(score - m_new);
    l = l * correction + p;
    const T* vr = v_head + key * key_stride;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < dim) acc[i] = fmaf(p, to_float(vr[d]), acc[i] * correction);
    }
    m = m_new;
  }

  // Merge the warps (a warp with no keys has m = −inf and contributes nothing).
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int d = lane + 32 * i;
    if (d < dim) s_acc[warp][d] = acc[i];
  }
  __syncthreads();
  float block_m = -INFINITY;
#pragma unroll
  for (int w = 0; w < kAttnWarps; ++w) block_m = fmaxf(block_m, s_m[w]);
  float weight[kAttnWarps];
#pragma unroll
  for (int w = 0; w < kAttnWarps; ++w) weight[w] = s_m[w] == -INFINITY ? 0.0f : expf(s_m[w] - block_m);
  float* part = partial + (row * splits + split) * (dim + 2);
  for (int d = static_cast<int>(threadIdx.x); d < dim; d += kAttnThreads) {
    float a = 0.0f;
#pragma unroll
    for (int w = 0; w < kAttnWarps; ++w) a = fmaf(s_acc[w][d], weight[w], a);
    part[2 + d] = a;
  }
  if (threadIdx.x == 0) {
    float block_l = 0.0f;
#pragma unroll
    for (int w = 0; w < kAttnWarps; ++w) block_l = fmaf(s_l[w], weight[w], block_l);
    part[0] = block_m;
    part[1] = block_l;
  }
}

// out[r, d] = Σ_s acc_s[d]·e^{m_s − M} / Σ_s l_s·e^{m_s − M}, M = max_s m_s, parts in index order;
// one block per (token, head) row r.
template <typename Q>
__global__ void __launch_bounds__(kCombineThreads)
    cache_attention_combine_kernel(const float* __restrict__ partial, int dim, int splits, Q* __restrict__ out) {
  const int64_t row = blockIdx.x;
  const float* parts = partial + row * splits * (dim + 2);
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, parts[static_cast<int64_t>(s) * (dim + 2)]);
  float L = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float* part = parts + static_cast<int64_t>(s) * (dim + 2);
    if (part[0] != -INFINITY) L = fmaf(part[1], expf(part[0] - M), L);
  }
  for (int d = static_cast<int>(threadIdx.x); d < dim; d += kCombineThreads) {
    float a = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float* part = parts + static_cast<int64_t>(s) * (dim + 2);
      if (part[0] != -INFINITY) a = fmaf(part[2 + d], expf(part[0] - M), a);
    }
    // L > 0 whenever a key was read (n ≥ 1); 0 is written rather than NaN otherwise.
    out[row * dim + d] = from_float<Q>(L > 0.0f ? a / L : 0.0f);
  }
}

__global__ void decode_advance_kernel(int32_t* state, int32_t* context, int64_t context_capacity, int32_t* host_tokens,
                                      int64_t host_capacity, int32_t position_delta) {
  const int32_t token = state[kStateToken];
  const int32_t length = state[kStateContextLength];
  if (length >= 0 && length < context_capacity) context[length] = token;
  state[kStateContextLength] = length + 1;
  const int32_t generated = state[kStateGenerated];
  if (host_tokens != nullptr && generated >= 0 && generated < host_capacity) {
    // A store to mapped pinned memory: visible to the host once it has waited for this kernel.
    host_tokens[generated] = token;
  }
  state[kStateGenerated] = generated + 1;
  state[kStatePosition] += position_delta;
}

}  // namespace

template <typename T>
Status kv_append(const float* k, const float* v, const int32_t* position, int64_t row, int64_t capacity, T* k_cache,
                 T* v_cache, cudaStream_t stream) {
  if (row < 1 || capacity < 1) return Status::invalid_argument("kv_append: row and capacity must be at least 1");
  if (k == nullptr || v == nullptr || position == nullptr || k_cache == nullptr || v_cache == nullptr) {
    return Status::invalid_argument("kv_append: null pointer argument");
  }
  const unsigned blocks = blocks_for(row, kAppendThreads);
  kv_append_kernel<T><<<blocks, kAppendThreads, 0, stream>>>(k, v, position, row, capacity, k_cache, v_cache);
  return check_launch("kv_append");
}

int64_t cache_attention_workspace_floats(int64_t tokens, int64_t heads, int64_t dim, int64_t splits) {
  return tokens * heads * splits * (dim + 2);
}

template <typename Q, typename T>
Status cache_attention(const Q* q, const T* k_cache, const T* v_cache, const int32_t* position, int64_t tokens,
                       int64_t capacity, int64_t heads, int64_t kv_heads, int64_t dim, float scale, int64_t splits,
                       float* partial, Q* out, cudaStream_t stream) {
  if (dim < 1 || dim > kCacheAttentionMaxDim) {
    return Status::invalid_argument("cache_attention: head dim " + std::to_string(dim) + "; 1.." +
                                    std::to_string(kCacheAttentionMaxDim) + " are supported");
  }
  if (heads < 1 || kv_heads < 1 || heads % kv_heads != 0 || heads > 65535) {
    return Status::invalid_argument("cache_attention: " + std::to_string(heads) + " heads over " +
                                    std::to_string(kv_heads) +
                                    " kv heads (heads must be a positive multiple of kv heads, at most 65535)");
  }
  if (splits < 1 || splits > kCacheAttentionMaxSplits) {
    return Status::invalid_argument("cache_attention: splits = " + std::to_string(splits) + "; 1.." +
                                    std::to_string(kCacheAttentionMaxSplits) + " are supported");
  }
  if (tokens < 1 || tokens > 65535) {
    return Status::invalid_argument("cache_attention: tokens = " + std::to_string(tokens) + "; 1..65535 are supported");
  }
  if (capacity < 1) return Status::invalid_argument("cache_attention: the cache holds no positions");
  if (q == nullptr || k_cache == nullptr || v_cache == nullptr || position == nullptr || partial == nullptr ||
      out == nullptr) {
    return Status::invalid_argument("cache_attention: null pointer argument");
  }
  const dim3 grid(static_cast<unsigned>(heads), static_cast<unsigned>(splits), static_cast<unsigned>(tokens));
  cache_attention_split_kernel<Q, T><<<grid, kAttnThreads, 0, stream>>>(
      q, k_cache, v_cache, position, capacity, static_cast<int>(heads), static_cast<int>(kv_heads),
      static_cast<int>(dim), scale, static_cast<int>(splits), partial);
  ATTUNE_CUDA_TRY(check_launch("cache_attention (parts)"));
  cache_attention_combine_kernel<Q><<<static_cast<unsigned>(tokens * heads), kCombineThreads, 0, stream>>>(
      partial, static_cast<int>(dim), static_cast<int>(splits), out);
  return check_launch("cache_attention (combine)");
}

Status decode_advance(int32_t* state, int32_t* context, int64_t context_capacity, int32_t* host_tokens,
                      int64_t host_capacity, int32_t position_delta, cudaStream_t stream) {
  if (state == nullptr || context == nullptr) return Status::invalid_argument("decode_advance: null state or context");
  if (context_capacity < 0 || host_capacity < 0) return Status::invalid_argument("decode_advance: negative capacity");
  decode_advance_kernel<<<1, 1, 0, stream>>>(state, context, context_capacity, host_tokens, host_capacity, position_delta);
  return check_launch("decode_advance");
}

template Status kv_append<float>(const float*, const float*, const int32_t*, int64_t, int64_t, float*, float*,
                                 cudaStream_t);
template Status kv_append<bf16>(const float*, const float*, const int32_t*, int64_t, int64_t, bf16*, bf16*,
                                cudaStream_t);
template Status cache_attention<float, float>(const float*, const float*, const float*, const int32_t*, int64_t,
                                             int64_t, int64_t, int64_t, int64_t, float, int64_t, float*, float*,
                                             cudaStream_t);
template Status cache_attention<float, bf16>(const float*, const bf16*, const bf16*, const int32_t*, int64_t, int64_t,
                                            int64_t, int64_t, int64_t, float, int64_t, float*, float*, cudaStream_t);
template Status cache_attention<bf16, bf16>(const bf16*, const bf16*, const bf16*, const int32_t*, int64_t, int64_t,
                                           int64_t, int64_t, int64_t, float, int64_t, float*, bf16*, cudaStream_t);

}  // namespace attune::cuda
