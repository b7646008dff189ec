// NF4 4-bit quantization with double quantization, bit for bit as bitsandbytes' CUDA kernels
// compute it (reference.md "NF4 and double quantization"; bitsandbytes `functional.py`
// quantize_4bit / dequantize_4bit, `csrc/kernels.cu` kQuantizeBlockwise / kDequantizeBlockwise),
// and as test/golden/nf4_reference.py reimplements it. All arithmetic is IEEE fp32, never fused
// (this file is compiled with -ffp-contract=off).
//
// Quantize (n = numel of the row-major flattened weight, blocks of `blocksize`, the last one may
// be short):
//   absmax[b] = max |x| over the block (fp32), r = fl(1 / absmax[b]), s = fl(x * r): bitsandbytes
//     multiplies by the reciprocal, it never divides (the two differ by an ulp now and then, which
//     can move a value across a code boundary);
//   code = bitsandbytes' dQuantizeNF4 decision tree on s (code i+1 when s > t_i): the nearest of
//     the 16 NF4 values; a value exactly on a decision constant t_i takes the LOWER index; NaN
//     (0 · inf in an all-zero block) gives 0. The t_i are the kernel's float literals (decimal
//     midpoints of neighbouring codes) as nvcc rounds them, directly from the decimal: 11 equal
//     the fp32 midpoint fl((c_i + c_(i+1)) · 0.5), and 4 (i = 0, 8, 12, 14), whose exact midpoint is
//     an fp32 tie, are that midpoint's neighbour (the decimal lies a hair past the tie);
//   packed[j] = code[2j] << 4 | code[2j+1] (first element in the HIGH nibble), uint8 [ceil(n/2)];
//     for odd n the last low nibble is the code of the kernel's padding value 0.0 (0 · r: code 7,
//     or 0 when that block's absmax is 0).
// Double quantization of the fp32 absmax vector (blocks of 256):
//   offset = mean(absmax) as fp32 (see OffsetMean for how it is summed), c = fl(absmax − offset),
//   absmax2[k] = max |c| per 256-block, q = dQuantize<0>(dynamic map, fl(c · fl(1/absmax2[k]))):
//   nearest of the 256 values of create_dynamic_map(signed=True); the kernel's binary search ends
//   on an even index p and an exact midpoint goes to p, i.e. to the EVEN index; NaN gives 0.
// Dequantize:
//   absmax'[b] = fl(fl(map[q[b]] · absmax2[b / 256]) + offset)   (two roundings, no FMA)
//   w = fl(NF4[code] · absmax'[b]) in fp32, then rounded to the checkpoint's dtype (bf16/f16) as
//   bitsandbytes returns it in quant_state.dtype.
//
// Input dtype: F32, BF16 and F16 weights are widened to fp32 first. bitsandbytes quantizes a
// tensor in its own dtype, but its kernel converts every element to fp32 ((float)vals[j]) before
// any arithmetic, and widening is exact, so the codes are identical; the reference does the same.
//
// One known difference from a checkpoint quantized by bitsandbytes on a GPU: bitsandbytes builds
// its CUDA kernels with --use_fast_math, so its 1.0f/absmax is the approximate reciprocal of the
// hardware (within an ulp) rather than IEEE's; a value within about an ulp of a code boundary may
// then get the neighbouring code. Attune (and the Python reference) use the IEEE reciprocal, which
// is what bitsandbytes' source says and is reproducible on every machine. Dequantizing a
// bitsandbytes checkpoint is exact: it only multiplies.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "attune/status.h"
#include "attune/tensor_view.h"
#include "cpu/thread_pool.h"

namespace attune::quant {

using cpu::ThreadPool;

constexpr int64_t kNf4DefaultBlocksize = 64;
constexpr int64_t kNf4NestedBlocksize = 256;

// The 16 NF4 values, index 0..15 (bitsandbytes' get_4bit_type("nf4"), fp32).
const std::array<float, 16>& nf4_code();
// dQuantizeNF4's 15 decision constants, ascending: the kernel's float literals rounded directly
// from their decimals, as nvcc does (checked with CUDA 13.0's PTX): see above for the 4 that are
// not the ties-to-even fp32 midpoint. A value v > thresholds[i] is above code i.
const std::array<float, 15>& nf4_thresholds();
// bitsandbytes' create_dynamic_map(signed=True): 256 ascending fp32 values, [0] = −0.99296875,
// [127] = 0, [255] = 1. Rebuilt step by step as bitsandbytes does on the CPU with torch on an
// x86-64 machine with AVX2 (torch.linspace(0.1, 1, 2^i + 1) in fp32, whose per-element
// `start + step·i` torch's AVX2/AVX-512 kernels fuse into an FMA; means of neighbours in fp32;
// × 10^(i−6) as an fp32 scalar; ± both signs; 0 and 1; sorted). Checked against torch.
const std::array<float, 256>& dynamic_map_signed();

// bitsandbytes' block sizes: a power of two from 32 to 4096.
bool nf4_blocksize_supported(int64_t blocksize);

// The NF4 index of a value already scaled by 1/absmax (dQuantizeNF4).
uint8_t nf4_index(float scaled);
// The 8-bit index of a scaled value in a 256-entry ascending map (dQuantize<0>).
uint8_t dynamic_index(const float* map256, float scaled);

// How the double-quantization offset (the fp32 mean of the absmax vector) is summed.
enum class OffsetMean {
  // fl32(Σ/n), Σ accumulated in double-double (so practically exact) then rounded to a double,
  // divided by n in double: test/golden/nf4_reference.py's `F32(np.sum(absmax.astype(float64)) /
  // n)`, the exactly rounded mean save for astronomically rare ties. The default: the project's
  // reference and its training fixtures use it, and it does not depend on the machine.
  kExact,
  // torch's CPU `absmax.mean()` for fp32 when torch runs it on one thread (always, below 32768
  // absmax values): sum / n in fp32, the sum as torch 2.x's cascade_sum (8 fp32 lanes × 4
  // interleaved accumulators, a 4-level cascade every 16 rows of 32 values; the n mod 8 tail
  // summed first, then the 8 lanes in order). Checked bitwise against torch 2.13 with its
  // DEFAULT, AVX2 and AVX-512 kernels. With more threads on more absmax values torch splits the
  // sum differently; bitsandbytes on a GPU sums in CUDA's order, which no CPU order reproduces.
  kTorchCpu,
};
float mean_exact(const float* x, int64_t n);
float mean_torch_cpu(const float* x, int64_t n);

struct Nf4Options {
  int64_t blocksize = kNf4DefaultBlocksize;
  bool double_quant = true;
  OffsetMean offset_mean = OffsetMean::kExact;
};

// Everything quantize_4bit computes for one weight.
struct Nf4Quantized {
  int64_t numel = 0;
  int64_t blocksize = kNf4DefaultBlocksize;
  std::vector<uint8_t> packed;  // [ceil(numel/2)]
  std::vector<float> absmax;    // [blocks]: the exact fp32 absmax (also kept when nested)
  bool nested = false;          // double-quantized: the fields below are set
  int64_t nested_blocksize = kNf4NestedBlocksize;
  std::vector<uint8_t> absmax_q;  // [blocks]: 8-bit codes of absmax − offset
  std::vector<float> absmax2;     // [ceil(blocks/256)]
  float offset = 0;

  int64_t blocks() const { return static_cast<int64_t>(absmax.size()); }
};

// The pieces of an NF4 weight as dequantization reads them, pointing at someone else's memory
// (an Nf4Quantized, or a checkpoint's tensors): see Nf4Quantized::view below and Nf4Weight.
// The weight is [rows, cols] row-major; numel = rows · cols.
struct Nf4View {
  const uint8_t* packed = nullptr;  // [ceil(numel/2)]
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t blocksize = kNf4DefaultBlocksize;
  const float* code = nullptr;  // [16]
  // Plain: fp32 absmax per block. Nested: absmax is null and the four fields below are used.
  const float* absmax = nullptr;
  const uint8_t* absmax_q = nullptr;  // [blocks]
  const float* absmax2 = nullptr;     // [ceil(blocks/nested_blocksize)]
  const float* nested_code = nullptr;  // [256]
  int64_t nested_blocksize = kNf4NestedBlocksize;
  float offset = 0;

  int64_t numel() const { return rows * cols; }
  int64_t blocks() const { return (numel() + blocksize - 1) / blocksize; }
};

// A view of `q` as a [rows, cols] weight (rows · cols must be q.numel), with the standard maps.
Nf4View view_of(const Nf4Quantized& q, int64_t rows, int64_t cols);

// --- Quantization. `pool` may be null (runs on the calling thread); results do not depend on it.

// x[n] fp32 → NF4 (with double quantization when options.double_quant). Refuses an unsupported
// block size, n < 1 and non-finite values (bitsandbytes would quietly produce NaN weights).
Status nf4_quantize(const float* x, int64_t n, const Nf4Options& options, ThreadPool* pool, Nf4Quantized* out);
// The same for a tensor of any shape in F32, BF16 or F16 (widened to fp32, see above).
Status nf4_quantize(const TensorView& tensor, const Nf4Options& options, ThreadPool* pool, Nf4Quantized* out);

// The steps, for tests and tools. packed[ceil(n/2)], absmax[ceil(n/blocksize)].
void nf4_quantize_blocks(const float* x, int64_t n, int64_t blocksize, ThreadPool* pool, uint8_t* packed,
                         float* absmax);
// bitsandbytes' quantize_blockwise with an explicit map: q[n], absmax[ceil(n/blocksize)].
void quantize_blockwise8(const float* map256, const float* x, int64_t n, int64_t blocksize, ThreadPool* pool,
                         uint8_t* q, float* absmax);
// out[n] = fl(map[q[i]] · absmax[i / blocksize])
void dequantize_blockwise8(const float* map256, const uint8_t* q, const float* absmax, int64_t n, int64_t blocksize,
                           float* out);
// Double quantization of absmax[blocks] with a given offset (the steps after the mean):
// absmax_q[blocks], absmax2[ceil(blocks/256)].
void double_quantize(const float* absmax, int64_t blocks, float offset, ThreadPool* pool, uint8_t* absmax_q,
                     float* absmax2);

// --- Dequantization.

// How the fp32 products are returned: as fp32, or rounded (to nearest, ties to even) to the
// checkpoint's dtype as bitsandbytes returns them.
enum class Nf4Round { kNone, kBF16, kF16 };

// absmax'[b] for one block / all blocks (the fp32 absmax bitsandbytes multiplies by).
float nf4_block_absmax(const Nf4View& w, int64_t block);
void nf4_dequantize_absmax(const Nf4View& w, float* absmax);

// dst[(r1 − r0) · cols] = rows [r0, r1) of the weight in fp32, each value rounded to `round` and
// widened back (exact), so an fp32 GEMM sees exactly the numbers bitsandbytes would hand it. Made
// for use right before a GEMM on a block of rows; `pool` (may be null) splits the rows.
void nf4_dequantize_rows(const Nf4View& w, int64_t r0, int64_t r1, Nf4Round round, float* dst,
                         ThreadPool* pool = nullptr);
// The same rows as 16-bit values (bf16 or f16 bits, `round` must be kBF16 or kF16).
void nf4_dequantize_rows_16(const Nf4View& w, int64_t r0, int64_t r1, Nf4Round round, uint16_t* dst,
                            ThreadPool* pool = nullptr);
// Elements [begin, end) of the flattened weight, fp32 (rounded as above): the general form.
void nf4_dequantize_range(const Nf4View& w, int64_t begin, int64_t end, Nf4Round round, float* dst);

}  // namespace attune::quant
