// Attention forward kernels (ops_attention.h): flash-attention style, on CUDA cores.
//
// One block of 4 warps handles a tile of "query rows" of one key/value head. A query row is a
// (token t, head h of the kv head's GQA group) pair, numbered r = t·group + (h mod group): the
// heads of a group read the same keys, so putting them in one block loads each K/V tile once for
// all of them. Each warp owns R rows. The block walks the keys in tiles of 32 (one key per lane):
//   1. the K tile goes to shared memory (fp32, rows padded to D+1 floats so that 32 lanes reading
//      32 different rows at the same column hit 32 different banks);
//   2. lane j computes the scores of key j against the warp's R rows (the Q rows are in shared
//      memory and read as broadcasts);
//   3. online softmax per row: the running max m and sum l are rescaled by exp(m_old − m_new),
//      so no score row is ever stored;
//   4. the V tile replaces the K tile in the same buffer (one buffer keeps head dim 256 inside the
//      64 KB a block may have on sm_75), and each lane accumulates the output columns
//      lane, lane+32, ... of its rows ((D + 31) / 32 of them, each access checked against D: at
//      D = 16 lanes 16..31 own none and only serve their keys' probabilities), taking each key's
//      probability from lane j by shuffle.
// Rows past the end and keys past the causal limit are masked (probability 0), never read out of
// bounds: tiles are zero-filled beyond the last key the block needs.
//
// Decode (at most 16 query rows per kv head) uses R = 1, and, given a workspace, splits each row's
// keys across blocks (flash-decoding) when the grid would leave SMs idle: block z handles key
// tiles [z·n, (z+1)·n) and writes its unnormalized partial output with its (max, sum);
// attention_combine_kernel merges the splits in a fixed order.
//
// Where tensor cores would go: steps 2 and 4 are the products S = Q·Kᵀ and O += P·V over a tile;
// with bf16 tiles they map onto mma.sync m16n8k16 (sm_80+, with ldmatrix from shared memory) or
// wgmma (sm_90), and the K/V loads onto cp.async / TMA double buffering. The online softmax and
// the tiling stay as they are. Loads here are scalar (coalesced); 16-byte vector loads are the
// other easy win.
//
// Shared memory per block (fp32 tiles): R=4: D=16: 3.1 KB, D=64: 12.1 KB, D=128: 24.1 KB,
// D=256: 48.1 KB (opts in beyond 48 KB); R=1: D=16: 2.4 KB, D=128: 18.1 KB, D=256: 36.1 KB.
// ptxas (nvcc 13.0, Release, __launch_bounds__(128, 4)), registers per thread (float; bf16 within
// ±4), 0 bytes of spills in every instantiation at sm_90, sm_80 and sm_75:
//   sm_90 attention_forward_kernel R=4: D=16: 88, 32: 87, 64: 89, 80: 91, 96: 92, 128: 108, 256: 110
//         attention_forward_kernel R=1: D=16: 64, 32: 64, 64: 64, 80: 60, 96: 60, 128: 62, 256: 79
//         attention_combine_kernel: 32
//   sm_80 and sm_75 the same within ±8 (R=4, D=256: 108; combine at sm_75: 37).
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "cuda/attention_common.cuh"
#include "cuda/cuda_status.h"
#include "cuda/dtype.cuh"
#include "cuda/ops_attention.h"

namespace attune::cuda {

namespace {

// The block shape (kWarps, kThreads, kKeyTile, kMinBlocksPerSm), warp_max/warp_sum, load_rows and
// the host helpers (check_shape, dispatch_head_dim, softmax_scale, allow_shared_memory) come from
// attention_common.cuh, shared with the backward.
using namespace attention_detail;

constexpr int64_t kDecodeRows = 16;       // at most this many query rows per kv head: R = 1
constexpr int kMaxSplits = 64;            // key splits of flash-decoding, at most
constexpr int kMinTilesPerSplit = 4;      // each split reads at least 128 keys
constexpr int kCombineThreads = 128;


template <int D, int R>
constexpr size_t forward_shared_bytes() {
  return sizeof(float) * (static_cast<size_t>(kWarps * R * D) + static_cast<size_t>(kKeyTile * (D + 1)));
}

// grid: (query-row tiles, kv_heads, splits); block: kThreads; dynamic shared memory:
// forward_shared_bytes<D, R>(). Without `partial`: writes out (normalized) and, when lse is not
// null, lse. With `partial` (splits > 1): writes the unnormalized output rows to
// partial[split][t·heads + h][D] and (max, sum) to partial_ml[split][t·heads + h][2].
template <typename T, int D, int R>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
    attention_forward_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, int tokens,
                             int past, int heads, int kv_heads, int group, float scale, int64_t tiles_per_split,
                             T* __restrict__ out, float* __restrict__ lse, float* __restrict__ partial,
                             float* __restrict__ partial_ml) {
  constexpr int BQ = kWarps * R;         // query rows per block
  constexpr int NS = (D + 31) / 32;      // output columns per lane: lane, lane + 32, ...
  extern __shared__ __align__(16) float attention_smem[];
  float* q_s = attention_smem;           // [BQ][D]
  float* kv_s = q_s + BQ * D;            // [kKeyTile][D + 1]: the K tile, then the V tile

  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int kh = static_cast<int>(blockIdx.y);
  const int split = static_cast<int>(blockIdx.z);
  const int rows_total = tokens * group;
  const int row0 = static_cast<int>(blockIdx.x) * BQ;

  // The Q rows of this block (zeros for rows past the end).
  for (int idx = static_cast<int>(threadIdx.x); idx < BQ * D; idx += kThreads) {
    const int lr = idx / D;
    const int c = idx - lr * D;
    const int r = row0 + lr;
    float x = 0.0f;
    if (r < rows_total) {
      const int t = r / group;
      const int h = kh * group + (r - t * group);
      x = to_float(q[(static_cast<int64_t>(t) * heads + h) * D + c]);
    }
    q_s[idx] = x;
  }

  // This warp's rows: whether each exists and its position (the last key it sees).
  bool row_valid[R];
  int row_pos[R];
#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    const int r = row0 + warp * R + rr;
    row_valid[rr] = r < rows_total;
    row_pos[rr] = row_valid[rr] ? past + r / group : -1;
  }

  // Keys the block needs: up to the position of its last row; then this split's share of tiles.
  const int last_row = min(row0 + BQ, rows_total) - 1;
  const int key_end = past + last_row / group + 1;
  const int64_t tiles = (key_end + kKeyTile - 1) / kKeyTile;
  const int64_t tile_begin = split * tiles_per_split;
  const int64_t tile_end = min(tiles, tile_begin + tiles_per_split);

  float m[R], l[R], acc[R][NS];  // l: this lane's share of the sum (its keys); summed at the end
#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.0f;
#pragma unroll
    for (int sl = 0; sl < NS; ++sl) acc[rr][sl] = 0.0f;
  }

  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    const int k0 = static_cast<int>(tile) * kKeyTile;
    __syncthreads();  // the previous V tile is no longer read (and, first time, q_s is complete)
    load_rows<T, D, kKeyTile, D + 1>(k, k0, key_end, kv_heads, kh, kv_s);
    __syncthreads();

    // Scores of key k0 + lane against this warp's rows.
    float s[R];
#pragma unroll
    for (int rr = 0; rr < R; ++rr) s[rr] = 0.0f;
    const float* krow = kv_s + lane * (D + 1);
    const float* qrows = q_s + warp * R * D;
#pragma unroll 8
    for (int d = 0; d < D; ++d) {
      const float kd = krow[d];
#pragma unroll
      for (int rr = 0; rr < R; ++rr) s[rr] = fmaf(qrows[rr * D + d], kd, s[rr]);
    }

    // Online softmax (m and m_new are the same in every lane of the warp).
    const int key = k0 + lane;
    float p[R];
#pragma unroll
    for (int rr = 0; rr < R; ++rr) {
      const bool visible = row_valid[rr] && key <= row_pos[rr];
      const float score = visible ? s[rr] * scale : -INFINITY;
      const float m_new = fmaxf(m[rr], warp_max(score));
      // alpha = 0 on the row's first tile with a visible key (m = −inf); while no key is visible
      // yet (m_new = −inf, e.g. a split that starts past this row's position), everything stays
      // as it is: alpha = 1, p = 0 (exp(−inf − −inf) would be NaN).
      const float alpha = m_new == -INFINITY ? 1.0f : expf(m[rr] - m_new);
      p[rr] = visible ? expf(score - m_new) : 0.0f;
      l[rr] = fmaf(l[rr], alpha, p[rr]);
#pragma unroll
      for (int sl = 0; sl < NS; ++sl) acc[rr][sl] *= alpha;
      m[rr] = m_new;
    }

    __syncthreads();  // every warp is done with the K tile
    load_rows<T, D, kKeyTile, D + 1>(v, k0, key_end, kv_heads, kh, kv_s);
    __syncthreads();

    // acc[rr][c] += Σ_j p_j · V[j][c], p_j from lane j.
#pragma unroll 4
    for (int j = 0; j < kKeyTile; ++j) {
      const float* vrow = kv_s + j * (D + 1);
      float vv[NS];
#pragma unroll
      for (int sl = 0; sl < NS; ++sl) {
        const int c = lane + 32 * sl;
        vv[sl] = c < D ? vrow[c] : 0.0f;
      }
#pragma unroll
      for (int rr = 0; rr < R; ++rr) {
        const float pj = __shfl_sync(kFullMask, p[rr], j);
#pragma unroll
        for (int sl = 0; sl < NS; ++sl) acc[rr][sl] = fmaf(pj, vv[sl], acc[rr][sl]);
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    const float sum = warp_sum(l[rr]);
    if (!row_valid[rr]) continue;  // warp-uniform
    const int r = row0 + warp * R + rr;
    const int t = r / group;
    const int h = kh * group + (r - t * group);
    const int64_t out_row = static_cast<int64_t>(t) * heads + h;
    if (partial == nullptr) {
      // Every row sees key 0, so sum ≥ 1 here (the max term contributes exp(0)).
      const float inv = 1.0f / sum;
#pragma unroll
      for (int sl = 0; sl < NS; ++sl) {
        const int c = lane + 32 * sl;
        if (c < D) out[out_row * D + c] = from_float<T>(acc[rr][sl] * inv);
      }
      if (lse != nullptr && lane == 0) lse[out_row] = m[rr] + logf(sum);
    } else {
      // A split may hold no key this row sees: then m = −inf, sum = 0, acc = 0, which the combine
      // gives weight 0.
      const int64_t slot = static_cast<int64_t>(split) * tokens * heads + out_row;
#pragma unroll
      for (int sl = 0; sl < NS; ++sl) {
        const int c = lane + 32 * sl;
        if (c < D) partial[slot * D + c] = acc[rr][sl];
      }
      if (lane == 0) {
        partial_ml[slot * 2] = m[rr];
        partial_ml[slot * 2 + 1] = sum;
      }
    }
  }
}

// grid: tokens·heads (one output row each); block: kCombineThreads. Merges the splits of
// attention_forward_kernel in split order: M = max m_s, L = Σ l_s·exp(m_s − M),
// out = Σ acc_s·exp(m_s − M) / L, lse = M + log L. Split 0 holds key 0, so M is finite.
template <typename T>
__global__ void __launch_bounds__(kCombineThreads)
    attention_combine_kernel(const float* __restrict__ partial, const float* __restrict__ partial_ml, int splits,
                             int64_t rows, int dim, T* __restrict__ out, float* __restrict__ lse) {
  const int64_t row = blockIdx.x;
  float max_m = -INFINITY;
  for (int s = 0; s < splits; ++s) max_m = fmaxf(max_m, partial_ml[(s * rows + row) * 2]);
  float sum = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float m = partial_ml[(s * rows + row) * 2];
    if (m != -INFINITY) sum = fmaf(partial_ml[(s * rows + row) * 2 + 1], expf(m - max_m), sum);
  }
  const float inv = 1.0f / sum;
  for (int c = static_cast<int>(threadIdx.x); c < dim; c += kCombineThreads) {
    float o = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float m = partial_ml[(s * rows + row) * 2];
      if (m != -INFINITY) o = fmaf(partial[(s * rows + row) * dim + c], expf(m - max_m), o);
    }
    out[row * dim + c] = from_float<T>(o * inv);
  }
  if (lse != nullptr && threadIdx.x == 0) lse[row] = max_m + logf(sum);
}

// How many key splits a grid of `blocks` blocks gets (1 = none): enough to give the GPU about two
// blocks per SM, each split at least kMinTilesPerSplit tiles, within the workspace.
Status choose_splits(int64_t blocks, int64_t key_tiles, int64_t tokens, int64_t heads, int64_t dim,
                     size_t workspace_bytes, int* splits) {
  *splits = 1;
  if (workspace_bytes == 0) return Status();
  int device = 0, sms = 0;
  ATTUNE_CUDA_TRY(check(cudaGetDevice(&device), "attention_forward"));
  ATTUNE_CUDA_TRY(check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "attention_forward"));
  if (blocks >= sms) return Status();
  const size_t per_split = static_cast<size_t>(tokens) * heads * (dim + 2) * sizeof(float);
  int64_t n = (2 * static_cast<int64_t>(sms) + blocks - 1) / blocks;
  n = std::min<int64_t>(n, key_tiles / kMinTilesPerSplit);
  n = std::min<int64_t>(n, kMaxSplits);
  n = std::min<int64_t>(n, static_cast<int64_t>(workspace_bytes / per_split));
  *splits = static_cast<int>(std::max<int64_t>(n, 1));
  return Status();
}

template <typename T, int D, int R>
Status forward_with_rows(const T* q, const T* k, const T* v, int tokens, int past, int heads, int kv_heads, T* out,
                         float* lse, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  constexpr int BQ = kWarps * R;
  const int group = heads / kv_heads;
  const int64_t rows_total = static_cast<int64_t>(tokens) * group;
  const int64_t row_tiles = (rows_total + BQ - 1) / BQ;
  const size_t shared = forward_shared_bytes<D, R>();
  const auto kernel = attention_forward_kernel<T, D, R>;
  ATTUNE_CUDA_TRY(allow_shared_memory(reinterpret_cast<const void*>(kernel), shared, "attention_forward"));

  const int64_t key_tiles = (static_cast<int64_t>(past) + tokens + kKeyTile - 1) / kKeyTile;
  int splits = 1;
  ATTUNE_CUDA_TRY(choose_splits(row_tiles * kv_heads, key_tiles, tokens, heads, D, workspace_bytes, &splits));
  int64_t tiles_per_split = key_tiles;
  if (splits > 1) {
    tiles_per_split = (key_tiles + splits - 1) / splits;
    splits = static_cast<int>((key_tiles + tiles_per_split - 1) / tiles_per_split);  // no empty last split
  }
  const float scale = softmax_scale(D);
  const dim3 grid(static_cast<unsigned>(row_tiles), static_cast<unsigned>(kv_heads), static_cast<unsigned>(splits));
  if (splits == 1) {
    kernel<<<grid, kThreads, shared, stream>>>(q, k, v, tokens, past, heads, kv_heads, group, scale, tiles_per_split,
                                               out, lse, nullptr, nullptr);
    return check_launch("attention_forward_kernel");
  }
  const int64_t rows = static_cast<int64_t>(tokens) * heads;
  float* partial = static_cast<float*>(workspace);
  float* partial_ml = partial + static_cast<int64_t>(splits) * rows * D;
  kernel<<<grid, kThreads, shared, stream>>>(q, k, v, tokens, past, heads, kv_heads, group, scale, tiles_per_split,
                                             out, lse, partial, partial_ml);
  ATTUNE_CUDA_TRY(check_launch("attention_forward_kernel"));
  attention_combine_kernel<T><<<static_cast<unsigned>(rows), kCombineThreads, 0, stream>>>(partial, partial_ml, splits,
                                                                                           rows, D, out, lse);
  return check_launch("attention_combine_kernel");
}

template <typename T>
Status forward(const char* op, const T* q, const T* k, const T* v, int64_t tokens, int64_t past, int64_t heads,
               int64_t kv_heads, int64_t dim, T* out, float* lse, void* workspace, size_t workspace_bytes,
               cudaStream_t stream) {
  ATTUNE_CUDA_TRY(check_shape(op, tokens, past, heads, kv_heads, dim, /*has_past=*/true));
  if (tokens == 0) return Status();
  if (q == nullptr || k == nullptr || v == nullptr || out == nullptr) {
    return Status::invalid_argument(std::string(op) + ": null pointer");
  }
  if (workspace == nullptr) workspace_bytes = 0;
  if (workspace_bytes != 0 && reinterpret_cast<uintptr_t>(workspace) % alignof(float) != 0) {
    return Status::invalid_argument(std::string(op) + ": workspace is not aligned for fp32");
  }
  const bool decode = tokens * (heads / kv_heads) <= kDecodeRows;
  return dispatch_head_dim(op, dim, [&](auto head_dim) {
    constexpr int D = decltype(head_dim)::value;
    const int t = static_cast<int>(tokens), p = static_cast<int>(past), h = static_cast<int>(heads),
              kvh = static_cast<int>(kv_heads);
    return decode ? forward_with_rows<T, D, 1>(q, k, v, t, p, h, kvh, out, lse, workspace, workspace_bytes, stream)
                  : forward_with_rows<T, D, 4>(q, k, v, t, p, h, kvh, out, lse, workspace, workspace_bytes, stream);
  });
}

}  // namespace

bool attention_head_dim_supported(int64_t dim) { return head_dim_supported(dim); }

size_t attention_forward_workspace_bytes(int64_t tokens, int64_t heads, int64_t dim) {
  if (tokens <= 0 || heads <= 0 || dim <= 0) return 0;
  return static_cast<size_t>(kMaxSplits) * static_cast<size_t>(tokens) * static_cast<size_t>(heads) *
         static_cast<size_t>(dim + 2) * sizeof(float);
}

template <typename T>
Status attention_forward(const T* q, const T* k, const T* v, int64_t tokens, int64_t past, int64_t heads,
                         int64_t kv_heads, int64_t dim, T* out, cudaStream_t stream, void* workspace,
                         size_t workspace_bytes) {
  return forward<T>("attention_forward", q, k, v, tokens, past, heads, kv_heads, dim, out, nullptr, workspace,
                    workspace_bytes, stream);
}

template <typename T>
Status attention_forward_train(const T* q, const T* k, const T* v, int64_t tokens, int64_t heads, int64_t kv_heads,
                               int64_t dim, T* out, float* lse, cudaStream_t stream) {
  if (lse == nullptr && tokens > 0) return Status::invalid_argument("attention_forward_train: null lse");
  return forward<T>("attention_forward_train", q, k, v, tokens, 0, heads, kv_heads, dim, out, lse, nullptr, 0, stream);
}

template Status attention_forward<float>(const float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t,
                                         int64_t, float*, cudaStream_t, void*, size_t);
template Status attention_forward<bf16>(const bf16*, const bf16*, const bf16*, int64_t, int64_t, int64_t, int64_t,
                                        int64_t, bf16*, cudaStream_t, void*, size_t);
template Status attention_forward_train<float>(const float*, const float*, const float*, int64_t, int64_t, int64_t,
                                               int64_t, float*, float*, cudaStream_t);
template Status attention_forward_train<bf16>(const bf16*, const bf16*, const bf16*, int64_t, int64_t, int64_t, int64_t,
                                              bf16*, float*, cudaStream_t);

}  // namespace attune::cuda
