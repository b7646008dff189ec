// The matrix-vector products of batch-1 decode on the GPU: one token's activations times a frozen
// weight, where every weight byte is read exactly once and the run time is the time to stream W
// from memory. Prefill (many rows of x) goes through cuBLASLt instead; these kernels also take a
// handful of rows (T ≤ kDecodeMaxRows: speculative or batched decode), reading W once for all of
// them.
//
//   gemv           y = x·Wᵀ (+ bias), W bf16 or fp32 [out,in] row-major: cpu::linear (cpu/gemm.h).
//   nf4_gemv       the same for a bitsandbytes NF4 weight, dequantized on the fly from its packed
//                  codes and (double-quantized) absmax, never into a copy of W: each element is
//                  rounded exactly as quant::nf4_dequantize_rows rounds it (quant/nf4.h), then
//                  multiplied and summed in fp32.
//   lora_gemv_add  y += s·B·(A·x): an unmerged LoRA adapter on top of the frozen product
//                  (adapter::lora_forward without dropout), so one loaded base serves any adapter.
//   dora_scale     y = (m/n)⊙y_inner + bias: DoRA's magnitude on top of W·x + s·B·A·x
//                  (adapter::dora_forward without dropout).
//
// Shapes (Hugging Face layout, all row-major, all pointers device memory): x [T,in], y [T,out],
// W [out,in], bias [out], A [r,in], B [out,r], magnitude m and norm n [out]. Activations and
// outputs are fp32; sums are fp32 (the order differs from the CPU's: results agree within fp32
// rounding, not bit for bit).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "attune/status.h"

namespace attune::cuda {

// The most rows of x the decode products take in one call (more: use cuBLASLt).
constexpr int64_t kDecodeMaxRows = 8;

// y[T,out] = x[T,in]·W[out,in]ᵀ (+ bias[out]) (+= y when accumulate), as cpu::linear with W in its
// file dtype: W is float or __nv_bfloat16. bias may be null. 1 ≤ T ≤ kDecodeMaxRows. W rows are
// read with 16-byte loads when in·sizeof(W) is a multiple of 16 and W is 16-byte aligned, element
// by element otherwise (correct, slower). y must not overlap x or W.
template <typename W>
Status gemv(const float* x, const W* w, const float* bias, float* y, int64_t T, int64_t in, int64_t out,
            bool accumulate, cudaStream_t stream);

// How nf4_gemv rounds each dequantized fp32 weight before multiplying: the same choices as
// quant::Nf4Round (kNone, kBF16, kF16, in that order): the dtype bitsandbytes returns the weight
// in (Nf4Weight::round()). Round to nearest, ties to even.
enum class Nf4GemvRound : int { kNone = 0, kBF16 = 1, kF16 = 2 };

// An NF4 weight [out,in] in device memory, field for field quant::Nf4View (quant/nf4.h) with
// device pointers: the weight flattened row-major to out·in elements, in blocks of `blocksize`
// (a power of two, 32..4096; a block may straddle two rows). Element e has code
//   packed[e/2] >> 4 when e is even, packed[e/2] & 15 when odd,
// and value w_e = round(fl(code_table[code] · absmax'[e / blocksize])) with
//   absmax'[b] = absmax[b]                                                  (plain), or
//   absmax'[b] = fl(fl(nested_code[absmax_q[b]] · absmax2[b / nested_blocksize]) + offset)
//                                                              (double-quantized: absmax null).
// Plain device data, no ownership: whoever uploads the checkpoint's tensors keeps them alive.
struct Nf4GemvWeight {
  const uint8_t* packed = nullptr;       // [ceil(out·in / 2)]
  const float* code = nullptr;           // [16]: the NF4 values (the checkpoint's quant_map)
  const float* absmax = nullptr;         // [blocks] fp32 when not double-quantized, else null
  const uint8_t* absmax_q = nullptr;     // [blocks] 8-bit codes of absmax − offset (nested)
  const float* absmax2 = nullptr;        // [ceil(blocks / nested_blocksize)] (nested)
  const float* nested_code = nullptr;    // [256]: the dynamic map (nested_quant_map) (nested)
  float offset = 0.0f;                   // nested_offset (nested)
  int64_t out = 0;
  int64_t in = 0;
  int64_t blocksize = 64;
  int64_t nested_blocksize = 256;
  Nf4GemvRound round = Nf4GemvRound::kBF16;
};

// y[T,out] = x[T,in]·Wᵀ (+ bias[out]) (+= y when accumulate) for an NF4 weight: equal, up to the
// order of the fp32 sums, to cpu::linear on the fp32 rows of quant::nf4_dequantize_rows(view, 0,
// out, round). bias may be null; 1 ≤ T ≤ kDecodeMaxRows. Reads 16 bytes (32 codes) at a time when
// in is a multiple of 32 and packed is 16-byte aligned, element by element otherwise.
Status nf4_gemv(const float* x, const Nf4GemvWeight& w, const float* bias, float* y, int64_t T, bool accumulate,
                cudaStream_t stream);

// y[T,out] += scaling · (x[T,in]·A[r,in]ᵀ)·B[out,r]ᵀ: an unmerged LoRA adapter's contribution
// (adapter::lora_forward's `u = x·Aᵀ; y += s·u·Bᵀ`, dropout off). u[T,r] is scratch the caller
// provides, left holding x·Aᵀ. A and B fp32. 1 ≤ T ≤ kDecodeMaxRows; 1 ≤ rank ≤ 1024.
Status lora_gemv_add(const float* x, const float* a, const float* b, float scaling, float* u, float* y, int64_t T,
                     int64_t in, int64_t out, int64_t rank, cudaStream_t stream);

// y[t,o] = (magnitude[o] / norm[o]) · y[t,o] + bias[o], in place, for T rows: DoRA's output when y
// holds the bias-free W·x + s·B·A·x (gemv without bias, then lora_gemv_add). g = m/n is one fp32
// division, as adapter::dora_forward's magnitude_scale; norm[o] = ‖W + s·B·A‖ per row, computed
// once per adapter (adapter::dora_weight_norm). bias may be null.
Status dora_scale(const float* magnitude, const float* norm, const float* bias, float* y, int64_t T, int64_t out,
                  cudaStream_t stream);

}  // namespace attune::cuda
