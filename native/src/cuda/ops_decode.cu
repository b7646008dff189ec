// Decode's matrix-vector products (ops_decode.h). Batch-1 decode multiplies every weight by one row
// of activations, so a weight byte is used T times after it is loaded and the kernels are bound by
// the bandwidth of streaming W. The layout that serves that:
//   - one warp per output row, 8 rows per block: a row of W is one contiguous run of memory and the
//     warp reads it with 16-byte loads per lane (512 bytes per warp instruction), several loads in
//     flight before their products are used;
//   - x (T rows) is staged in shared memory a chunk of columns at a time, so the 8 warps of a block
//     read it from there instead of global memory; a chunk is at most 32 KiB (kXStageFloats), so
//     long rows (in = 11008, 14336) do not cap occupancy;
//   - fp32 accumulation per lane, then a butterfly over the warp (the same order on every run).
//
// Registers (ptxas -v, sm_90, -O3, CUDA 13.0), no spills (none at sm_75 either):
//   gemv_kernel<bf16, kT = 1/2/4/8> 36/44/40/61, <float, ...> 40/44/46/58;
//   nf4_gemv_kernel<kT = 1/2/4/8> 40/34–40/40/57–61 (by rounding); lora_down 31, lora_up 32,
//   dora_scale 20. At ≤ 64 registers a 256-thread block never limits occupancy by registers.
// Not yet run on a GPU when written: the first run is tests/test_cuda_decode.cpp.
#include "cuda/ops_decode.h"

#include <cuda_fp16.h>

#include <string>
#include <type_traits>

#include "cuda/cuda_status.h"
#include "cuda/dtype.cuh"
#include "cuda/reduce.cuh"

namespace attune::cuda {

namespace {

constexpr int kWarpSize = 32;
constexpr int kRowsPerBlock = 8;  // one warp per output row
constexpr int kGemvThreads = kRowsPerBlock * kWarpSize;
// x staged per chunk of columns: T · chunk ≤ this many floats (32 KiB).
constexpr int64_t kXStageFloats = 8192;
// The chunk width is a multiple of this: a whole number of 16-byte W vectors (4 fp32, 8 bf16) and
// of 16-byte NF4 vectors (32 codes), and float4-aligned rows of x in shared memory.
constexpr int64_t kChunkAlign = 32;
// 16-byte loads issued before their products are used: enough bytes in flight per warp to cover
// the memory latency with the 8–16 warps an SM holds per block of rows.
constexpr int kUnroll = 4;

// Columns of x staged per chunk: as many as fit kXStageFloats for T rows, no more than the row.
int64_t stage_columns(int64_t T, int64_t in) {
  const int64_t fit = (kXStageFloats / T) / kChunkAlign * kChunkAlign;
  const int64_t row = (in + kChunkAlign - 1) / kChunkAlign * kChunkAlign;
  return fit < row ? fit : row;
}

// Copies x[t, c0 .. c0+cn) for t < T to xs[t·chunk + j]. All threads of the block take part.
__device__ __forceinline__ void stage_x(const float* __restrict__ x, float* xs, int T, int64_t in, int64_t chunk,
                                        int64_t c0, int64_t cn) {
  for (int t = 0; t < T; ++t) {
    for (int64_t j = threadIdx.x; j < cn; j += blockDim.x) xs[t * chunk + j] = x[t * in + c0 + j];
  }
}

// acc[t] += Σ_i v[i] · xs[t·chunk + col + i] for 4 consecutive columns (col a multiple of 4).
template <int kT>
__device__ __forceinline__ void fma4(float (&acc)[kT], int T, const float* xs, int64_t chunk, int64_t col, float v0,
                                     float v1, float v2, float v3) {
#pragma unroll
  for (int t = 0; t < kT; ++t) {
    if (t < T) {
      const float4 xv = *reinterpret_cast<const float4*>(xs + t * chunk + col);
      acc[t] = fmaf(v0, xv.x, acc[t]);
      acc[t] = fmaf(v1, xv.y, acc[t]);
      acc[t] = fmaf(v2, xv.z, acc[t]);
      acc[t] = fmaf(v3, xv.w, acc[t]);
    }
  }
}

// The fp32 values of one 16-byte vector of W, in memory order.
template <typename W>
struct WeightVector;

template <>
struct WeightVector<float> {
  static constexpr int kElems = 4;
  template <int kT>
  __device__ __forceinline__ static void dot(float (&acc)[kT], int T, const float* xs, int64_t chunk, int64_t col,
                                             uint4 raw) {
    fma4<kT>(acc, T, xs, chunk, col, __uint_as_float(raw.x), __uint_as_float(raw.y), __uint_as_float(raw.z),
             __uint_as_float(raw.w));
  }
};

template <>
struct WeightVector<bf16> {
  static constexpr int kElems = 8;
  // A bf16 is the high half of its fp32: widening is a shift, exact. Little-endian: the element at
  // the lower address is the low half of each 32-bit word.
  __device__ __forceinline__ static float lo(uint32_t word) { return __uint_as_float(word << 16); }
  __device__ __forceinline__ static float hi(uint32_t word) { return __uint_as_float(word & 0xffff0000u); }
  template <int kT>
  __device__ __forceinline__ static void dot(float (&acc)[kT], int T, const float* xs, int64_t chunk, int64_t col,
                                             uint4 raw) {
    fma4<kT>(acc, T, xs, chunk, col, lo(raw.x), hi(raw.x), lo(raw.y), hi(raw.y));
    fma4<kT>(acc, T, xs, chunk, col + 4, lo(raw.z), hi(raw.z), lo(raw.w), hi(raw.w));
  }
};

// Writes y[t, row] = acc[t] (+ bias[row]) (+ y[t, row] when accumulate) from lane 0, after summing
// each acc over the warp.
template <int kT>
__device__ __forceinline__ void store_rows(float (&acc)[kT], int T, const float* __restrict__ bias, float* y,
                                           int64_t out, int64_t row, bool accumulate) {
#pragma unroll
  for (int t = 0; t < kT; ++t) acc[t] = warp_sum(acc[t]);
  if ((threadIdx.x % kWarpSize) != 0) return;
  const float b = bias != nullptr ? bias[row] : 0.0f;
#pragma unroll
  for (int t = 0; t < kT; ++t) {
    if (t < T) {
      float r = acc[t] + b;
      if (accumulate) r += y[t * out + row];
      y[t * out + row] = r;
    }
  }
}

// y[T,out] = x·Wᵀ (+ bias) (+ y). Grid: ceil(out / 8) blocks of 8 warps, warp w of block b on row
// 8b + w. kT ≥ T is the number of accumulators (1, 2, 4 or 8); vec: 16-byte loads of W (in a
// multiple of the vector width and W aligned), else one element per lane per step.
template <typename W, int kT>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(const float* __restrict__ x, const W* __restrict__ w,
                                                            const float* __restrict__ bias, float* y, int T,
                                                            int64_t in, int64_t out, int64_t chunk, bool vec,
                                                            bool accumulate) {
  extern __shared__ float4 gemv_smem[];
  float* xs = reinterpret_cast<float*>(gemv_smem);  // [T][chunk]
  constexpr int kElems = WeightVector<W>::kElems;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  const bool active = row < out;  // the last block's spare warps still help stage x
  float acc[kT];
#pragma unroll
  for (int t = 0; t < kT; ++t) acc[t] = 0.0f;

  for (int64_t c0 = 0; c0 < in; c0 += chunk) {
    const int64_t cn = in - c0 < chunk ? in - c0 : chunk;
    __syncthreads();  // every warp is done with the previous chunk of x
    stage_x(x, xs, T, in, chunk, c0, cn);
    __syncthreads();
    if (!active) continue;
    const W* wr = w + row * in + c0;
    if (vec) {
      // cn is a multiple of kElems here (in and chunk are), and wr is 16-byte aligned.
      const uint4* wv = reinterpret_cast<const uint4*>(wr);
      const int64_t nvec = cn / kElems;
      int64_t v = lane;
      for (; v + (kUnroll - 1) * kWarpSize < nvec; v += kUnroll * kWarpSize) {
        uint4 raw[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) raw[u] = __ldg(wv + v + u * kWarpSize);
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) WeightVector<W>::dot(acc, T, xs, chunk, (v + u * kWarpSize) * kElems, raw[u]);
      }
      for (; v < nvec; v += kWarpSize) WeightVector<W>::dot(acc, T, xs, chunk, v * kElems, __ldg(wv + v));
    } else {
      for (int64_t j = lane; j < cn; j += kWarpSize) {
        const float wj = to_float(wr[j]);
#pragma unroll
        for (int t = 0; t < kT; ++t) {
          if (t < T) acc[t] = fmaf(wj, xs[t * chunk + j], acc[t]);
        }
      }
    }
  }
  if (active) store_rows(acc, T, bias, y, out, row, accumulate);
}

// --- NF4.

// The dequantized value's rounding (Nf4GemvRound), as quant::nf4_dequantize_range does it: round
// to nearest even in the target dtype, widen back (exact).
template <Nf4GemvRound kRound>
__device__ __forceinline__ float nf4_round(float v) {
  if constexpr (kRound == Nf4GemvRound::kBF16) {
    return __bfloat162float(__float2bfloat16_rn(v));
  } else if constexpr (kRound == Nf4GemvRound::kF16) {
    return __half2float(__float2half_rn(v));
  } else {
    return v;
  }
}

// The device-side fields of Nf4GemvWeight the kernel needs per block (passed by value).
struct Nf4Args {
  const uint8_t* packed;
  const float* code;
  const float* absmax;
  const uint8_t* absmax_q;
  const float* absmax2;
  const float* nested_code;
  float offset;
  int blocksize_log2;
  int64_t nested_blocksize;
};

// absmax'[block] (quant::nf4_block_absmax): the plain fp32 absmax, or the double-quantized one
// with its two roundings, __fmul_rn/__fadd_rn so that nvcc cannot fuse them into one FMA (the CPU
// file is compiled with contraction off for the same reason). map: nested_code staged in shared.
__device__ __forceinline__ float nf4_absmax(const Nf4Args& w, const float* map, int64_t block) {
  if (w.absmax != nullptr) return w.absmax[block];
  const float scaled = __fmul_rn(map[w.absmax_q[block]], w.absmax2[block / w.nested_blocksize]);
  return __fadd_rn(scaled, w.offset);
}

// y[T,out] = x·Wᵀ (+ bias) (+ y) for an NF4 W, dequantized in registers: the same grid and x
// staging as gemv_kernel. vec: each lane takes 16 bytes of packed codes = 32 consecutive elements,
// which lie in one quantization block (blocks are ≥ 32 elements and aligned to their size, and the
// 32 start at a multiple of 32 since in is one), so one absmax per 32 products.
template <int kT, Nf4GemvRound kRound>
__global__ void __launch_bounds__(kGemvThreads) nf4_gemv_kernel(const float* __restrict__ x, Nf4Args w,
                                                                const float* __restrict__ bias, float* y, int T,
                                                                int64_t in, int64_t out, int64_t chunk, bool vec,
                                                                bool accumulate) {
  extern __shared__ float4 nf4_smem[];
  float* xs = reinterpret_cast<float*>(nf4_smem);  // [T][chunk]
  // The 16 NF4 values and the 256-entry nested map: indexed by data, so shared memory (registers
  // cannot be indexed at run time); 16 distinct words in 16 banks, so no bank conflicts.
  __shared__ float code[16];
  __shared__ float map[256];
  if (threadIdx.x < 16) code[threadIdx.x] = w.code[threadIdx.x];
  if (w.absmax == nullptr) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) map[i] = w.nested_code[i];
  }
  // (The first __syncthreads of the chunk loop publishes both tables.)

  const int lane = threadIdx.x % kWarpSize;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  const bool active = row < out;
  float acc[kT];
#pragma unroll
  for (int t = 0; t < kT; ++t) acc[t] = 0.0f;

  for (int64_t c0 = 0; c0 < in; c0 += chunk) {
    const int64_t cn = in - c0 < chunk ? in - c0 : chunk;
    __syncthreads();
    stage_x(x, xs, T, in, chunk, c0, cn);
    __syncthreads();
    if (!active) continue;
    const int64_t e_row = row * in + c0;  // flattened index of column c0 of this row
    if (vec) {
      // e_row is a multiple of 32, so the 16-byte vector index is e_row / 32.
      const uint4* pv = reinterpret_cast<const uint4*>(w.packed) + e_row / 32;
      const int64_t nvec = cn / 32;
      for (int64_t v = lane; v < nvec; v += kWarpSize) {
        const uint4 raw = __ldg(pv + v);
        const float a = nf4_absmax(w, map, (e_row + v * 32) >> w.blocksize_log2);
        const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
        const int64_t col = v * 32;
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          // Word k holds elements 8k .. 8k+7: byte b (bits 8b..8b+7, the lower address first) holds
          // element 8k+2b in its HIGH nibble and 8k+2b+1 in its low one.
          float f[8];
#pragma unroll
          for (int b = 0; b < 4; ++b) {
            const uint32_t byte = (words[k] >> (8 * b)) & 0xffu;
            f[2 * b] = nf4_round<kRound>(__fmul_rn(code[byte >> 4], a));
            f[2 * b + 1] = nf4_round<kRound>(__fmul_rn(code[byte & 15u], a));
          }
          fma4<kT>(acc, T, xs, chunk, col + 8 * k, f[0], f[1], f[2], f[3]);
          fma4<kT>(acc, T, xs, chunk, col + 8 * k + 4, f[4], f[5], f[6], f[7]);
        }
      }
    } else {
      // Any layout: element by element, its byte, nibble and block from its flattened index.
      for (int64_t j = lane; j < cn; j += kWarpSize) {
        const int64_t e = e_row + j;
        const uint32_t byte = w.packed[e >> 1];
        const uint32_t q = (e & 1) != 0 ? (byte & 15u) : (byte >> 4);
        const float a = nf4_absmax(w, map, e >> w.blocksize_log2);
        const float wj = nf4_round<kRound>(__fmul_rn(code[q], a));
#pragma unroll
        for (int t = 0; t < kT; ++t) {
          if (t < T) acc[t] = fmaf(wj, xs[t * chunk + j], acc[t]);
        }
      }
    }
  }
  if (active) store_rows(acc, T, bias, y, out, row, accumulate);
}

// --- LoRA / DoRA.

constexpr int kLoraThreads = 256;

// u[t, k] = Σ_i A[k, i] · x[t, i]: one block per (k, t), a block-wide sum (fixed order). A is
// small (r · in floats), so spreading each row over a whole block keeps enough loads in flight.
__global__ void __launch_bounds__(kLoraThreads) lora_down_kernel(const float* __restrict__ x,
                                                                 const float* __restrict__ a, float* u, int64_t in,
                                                                 int64_t rank) {
  __shared__ float partial[kLoraThreads / kWarpSize];
  const int64_t k = blockIdx.x;
  const int64_t t = blockIdx.y;
  const float* ar = a + k * in;
  const float* xr = x + t * in;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < in; i += kLoraThreads) s = fmaf(ar[i], xr[i], s);
  s = warp_sum(s);
  if (threadIdx.x % kWarpSize == 0) partial[threadIdx.x / kWarpSize] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int i = 0; i < kLoraThreads / kWarpSize; ++i) total += partial[i];
    u[t * rank + k] = total;
  }
}

// y[t, o] += scaling · Σ_k B[o, k] · u[t, k]: one thread per output, row t = blockIdx.y, u[t] in
// shared memory.
__global__ void __launch_bounds__(kLoraThreads) lora_up_kernel(const float* __restrict__ u,
                                                               const float* __restrict__ b, float scaling, float* y,
                                                               int64_t out, int64_t rank) {
  extern __shared__ float lora_u[];  // [rank]
  const int64_t t = blockIdx.y;
  for (int64_t k = threadIdx.x; k < rank; k += kLoraThreads) lora_u[k] = u[t * rank + k];
  __syncthreads();
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kLoraThreads + threadIdx.x;
  if (o >= out) return;
  const float* br = b + o * rank;
  float s = 0.0f;
  for (int64_t k = 0; k < rank; ++k) s = fmaf(br[k], lora_u[k], s);
  y[t * out + o] += scaling * s;
}

// y[t, o] = (m[o] / n[o]) · y[t, o] + bias[o]: one thread per element.
__global__ void dora_scale_kernel(const float* __restrict__ magnitude, const float* __restrict__ norm,
                                  const float* __restrict__ bias, float* y, int64_t T, int64_t out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= T * out) return;
  const int64_t o = i % out;
  const float g = __fdiv_rn(magnitude[o], norm[o]);  // IEEE division, as the CPU's m / n
  y[i] = fmaf(g, y[i], bias != nullptr ? bias[o] : 0.0f);
}

// --- Argument checks.

Status check_rows(const char* op, int64_t T, int64_t in, int64_t out) {
  if (T < 1 || T > kDecodeMaxRows) {
    return Status::invalid_argument(std::string(op) + ": T = " + std::to_string(T) + " rows; 1.." +
                                    std::to_string(kDecodeMaxRows) + " are supported (use cuBLASLt for more)");
  }
  if (in < 1 || out < 1) {
    return Status::invalid_argument(std::string(op) + ": in = " + std::to_string(in) + ", out = " + std::to_string(out) +
                                    "; both must be at least 1");
  }
  // Grid: ceil(out / 8) blocks in x (< 2^31).
  if (out > (int64_t{1} << 33)) return Status::invalid_argument(std::string(op) + ": out is too large");
  return Status();
}

template <typename Launch>
Status launch_by_rows(int64_t T, const Launch& launch) {
  // Accumulators for the next power of two ≥ T: 4 instantiations cover 1..8 rows.
  if (T == 1) return launch(std::integral_constant<int, 1>());
  if (T == 2) return launch(std::integral_constant<int, 2>());
  if (T <= 4) return launch(std::integral_constant<int, 4>());
  return launch(std::integral_constant<int, 8>());
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

template <typename W>
Status gemv(const float* x, const W* w, const float* bias, float* y, int64_t T, int64_t in, int64_t out,
            bool accumulate, cudaStream_t stream) {
  ATTUNE_CUDA_TRY(check_rows("gemv", T, in, out));
  if (x == nullptr || w == nullptr || y == nullptr) return Status::invalid_argument("gemv: null x, w or y");
  const int64_t chunk = stage_columns(T, in);
  const bool vec = in % WeightVector<W>::kElems == 0 && aligned16(w);
  const size_t smem = static_cast<size_t>(T * chunk) * sizeof(float);
  const unsigned blocks = static_cast<unsigned>((out + kRowsPerBlock - 1) / kRowsPerBlock);
  return launch_by_rows(T, [&](auto rows) {
    gemv_kernel<W, decltype(rows)::value><<<blocks, kGemvThreads, smem, stream>>>(
        x, w, bias, y, static_cast<int>(T), in, out, chunk, vec, accumulate);
    return check_launch("gemv");
  });
}

template Status gemv<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t, bool,
                            cudaStream_t);
template Status gemv<bf16>(const float*, const bf16*, const float*, float*, int64_t, int64_t, int64_t, bool,
                           cudaStream_t);

Status nf4_gemv(const float* x, const Nf4GemvWeight& w, const float* bias, float* y, int64_t T, bool accumulate,
                cudaStream_t stream) {
  ATTUNE_CUDA_TRY(check_rows("nf4_gemv", T, w.in, w.out));
  if (x == nullptr || y == nullptr || w.packed == nullptr || w.code == nullptr) {
    return Status::invalid_argument("nf4_gemv: null x, y, packed codes or code table");
  }
  if (w.absmax == nullptr && (w.absmax_q == nullptr || w.absmax2 == nullptr || w.nested_code == nullptr)) {
    return Status::invalid_argument("nf4_gemv: neither a plain absmax nor all three nested absmax tensors");
  }
  if (w.blocksize < 32 || w.blocksize > 4096 || (w.blocksize & (w.blocksize - 1)) != 0) {
    return Status::invalid_argument("nf4_gemv: blocksize " + std::to_string(w.blocksize) +
                                    " is not a power of two from 32 to 4096");
  }
  if (w.absmax == nullptr && w.nested_blocksize < 1) {
    return Status::invalid_argument("nf4_gemv: nested_blocksize must be at least 1");
  }
  Nf4Args args{w.packed, w.code, w.absmax, w.absmax_q, w.absmax2, w.nested_code, w.offset, 0, w.nested_blocksize};
  while ((int64_t{1} << args.blocksize_log2) < w.blocksize) ++args.blocksize_log2;
  const int64_t chunk = stage_columns(T, w.in);
  const bool vec = w.in % 32 == 0 && aligned16(w.packed);
  const size_t smem = static_cast<size_t>(T * chunk) * sizeof(float);
  const unsigned blocks = static_cast<unsigned>((w.out + kRowsPerBlock - 1) / kRowsPerBlock);
  const int rows = static_cast<int>(T);
  return launch_by_rows(T, [&](auto kt) {
    constexpr int kT = decltype(kt)::value;
    switch (w.round) {
      case Nf4GemvRound::kNone:
        nf4_gemv_kernel<kT, Nf4GemvRound::kNone>
            <<<blocks, kGemvThreads, smem, stream>>>(x, args, bias, y, rows, w.in, w.out, chunk, vec, accumulate);
        break;
      case Nf4GemvRound::kBF16:
        nf4_gemv_kernel<kT, Nf4GemvRound::kBF16>
            <<<blocks, kGemvThreads, smem, stream>>>(x, args, bias, y, rows, w.in, w.out, chunk, vec, accumulate);
        break;
      case Nf4GemvRound::kF16:
        nf4_gemv_kernel<kT, Nf4GemvRound::kF16>
            <<<blocks, kGemvThreads, smem, stream>>>(x, args, bias, y, rows, w.in, w.out, chunk, vec, accumulate);
        break;
      default:
        return Status::invalid_argument("nf4_gemv: unknown rounding");
    }
    return check_launch("nf4_gemv");
  });
}

Status lora_gemv_add(const float* x, const float* a, const float* b, float scaling, float* u, float* y, int64_t T,
                     int64_t in, int64_t out, int64_t rank, cudaStream_t stream) {
  ATTUNE_CUDA_TRY(check_rows("lora_gemv_add", T, in, out));
  if (rank < 1 || rank > 1024) {
    return Status::invalid_argument("lora_gemv_add: rank " + std::to_string(rank) + "; 1..1024 are supported");
  }
  if (x == nullptr || a == nullptr || b == nullptr || u == nullptr || y == nullptr) {
    return Status::invalid_argument("lora_gemv_add: null pointer argument");
  }
  lora_down_kernel<<<dim3(static_cast<unsigned>(rank), static_cast<unsigned>(T)), kLoraThreads, 0, stream>>>(x, a, u, in,
                                                                                                          rank);
  ATTUNE_CUDA_TRY(check_launch("lora_gemv_add (x·Aᵀ)"));
  const unsigned blocks = static_cast<unsigned>((out + kLoraThreads - 1) / kLoraThreads);
  lora_up_kernel<<<dim3(blocks, static_cast<unsigned>(T)), kLoraThreads, static_cast<size_t>(rank) * sizeof(float),
                   stream>>>(u, b, scaling, y, out, rank);
  return check_launch("lora_gemv_add (u·Bᵀ)");
}

Status dora_scale(const float* magnitude, const float* norm, const float* bias, float* y, int64_t T, int64_t out,
                  cudaStream_t stream) {
  if (T < 1 || out < 1) return Status::invalid_argument("dora_scale: T and out must be at least 1");
  if (magnitude == nullptr || norm == nullptr || y == nullptr) {
    return Status::invalid_argument("dora_scale: null magnitude, norm or y");
  }
  constexpr unsigned kThreads = 256;
  dora_scale_kernel<<<blocks_for(T * out, kThreads), kThreads, 0, stream>>>(magnitude, norm, bias, y, T, out);
  return check_launch("dora_scale");
}

// Faster paths, not taken yet (correctness first):
//   - nf4_gemv spends ~6 instructions per element (nibble, table read, multiply, round, FMA) against
//     half a byte of memory, which puts an H100 near its issue limit rather than its bandwidth
//     limit; a per-block table of the 256 byte values → two rounded products would halve that.
//   - for T > 1 every x value is read from shared memory once per row of W: a warp covering two or
//     four rows would reuse each x load.
//   - lora_gemv_add could fold x·Aᵀ into the base gemv's pass over x (a few more rows of W).

}  // namespace attune::cuda
