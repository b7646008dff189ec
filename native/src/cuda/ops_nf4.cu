// NF4 dequantization and quantization on the GPU (ops_nf4.h), operation for operation as
// quant/nf4.cpp does them on the CPU.
//
// Rounding: every fp32 product, sum, difference and reciprocal that the CPU computes is computed
// here with the round-to-nearest intrinsic of that one operation (__fmul_rn, __fadd_rn, __fsub_rn,
// __fdiv_rn): nvcc contracts a·b + c into an FMA by default, the CPU file is built with contraction
// off, and an FMA would skip a rounding the CPU does (e.g. in absmax' = fl(fl(map·absmax2) + offset)).
// The kernels are built without flush-to-zero, so subnormal absmax values behave as on the CPU
// (1/absmax may overflow to inf, 0·inf is NaN, and so on, the same on both).
#include "cuda/ops_nf4.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <string>
#include <vector>

#include "cuda/cuda_status.h"
#include "cuda/dtype.cuh"
#include "cuda/reduce.cuh"
#include "quant/dynamic_index.h"
#include "quant/nf4.h"

namespace attune::cuda {

namespace {

constexpr unsigned kThreads = 256;
constexpr long long kMaxBlocks = 1 << 16;
constexpr int kRoundNone = 0, kRoundBF16 = 1, kRoundF16 = 2;

// The double quantization's block size is bitsandbytes' fixed 256: one thread per absmax value.
static_assert(quant::kNf4NestedBlocksize == 256, "the double-quantization kernel runs 256 threads per block");
constexpr unsigned kNestedThreads = 256;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// log2(v) for a power of two v ≥ 1, else −1.
int log2_exact(int64_t v) {
  if (v < 1 || (v & (v - 1)) != 0) return -1;
  int shift = 0;
  while ((int64_t{1} << shift) < v) ++shift;
  return shift;
}

// --- Dequantization

// quant::nf4_block_absmax: the stored fp32 absmax, or the double-quantized one rebuilt with two
// separate roundings (bitsandbytes' dequantize_blockwise product, then `absmax += offset`).
// nested_shift = log2(nested_blocksize): block >> nested_shift is block / nested_blocksize.
__device__ __forceinline__ float block_absmax(const Nf4DeviceView& w, int nested_shift, int64_t block) {
  if (w.absmax != nullptr) return w.absmax[block];
  const float scaled = __fmul_rn(w.nested_code[w.absmax_q[block]], w.absmax2[block >> nested_shift]);
  return __fadd_rn(scaled, w.offset);
}

// The fp32 product rounded as Nf4Round says, widened back to fp32 (exact). Round to nearest even,
// as the CPU's round_bf16 and f32_to_f16 (the products are finite: NaN encodings never matter).
template <int kRound>
__device__ __forceinline__ float round_to_dtype(float v) {
  if constexpr (kRound == kRoundBF16) {
    return __bfloat162float(__float2bfloat16_rn(v));
  } else if constexpr (kRound == kRoundF16) {
    return __half2float(__float2half_rn(v));
  } else {
    return v;
  }
}

// dst[k] = element begin + k of the weight, k < count. One thread per element: consecutive threads
// write consecutive outputs (coalesced) and read the same few packed bytes and absmax entries
// (served by L1). Element i's code is the high nibble of packed[i/2] for even i, the low for odd.
// The block sizes are powers of two (checked by the launcher), so the divisions are shifts: a
// 64-bit division per element would cost more than the memory traffic.
template <typename T, int kRound>
__global__ void nf4_dequantize_kernel(Nf4DeviceView w, int block_shift, int nested_shift, int64_t begin, int64_t count,
                                      T* __restrict__ dst) {
  __shared__ float code[16];
  if (threadIdx.x < 16) code[threadIdx.x] = w.code[threadIdx.x];
  __syncthreads();
  for (int64_t k = first_index(); k < count; k += grid_stride()) {
    const int64_t i = begin + k;
    const unsigned byte = w.packed[i >> 1];
    const unsigned q = (i & 1) != 0 ? (byte & 15u) : (byte >> 4);
    const float a = block_absmax(w, nested_shift, i >> block_shift);
    dst[k] = from_float<T>(round_to_dtype<kRound>(__fmul_rn(code[q], a)));
  }
}

// --- Quantization

// dQuantizeNF4's 15 decision constants (quant::nf4_thresholds), and bitsandbytes' signed dynamic
// map (quant::dynamic_map_signed), passed by value in the kernel parameters: no device allocation,
// and the very floats the CPU uses.
struct Nf4Thresholds {
  float t[15];
};
struct DynamicMap {
  float v[256];
};

// quant::nf4_index: the number of decision constants strictly below s. A NaN is above none: 0.
__device__ __forceinline__ unsigned nf4_index(float s, const Nf4Thresholds& th) {
  unsigned k = 0;
#pragma unroll
  for (int j = 0; j < 15; ++j) k += s > th.t[j] ? 1u : 0u;
  return k;
}

// One warp per NF4 block of `blocksize` values (the last may be short); warps stride over the
// blocks. Per block, as quant/nf4.cpp's quantize_nf4_block:
//   absmax = max |x| (exact whatever the order: a maximum of finite values rounds nothing),
//   r = fl(1 / absmax), s = fl(x · r), code = nf4_index(s), two codes per byte (first one high);
//   an odd last element pairs with the code of the kernel's padding, fl(0 · r).
// A block holding a NaN or an infinity gets absmax NaN and no codes: the host reports it (the CPU
// refuses such weights). blocksize is even (a power of two ≥ 32), so every block starts on a byte.
// The branches on `count`, on finiteness and the loop bounds are uniform across the warp (the
// shuffles and __all_sync need all 32 lanes).
template <typename T>
__global__ void nf4_quantize_blocks_kernel(const T* __restrict__ x, int64_t n, int64_t blocksize, int64_t blocks,
                                           Nf4Thresholds th, uint8_t* __restrict__ packed,
                                           float* __restrict__ absmax) {
  const unsigned lane = threadIdx.x & 31u;
  const int64_t warps_per_block = blockDim.x >> 5;
  const int64_t first_warp = static_cast<int64_t>(blockIdx.x) * warps_per_block + (threadIdx.x >> 5);
  const int64_t warp_stride = static_cast<int64_t>(gridDim.x) * warps_per_block;
  for (int64_t b = first_warp; b < blocks; b += warp_stride) {
    const int64_t begin = b * blocksize;
    const int64_t count = n - begin < blocksize ? n - begin : blocksize;
    const T* xb = x + begin;
    // bitsandbytes starts its fmaxf at −FLT_MAX; for finite inputs that equals the plain maximum.
    float m = -FLT_MAX;
    bool finite = true;
    for (int64_t j = lane; j < count; j += 32) {
      const float v = to_float(xb[j]);
      finite = finite && isfinite(v);
      m = fmaxf(m, fabsf(v));
    }
    m = warp_max(m);
    if (!__all_sync(0xffffffffu, finite)) {
      if (lane == 0) absmax[b] = NAN;
      continue;
    }
    const float r = __fdiv_rn(1.0f, m);  // IEEE reciprocal, as the CPU (see quant/nf4.h)
    const int64_t pairs = (count + 1) / 2;
    uint8_t* pb = packed + begin / 2;
    for (int64_t p = lane; p < pairs; p += 32) {
      const int64_t j = 2 * p;
      const float s0 = __fmul_rn(to_float(xb[j]), r);
      const float s1 = j + 1 < count ? __fmul_rn(to_float(xb[j + 1]), r) : __fmul_rn(0.0f, r);
      pb[p] = static_cast<uint8_t>(nf4_index(s0, th) << 4 | nf4_index(s1, th));
    }
    if (lane == 0) absmax[b] = m;
  }
}

// Double quantization, quant::double_quantize: one block of 256 threads per 256 absmax values,
// thread k owning absmax[256·block + k]:
//   c = fl(absmax − offset), absmax2 = max |c| over the 256, q = dynamic_index(map, fl(c · fl(1/absmax2))).
__global__ void nf4_double_quantize_kernel(const float* __restrict__ absmax, int64_t blocks, float offset,
                                           DynamicMap map, uint8_t* __restrict__ absmax_q,
                                           float* __restrict__ absmax2) {
  __shared__ float smap[256];
  __shared__ float warp_maxima[kNestedThreads / 32];
  smap[threadIdx.x] = map.v[threadIdx.x];
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kNestedThreads + threadIdx.x;
  const bool active = i < blocks;
  const float c = active ? __fsub_rn(absmax[i], offset) : 0.0f;
  // As quantize_blockwise8's block_absmax, starting from −FLT_MAX (inactive threads add nothing).
  float m = warp_max(active ? fabsf(c) : -FLT_MAX);
  if ((threadIdx.x & 31u) == 0) warp_maxima[threadIdx.x >> 5] = m;
  __syncthreads();  // also publishes smap
  m = warp_maxima[0];
  for (unsigned w = 1; w < kNestedThreads / 32; ++w) m = fmaxf(m, warp_maxima[w]);
  const float r = __fdiv_rn(1.0f, m);
  if (active) absmax_q[i] = static_cast<uint8_t>(quant::dynamic_index_of(smap, __fmul_rn(c, r)));
  if (threadIdx.x == 0) absmax2[blockIdx.x] = m;
}

// A host copy of n device values of T as fp32 (exact widening), for the error message.
template <typename T>
Status download_as_float(const T* src, int64_t n, cudaStream_t stream, std::vector<float>* out) {
  std::vector<T> raw(static_cast<size_t>(n));
  ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(raw.data(), src, static_cast<size_t>(n) * sizeof(T), cudaMemcpyDeviceToHost,
                                        stream),
                        "nf4_quantize (reading a block back)"));
  ATTUNE_CUDA_TRY(check(cudaStreamSynchronize(stream), "nf4_quantize"));
  out->resize(raw.size());
  for (size_t k = 0; k < raw.size(); ++k) (*out)[k] = to_float(raw[k]);
  return Status();
}

}  // namespace

template <typename T>
Status nf4_dequantize_rows(const Nf4DeviceView& w, int64_t r0, int64_t r1, quant::Nf4Round round, T* dst,
                           cudaStream_t stream) {
  if (w.rows < 0 || w.cols < 0) return Status::invalid_argument("nf4_dequantize_rows: negative weight shape");
  if (r0 < 0 || r0 > r1 || r1 > w.rows) {
    return Status::invalid_argument("nf4_dequantize_rows: rows [" + std::to_string(r0) + ", " + std::to_string(r1) +
                                    ") are not within the weight's " + std::to_string(w.rows) + " rows");
  }
  const int64_t count = (r1 - r0) * w.cols;
  if (count == 0) return Status();
  // bitsandbytes' block sizes are powers of two (Nf4Weight checks a checkpoint's); the kernel
  // relies on it.
  const int block_shift = log2_exact(w.blocksize);
  const int nested_shift = w.absmax == nullptr ? log2_exact(w.nested_blocksize) : 0;
  if (block_shift < 0 || nested_shift < 0) {
    return Status::invalid_argument("nf4_dequantize_rows: the block sizes must be powers of two (got " +
                                    std::to_string(w.blocksize) + " and nested " + std::to_string(w.nested_blocksize) +
                                    ")");
  }
  if (!dst || !w.packed || !w.code ||
      (w.absmax == nullptr && (!w.absmax_q || !w.absmax2 || !w.nested_code))) {
    return Status::invalid_argument("nf4_dequantize_rows: null device pointer");
  }
  const int64_t begin = r0 * w.cols;
  const unsigned blocks = static_cast<unsigned>(std::min<long long>(blocks_for(count, kThreads), kMaxBlocks));
  switch (round) {
    case quant::Nf4Round::kNone:
      nf4_dequantize_kernel<T, kRoundNone>
          <<<blocks, kThreads, 0, stream>>>(w, block_shift, nested_shift, begin, count, dst);
      break;
    case quant::Nf4Round::kBF16:
      nf4_dequantize_kernel<T, kRoundBF16>
          <<<blocks, kThreads, 0, stream>>>(w, block_shift, nested_shift, begin, count, dst);
      break;
    case quant::Nf4Round::kF16:
      nf4_dequantize_kernel<T, kRoundF16>
          <<<blocks, kThreads, 0, stream>>>(w, block_shift, nested_shift, begin, count, dst);
      break;
    default:
      return Status::invalid_argument("nf4_dequantize_rows: unknown rounding");
  }
  return check_launch("nf4_dequantize_rows");
}

template <typename T>
Status nf4_quantize(const T* x, int64_t n, const quant::Nf4Options& options, const Nf4DeviceQuantized& out,
                    float* offset, cudaStream_t stream) {
  // The CPU's checks and messages (quant/nf4.cpp, quantize_impl).
  if (!quant::nf4_blocksize_supported(options.blocksize)) {
    return Status::invalid_argument("NF4 block size " + std::to_string(options.blocksize) +
                                    " is not supported; bitsandbytes uses a power of two from 32 to 4096 "
                                    "(64 is the default)");
  }
  if (n < 1) return Status::invalid_argument("The weight has no elements to quantize");
  if (!x || !out.packed || !out.absmax || !offset || (options.double_quant && (!out.absmax_q || !out.absmax2))) {
    return Status::invalid_argument("nf4_quantize: null pointer");
  }
  const int64_t blocksize = options.blocksize;
  const int64_t blocks = ceil_div(n, blocksize);

  Nf4Thresholds th{};
  std::copy(quant::nf4_thresholds().begin(), quant::nf4_thresholds().end(), th.t);
  constexpr unsigned kWarpsPerBlock = kThreads / 32;
  const unsigned grid = static_cast<unsigned>(std::min<long long>(ceil_div(blocks, kWarpsPerBlock), kMaxBlocks));
  nf4_quantize_blocks_kernel<T><<<grid, kThreads, 0, stream>>>(x, n, blocksize, blocks, th, out.packed, out.absmax);
  ATTUNE_CUDA_TRY(check_launch("nf4_quantize"));

  // The absmax vector comes back to the host: for the finiteness check, and for the offset, which
  // the CPU's own function computes from these very floats (so the offset is identical, for either
  // OffsetMean, without reproducing a summation order on the GPU). blocks = n / blocksize floats:
  // a 64th of an fp32 weight's size at the default block size.
  std::vector<float> host_absmax(static_cast<size_t>(blocks));
  ATTUNE_CUDA_TRY(check(cudaMemcpyAsync(host_absmax.data(), out.absmax, static_cast<size_t>(blocks) * sizeof(float),
                                        cudaMemcpyDeviceToHost, stream),
                        "nf4_quantize (reading absmax back)"));
  ATTUNE_CUDA_TRY(check(cudaStreamSynchronize(stream), "nf4_quantize"));
  for (int64_t b = 0; b < blocks; ++b) {
    if (!std::isnan(host_absmax[static_cast<size_t>(b)])) continue;
    // The first block with a non-finite value holds the first one: find it in that block.
    const int64_t begin = b * blocksize;
    const int64_t count = std::min(blocksize, n - begin);
    std::vector<float> values;
    ATTUNE_CUDA_TRY(download_as_float(x + begin, count, stream, &values));
    int64_t bad = begin;
    for (int64_t k = 0; k < count; ++k) {
      if (!std::isfinite(values[static_cast<size_t>(k)])) {
        bad = begin + k;
        break;
      }
    }
    return Status::invalid_argument("The weight holds a value that is not finite (NaN or infinity) at flat index " +
                                    std::to_string(bad) + "; a broken weight cannot be quantized");
  }
  if (!options.double_quant) {
    *offset = 0.0f;
    return Status();
  }
  const float mean = options.offset_mean == quant::OffsetMean::kExact
                         ? quant::mean_exact(host_absmax.data(), blocks)
                         : quant::mean_torch_cpu(host_absmax.data(), blocks);
  DynamicMap map{};
  std::copy(quant::dynamic_map_signed().begin(), quant::dynamic_map_signed().end(), map.v);
  const int64_t nested_blocks = ceil_div(blocks, quant::kNf4NestedBlocksize);
  if (nested_blocks > 0x7fffffffLL) return Status::invalid_argument("nf4_quantize: the weight is too large");
  nf4_double_quantize_kernel<<<static_cast<unsigned>(nested_blocks), kNestedThreads, 0, stream>>>(
      out.absmax, blocks, mean, map, out.absmax_q, out.absmax2);
  *offset = mean;
  return check_launch("nf4_quantize (double quantization)");
}

template Status nf4_dequantize_rows<float>(const Nf4DeviceView&, int64_t, int64_t, quant::Nf4Round, float*,
                                           cudaStream_t);
template Status nf4_dequantize_rows<bf16>(const Nf4DeviceView&, int64_t, int64_t, quant::Nf4Round, bf16*,
                                          cudaStream_t);
template Status nf4_quantize<float>(const float*, int64_t, const quant::Nf4Options&, const Nf4DeviceQuantized&,
                                    float*, cudaStream_t);
template Status nf4_quantize<bf16>(const bf16*, int64_t, const quant::Nf4Options&, const Nf4DeviceQuantized&, float*,
                                   cudaStream_t);

}  // namespace attune::cuda
