// Attention backward kernels (ops_attention.h attention_backward), flash-attention-2 style on CUDA
// cores: the probabilities are recomputed tile by tile from the forward's lse, never stored.
// With scale = 1/√dim, for query row i and key j (j ≤ i):
//   P_ij = exp(scale·q_i·k_j − lse_i),  dP_ij = dO_i·v_j,  dS_ij = P_ij·(dP_ij − D_i),
//   dQ_i = scale·Σ_j dS_ij·k_j,  dK_j = scale·Σ_i dS_ij·q_i,  dV_j = Σ_i P_ij·dO_i,
// dK and dV also summed over the query heads of the key/value head's GQA group.
//
// Three kernels, in stream order:
//   attention_delta_kernel   D_i = dO_i·O_i (= Σ_j P_ij·dP_ij), one warp per (token, head), from the
//                            forward's output; kept in the caller's `delta` [tokens, heads].
//   attention_dq_kernel      one block per (kv head, tile of query rows); a query row is a (token,
//                            head of the group) pair as in the forward, so each K/V tile is loaded
//                            once for the group. Walks the key tiles up to its last row; lane j
//                            computes P and dP of key j for the warp's rows, then each lane
//                            accumulates the dQ columns lane, lane+32, ... (dS_j by shuffle;
//                            at D = 16 lanes 16..31 own no column, as in the forward).
//   attention_dkdv_kernel    one block per (kv head, block of KB keys), each warp owning RK keys
//                            and their dK, dV rows in registers. Loops over the group's query heads
//                            and the query tiles at or after its first key (QT rows each, one per
//                            lane), in a fixed order: deterministic, no atomics.
// Shared tiles are fp32; rows that lanes read "one row per lane" are padded to D + 1 floats, so
// that 32 lanes reading the same column of 32 rows hit 32 different banks. Every tile is
// zero-filled past the end, and masked pairs get P = 0.
//
// Tiles by head dim (fp32 shared memory per block, all within sm_75's 64 KB opt-in):
//   dq:   R = 4 rows per warp (16 per block), or 2 (8) for D = 256; 32 keys per tile.
//         D=16: 4.1 KB, D=64: 16.3 KB, D=128: 32.1 KB, D=256: 48.1 KB.
//   dkdv: RK = 4 keys per warp (16 per block), QT = 32 query rows per tile; D = 256: RK = 2 (8
//         keys), QT = 16 (lanes 16..31 then duplicate lanes 0..15: same addresses, broadcast).
//         D=16: 6.3 KB, D=64: 24.3 KB, D=128: 48.3 KB, D=256: 48.1 KB.
// Where tensor cores would go: the four tile products (Q·Kᵀ, dO·Vᵀ, dS·K / Pᵀ·dO, dSᵀ·Q) are
// mma.sync m16n8k16 (sm_80+) or wgmma (sm_90) shapes once the tiles are bf16 in shared memory.
//
// ptxas (nvcc 13.0, Release, __launch_bounds__(128, 4)), registers per thread (float; bf16 within
// ±3), 0 bytes of spills in every instantiation at sm_90, sm_80 and sm_75:
//   sm_90 attention_dq_kernel:   D=16: 96, 32: 93, 64: 92, 80: 92, 96: 94, 128: 108, 256: 78
//         attention_dkdv_kernel: D=16: 94, 32: 94, 64: 106, 80: 112, 96: 114, 128: 122, 256: 102
//         attention_delta_kernel: 48
//   sm_80 and sm_75 the same within ±4, except attention_delta_kernel at sm_75: 64.
#include <cuda_runtime.h>

#include <string>

#include "cuda/attention_common.cuh"
#include "cuda/cuda_status.h"
#include "cuda/dtype.cuh"
#include "cuda/ops_attention.h"

namespace attune::cuda {

namespace {

// The block shape (kWarps, kThreads, kKeyTile: the dq kernel's keys per tile, kMinBlocksPerSm),
// warp_sum, load_rows and the host helpers (check_shape, dispatch_head_dim, softmax_scale,
// allow_shared_memory) come from attention_common.cuh, shared with the forward.
using namespace attention_detail;

constexpr int kDeltaThreads = 256;
constexpr const char* kOp = "attention_backward";  // the name errors begin with

// grid: ceil(tokens·heads / 8); block: kDeltaThreads (8 warps, one row each).
template <typename T>
__global__ void __launch_bounds__(kDeltaThreads)
    attention_delta_kernel(const T* __restrict__ dout, const T* __restrict__ out, int64_t rows, int dim,
                           float* __restrict__ delta) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kDeltaThreads / 32) + threadIdx.x / 32;
  if (row >= rows) return;  // the whole warp: row depends on the warp only
  const int lane = static_cast<int>(threadIdx.x) % 32;
  float sum = 0.0f;
  for (int c = lane; c < dim; c += 32) sum = fmaf(to_float(dout[row * dim + c]), to_float(out[row * dim + c]), sum);
  sum = warp_sum(sum);
  if (lane == 0) delta[row] = sum;
}

template <int D>
constexpr int dq_rows_per_warp() {
  return D >= 256 ? 2 : 4;
}
template <int D>
constexpr size_t dq_shared_bytes() {
  return sizeof(float) * (2 * static_cast<size_t>(kWarps * dq_rows_per_warp<D>() * D) +
                          static_cast<size_t>(kKeyTile * (D + 1)));
}

// grid: (query-row tiles, kv_heads); block: kThreads; dynamic shared memory: dq_shared_bytes<D>().
template <typename T, int D>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
    attention_dq_kernel(const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ k,
                        const T* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ delta,
                        int tokens, int heads, int kv_heads, int group, float scale, T* __restrict__ dq) {
  constexpr int R = dq_rows_per_warp<D>();
  constexpr int BQ = kWarps * R;
  constexpr int NS = (D + 31) / 32;
  extern __shared__ __align__(16) float attention_smem[];
  float* q_s = attention_smem;  // [BQ][D]
  float* do_s = q_s + BQ * D;   // [BQ][D]
  float* kv_s = do_s + BQ * D;  // [kKeyTile][D + 1]: the V tile, then the K tile

  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int kh = static_cast<int>(blockIdx.y);
  const int rows_total = tokens * group;
  const int row0 = static_cast<int>(blockIdx.x) * BQ;

  // Q and dO rows of the block's query rows (zeros past the end).
  for (int idx = static_cast<int>(threadIdx.x); idx < BQ * D; idx += kThreads) {
    const int lr = idx / D;
    const int c = idx - lr * D;
    const int r = row0 + lr;
    float qx = 0.0f, dx = 0.0f;
    if (r < rows_total) {
      const int t = r / group;
      const int h = kh * group + (r - t * group);
      const int64_t offset = (static_cast<int64_t>(t) * heads + h) * D + c;
      qx = to_float(q[offset]);
      dx = to_float(dout[offset]);
    }
    q_s[idx] = qx;
    do_s[idx] = dx;
  }

  bool row_valid[R];
  int row_t[R];
  float row_lse[R], row_delta[R];
#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    const int r = row0 + warp * R + rr;
    row_valid[rr] = r < rows_total;
    row_t[rr] = -1;
    row_lse[rr] = 0.0f;
    row_delta[rr] = 0.0f;
    if (row_valid[rr]) {
      const int t = r / group;
      const int64_t lse_index = static_cast<int64_t>(t) * heads + kh * group + (r - t * group);
      row_t[rr] = t;
      row_lse[rr] = lse[lse_index];
      row_delta[rr] = delta[lse_index];
    }
  }

  const int last_row = min(row0 + BQ, rows_total) - 1;
  const int key_end = last_row / group + 1;  // keys 0..t of the block's last token
  const int tiles = (key_end + kKeyTile - 1) / kKeyTile;

  float acc[R][NS];
#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
#pragma unroll
    for (int sl = 0; sl < NS; ++sl) acc[rr][sl] = 0.0f;
  }

  for (int tile = 0; tile < tiles; ++tile) {
    const int k0 = tile * kKeyTile;
    __syncthreads();  // the previous K tile is no longer read (first time: q_s, do_s complete)
    load_rows<T, D, kKeyTile, D + 1>(v, k0, key_end, kv_heads, kh, kv_s);
    __syncthreads();

    // dP = dO_i · v_j for key j = k0 + lane.
    float dp[R];
#pragma unroll
    for (int rr = 0; rr < R; ++rr) dp[rr] = 0.0f;
    const float* kvrow = kv_s + lane * (D + 1);
    const float* dorows = do_s + warp * R * D;
#pragma unroll 8
    for (int d = 0; d < D; ++d) {
      const float x = kvrow[d];
#pragma unroll
      for (int rr = 0; rr < R; ++rr) dp[rr] = fmaf(dorows[rr * D + d], x, dp[rr]);
    }

    __syncthreads();  // every warp is done with the V tile
    load_rows<T, D, kKeyTile, D + 1>(k, k0, key_end, kv_heads, kh, kv_s);
    __syncthreads();

    // S = q_i · k_j, then dS = P·(dP − D).
    float s[R];
#pragma unroll
    for (int rr = 0; rr < R; ++rr) s[rr] = 0.0f;
    const float* qrows = q_s + warp * R * D;
#pragma unroll 8
    for (int d = 0; d < D; ++d) {
      const float x = kvrow[d];
#pragma unroll
      for (int rr = 0; rr < R; ++rr) s[rr] = fmaf(qrows[rr * D + d], x, s[rr]);
    }
    const int key = k0 + lane;
    float ds[R];
#pragma unroll
    for (int rr = 0; rr < R; ++rr) {
      const bool visible = row_valid[rr] && key <= row_t[rr];
      const float p = visible ? expf(s[rr] * scale - row_lse[rr]) : 0.0f;
      ds[rr] = p * (dp[rr] - row_delta[rr]);
    }

    // acc[rr][c] += Σ_j dS_j · K[j][c], dS_j from lane j.
#pragma unroll 4
    for (int j = 0; j < kKeyTile; ++j) {
      const float* krow = kv_s + j * (D + 1);
      float kv[NS];
#pragma unroll
      for (int sl = 0; sl < NS; ++sl) {
        const int c = lane + 32 * sl;
        kv[sl] = c < D ? krow[c] : 0.0f;
      }
#pragma unroll
      for (int rr = 0; rr < R; ++rr) {
        const float dsj = __shfl_sync(kFullMask, ds[rr], j);
#pragma unroll
        for (int sl = 0; sl < NS; ++sl) acc[rr][sl] = fmaf(dsj, kv[sl], acc[rr][sl]);
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    if (!row_valid[rr]) continue;
    const int r = row0 + warp * R + rr;
    const int t = r / group;
    const int64_t base = (static_cast<int64_t>(t) * heads + kh * group + (r - t * group)) * D;
#pragma unroll
    for (int sl = 0; sl < NS; ++sl) {
      const int c = lane + 32 * sl;
      if (c < D) dq[base + c] = from_float<T>(acc[rr][sl] * scale);
    }
  }
}

template <int D>
constexpr int dkdv_keys_per_warp() {
  return D >= 256 ? 2 : 4;
}
template <int D>
constexpr int dkdv_query_tile() {
  return D >= 256 ? 16 : 32;
}
template <int D>
constexpr size_t dkdv_shared_bytes() {
  return sizeof(float) * (2 * static_cast<size_t>(kWarps * dkdv_keys_per_warp<D>() * D) +
                          2 * static_cast<size_t>(dkdv_query_tile<D>() * (D + 1)));
}

// grid: (key blocks, kv_heads); block: kThreads; dynamic shared memory: dkdv_shared_bytes<D>().
template <typename T, int D>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
    attention_dkdv_kernel(const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ k,
                          const T* __restrict__ v, const float* __restrict__ lse, const float* __restrict__ delta,
                          int tokens, int heads, int kv_heads, int group, float scale, T* __restrict__ dk,
                          T* __restrict__ dv) {
  constexpr int RK = dkdv_keys_per_warp<D>();
  constexpr int KB = kWarps * RK;  // keys per block
  constexpr int QT = dkdv_query_tile<D>();
  constexpr int NS = (D + 31) / 32;
  static_assert(32 % QT == 0, "a query tile row per lane (or per pair of lanes)");
  extern __shared__ __align__(16) float attention_smem[];
  float* k_s = attention_smem;   // [KB][D]
  float* v_s = k_s + KB * D;     // [KB][D]
  float* q_s = v_s + KB * D;     // [QT][D + 1]
  float* do_s = q_s + QT * (D + 1);  // [QT][D + 1]

  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int kh = static_cast<int>(blockIdx.y);
  const int k0 = static_cast<int>(blockIdx.x) * KB;
  const int i = lane % QT;  // this lane's query row within a tile

  load_rows<T, D, KB, D>(k, k0, tokens, kv_heads, kh, k_s);
  load_rows<T, D, KB, D>(v, k0, tokens, kv_heads, kh, v_s);

  float dk_acc[RK][NS], dv_acc[RK][NS];
#pragma unroll
  for (int jj = 0; jj < RK; ++jj) {
#pragma unroll
    for (int sl = 0; sl < NS; ++sl) dk_acc[jj][sl] = dv_acc[jj][sl] = 0.0f;
  }
  const float* krows = k_s + warp * RK * D;
  const float* vrows = v_s + warp * RK * D;

  for (int g = 0; g < group; ++g) {
    const int h = kh * group + g;
    // Queries before k0 see none of this block's keys.
    for (int q0 = k0; q0 < tokens; q0 += QT) {
      __syncthreads();  // the previous tile is no longer read (first time: k_s, v_s complete)
      load_rows<T, D, QT, D + 1>(q, q0, tokens, heads, h, q_s);
      load_rows<T, D, QT, D + 1>(dout, q0, tokens, heads, h, do_s);
      __syncthreads();

      const int t = q0 + i;
      const bool query_valid = t < tokens;
      const float row_lse = query_valid ? lse[static_cast<int64_t>(t) * heads + h] : 0.0f;
      const float row_delta = query_valid ? delta[static_cast<int64_t>(t) * heads + h] : 0.0f;

      // S and dP of query t against this warp's keys.
      float s[RK], dp[RK];
#pragma unroll
      for (int jj = 0; jj < RK; ++jj) s[jj] = dp[jj] = 0.0f;
      const float* qrow = q_s + i * (D + 1);
      const float* dorow = do_s + i * (D + 1);
#pragma unroll 8
      for (int d = 0; d < D; ++d) {
        const float qd = qrow[d];
        const float dd = dorow[d];
#pragma unroll
        for (int jj = 0; jj < RK; ++jj) {
          s[jj] = fmaf(qd, krows[jj * D + d], s[jj]);
          dp[jj] = fmaf(dd, vrows[jj * D + d], dp[jj]);
        }
      }
      float p[RK], ds[RK];
#pragma unroll
      for (int jj = 0; jj < RK; ++jj) {
        const int key = k0 + warp * RK + jj;
        const bool visible = query_valid && key <= t;  // key ≤ t < tokens: a real key
        p[jj] = visible ? expf(s[jj] * scale - row_lse) : 0.0f;
        ds[jj] = p[jj] * (dp[jj] - row_delta);
      }

      // dV_j += Σ_i P_ij·dO_i, dK_j += Σ_i dS_ij·q_i over the tile's rows, P and dS from lane i.
#pragma unroll 2
      for (int ii = 0; ii < QT; ++ii) {
        const float* qi = q_s + ii * (D + 1);
        const float* doi = do_s + ii * (D + 1);
        float qv[NS], dov[NS];
#pragma unroll
        for (int sl = 0; sl < NS; ++sl) {
          const int c = lane + 32 * sl;
          qv[sl] = c < D ? qi[c] : 0.0f;
          dov[sl] = c < D ? doi[c] : 0.0f;
        }
#pragma unroll
        for (int jj = 0; jj < RK; ++jj) {
          const float pij = __shfl_sync(kFullMask, p[jj], ii);
          const float dsij = __shfl_sync(kFullMask, ds[jj], ii);
#pragma unroll
          for (int sl = 0; sl < NS; ++sl) {
            dv_acc[jj][sl] = fmaf(pij, dov[sl], dv_acc[jj][sl]);
            dk_acc[jj][sl] = fmaf(dsij, qv[sl], dk_acc[jj][sl]);
          }
        }
      }
    }
  }

#pragma unroll
  for (int jj = 0; jj < RK; ++jj) {
    const int key = k0 + warp * RK + jj;
    if (key >= tokens) continue;
    const int64_t base = (static_cast<int64_t>(key) * kv_heads + kh) * D;
#pragma unroll
    for (int sl = 0; sl < NS; ++sl) {
      const int c = lane + 32 * sl;
      if (c < D) {
        dk[base + c] = from_float<T>(dk_acc[jj][sl] * scale);
        dv[base + c] = from_float<T>(dv_acc[jj][sl]);
      }
    }
  }
}

template <typename T, int D>
Status backward_kernels(const T* dout, const T* q, const T* k, const T* v, const float* lse, const float* delta,
                        int tokens, int heads, int kv_heads, T* dq, T* dk, T* dv, cudaStream_t stream) {
  const int group = heads / kv_heads;
  const float scale = softmax_scale(D);

  const auto dq_kernel = attention_dq_kernel<T, D>;
  constexpr int dq_rows = kWarps * dq_rows_per_warp<D>();
  const int64_t dq_tiles = (static_cast<int64_t>(tokens) * group + dq_rows - 1) / dq_rows;
  ATTUNE_CUDA_TRY(allow_shared_memory(reinterpret_cast<const void*>(dq_kernel), dq_shared_bytes<D>(), kOp));
  dq_kernel<<<dim3(static_cast<unsigned>(dq_tiles), static_cast<unsigned>(kv_heads)), kThreads, dq_shared_bytes<D>(),
              stream>>>(dout, q, k, v, lse, delta, tokens, heads, kv_heads, group, scale, dq);
  ATTUNE_CUDA_TRY(check_launch("attention_dq_kernel"));

  const auto dkdv_kernel = attention_dkdv_kernel<T, D>;
  constexpr int keys_per_block = kWarps * dkdv_keys_per_warp<D>();
  const int64_t key_blocks = (static_cast<int64_t>(tokens) + keys_per_block - 1) / keys_per_block;
  ATTUNE_CUDA_TRY(allow_shared_memory(reinterpret_cast<const void*>(dkdv_kernel), dkdv_shared_bytes<D>(), kOp));
  dkdv_kernel<<<dim3(static_cast<unsigned>(key_blocks), static_cast<unsigned>(kv_heads)), kThreads,
                dkdv_shared_bytes<D>(), stream>>>(dout, q, k, v, lse, delta, tokens, heads, kv_heads, group, scale, dk,
                                                  dv);
  return check_launch("attention_dkdv_kernel");
}

}  // namespace

template <typename T>
Status attention_backward(const T* dout, const T* q, const T* k, const T* v, const T* out, const float* lse,
                          int64_t tokens, int64_t heads, int64_t kv_heads, int64_t dim, T* dq, T* dk, T* dv,
                          float* delta, cudaStream_t stream) {
  ATTUNE_CUDA_TRY(check_shape(kOp, tokens, /*past=*/0, heads, kv_heads, dim, /*has_past=*/false));
  if (tokens == 0) return Status();
  if (dout == nullptr || q == nullptr || k == nullptr || v == nullptr || out == nullptr || lse == nullptr ||
      dq == nullptr || dk == nullptr || dv == nullptr || delta == nullptr) {
    return Status::invalid_argument(std::string(kOp) + ": null pointer");
  }

  const int64_t rows = tokens * heads;
  constexpr int delta_rows_per_block = kDeltaThreads / 32;
  attention_delta_kernel<T><<<static_cast<unsigned>((rows + delta_rows_per_block - 1) / delta_rows_per_block),
                              kDeltaThreads, 0, stream>>>(dout, out, rows, static_cast<int>(dim), delta);
  ATTUNE_CUDA_TRY(check_launch("attention_delta_kernel"));

  return dispatch_head_dim(kOp, dim, [&](auto head_dim) {
    constexpr int D = decltype(head_dim)::value;
    return backward_kernels<T, D>(dout, q, k, v, lse, delta, static_cast<int>(tokens), static_cast<int>(heads),
                                  static_cast<int>(kv_heads), dq, dk, dv, stream);
  });
}

template Status attention_backward<float>(const float*, const float*, const float*, const float*, const float*,
                                          const float*, int64_t, int64_t, int64_t, int64_t, float*, float*, float*,
                                          float*, cudaStream_t);
template Status attention_backward<bf16>(const bf16*, const bf16*, const bf16*, const bf16*, const bf16*,
                                         const float*, int64_t, int64_t, int64_t, int64_t, bf16*, bf16*, bf16*, float*,
                                         cudaStream_t);

}  // namespace attune::cuda
