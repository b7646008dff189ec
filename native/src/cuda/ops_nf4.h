// NF4 weights (bitsandbytes' 4-bit NormalFloat with double quantization, quant/nf4.h) on the GPU:
//   - nf4_dequantize_rows: rows of a [rows, cols] NF4 weight into a T buffer, right before the
//     GEMM that uses them (QLoRA keeps only the 4-bit codes resident; a reused bf16 buffer holds
//     one weight at a time). Exactly the values of quant::nf4_dequantize_rows (bitwise).
//   - nf4_quantize: an fp32 or bf16 device tensor → NF4 codes + double quantization, byte for byte
//     quant::nf4_quantize (packed codes, absmax, absmax codes, nested absmax and offset), for
//     quantizing a 16-bit model as it is loaded onto the GPU.
// Every fp32 operation of the CPU code is rounded the same way here (explicit __fmul_rn/__fadd_rn:
// nvcc would otherwise fuse a·b + c into an FMA, which the CPU code, built with contraction off,
// does not), and the comparisons are the same, so nothing depends on a summation order except the
// double-quantization offset (a mean), which is computed on the host by the CPU's own function
// from the absmax values the GPU found: identical by construction.
//
// All pointers are device pointers unless said otherwise. Bad sizes and null pointers are
// Status::invalid_argument.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "attune/status.h"

namespace attune::quant {
enum class Nf4Round;  // quant/nf4.h: kNone, kBF16, kF16
struct Nf4Options;    // quant/nf4.h
}  // namespace attune::quant

namespace attune::cuda {

// quant::Nf4View with device pointers: the pieces of an NF4 weight as dequantization reads them.
// The weight is [rows, cols] row-major, numel = rows · cols, blocks = ceil(numel / blocksize).
// blocksize and nested_blocksize must be powers of two (as every bitsandbytes checkpoint's are).
struct Nf4DeviceView {
  const uint8_t* packed = nullptr;  // [ceil(numel/2)]: element 2j in the HIGH nibble of byte j
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t blocksize = 64;
  const float* code = nullptr;  // [16]: the NF4 values (the checkpoint's quant_map)
  // Plain: fp32 absmax per block. Nested (double-quantized): absmax is null and the fields below
  // are used: absmax'[b] = fl(fl(nested_code[absmax_q[b]] · absmax2[b / nested_blocksize]) + offset).
  const float* absmax = nullptr;       // [blocks]
  const uint8_t* absmax_q = nullptr;   // [blocks]
  const float* absmax2 = nullptr;      // [ceil(blocks / nested_blocksize)]
  const float* nested_code = nullptr;  // [256]: the checkpoint's nested_quant_map
  int64_t nested_blocksize = 256;
  float offset = 0;  // a host value (bitsandbytes' nested_offset)
};

// dst[(r1 − r0) · cols] = rows [r0, r1) of the weight: w = fl(code[q] · absmax'[block]) in fp32,
// rounded per `round` (kNone: kept; kBF16 / kF16: to nearest even in that dtype and widened back,
// as bitsandbytes returns the weight in the checkpoint's dtype), then stored as T:
//   - T = float: exactly quant::nf4_dequantize_rows(view, r0, r1, round, dst) (every bit);
//   - T = bf16: with kBF16, exactly quant::nf4_dequantize_rows_16 (the bf16 bits); with kNone the
//     fp32 product rounded to bf16 once; with kF16 the f16 value rounded to bf16 (a double
//     rounding: a bf16 buffer cannot hold an f16 checkpoint's values exactly).
// 0 ≤ r0 ≤ r1 ≤ rows; r0 == r1 launches nothing. One thread per element (coalesced stores).
template <typename T>
Status nf4_dequantize_rows(const Nf4DeviceView& w, int64_t r0, int64_t r1, quant::Nf4Round round, T* dst,
                           cudaStream_t stream);

// Where nf4_quantize writes (device buffers of the caller).
struct Nf4DeviceQuantized {
  uint8_t* packed = nullptr;    // [ceil(n/2)]
  float* absmax = nullptr;      // [blocks]: the exact fp32 absmax per block (always written)
  uint8_t* absmax_q = nullptr;  // [blocks]: double quantization only
  float* absmax2 = nullptr;     // [ceil(blocks/256)]: double quantization only
};

// x[n] (T = float or bf16, widened exactly to fp32 as the CPU does) → NF4, as
// quant::nf4_quantize(x, n, options, ...) computes it: the same packed codes (odd n: the last low
// nibble is the code of bitsandbytes' padding 0.0), absmax, and with options.double_quant the same
// absmax_q, absmax2 and *offset (a HOST float; 0 without double quantization), for either
// options.offset_mean. Refuses what the CPU refuses, with the same messages: an unsupported block
// size, n < 1, and non-finite values (by the flat index of the first one).
// SYNCHRONOUS: it waits for `stream` once, to read the absmax vector back for the offset (the
// mean, computed by quant::mean_exact / mean_torch_cpu on the host) and for the finiteness check;
// made for load time, not for a training step. The output buffers hold garbage after an error.
template <typename T>
Status nf4_quantize(const T* x, int64_t n, const quant::Nf4Options& options, const Nf4DeviceQuantized& out,
                    float* offset, cudaStream_t stream);

}  // namespace attune::cuda
