// How a bitsandbytes NF4 (4-bit) linear layer lies in a checkpoint (reference.md, "NF4 and double
// quantization"). For a weight P.weight of logical shape [out, in], n = out·in:
//   P.weight                                U8  [ceil(n/2), 1]   two 4-bit codes per byte
//   P.weight.absmax                         F32 [blocks]         or U8 [blocks] when double-quantized
//   P.weight.quant_map                      F32 [16]             the NF4 code
//   P.weight.nested_absmax                  F32 [ceil(blocks/nested_blocksize)]   double quant only
//   P.weight.nested_quant_map               F32 [256]                             double quant only
//   P.weight.quant_state.bitsandbytes__nf4  U8  [bytes]          JSON: quant_type, blocksize, dtype,
//                                                                shape, nested_blocksize, nested_offset
// with blocks = ceil(n/blocksize). This checks that layout; dequantizing is done elsewhere.
#pragma once

#include <cstdint>
#include <string>

#include "attune/status.h"
#include "io/model_weights.h"
#include "model/config.h"

namespace attune {

// The quant_state JSON of one layer.
struct Nf4Layout {
  int64_t blocksize = 64;
  std::string dtype;  // the original weight's torch dtype: "bfloat16", "float16", "float32"
  bool nested = false;  // double quantization: absmax itself is 8-bit quantized
  int64_t nested_blocksize = 256;
  double nested_offset = 0;  // mean of the absmax values, added back after dequantizing them
};

// Checks every tensor of the NF4 weight `weight_name` (e.g. "model.layers.0.mlp.up_proj.weight")
// for a [out, in] linear layer, against `quant` and the layer's own quant_state.
Status check_nf4_weight(const ModelWeights& weights, const QuantizationConfig& quant, const std::string& weight_name,
                        int64_t out, int64_t in, Nf4Layout* layout);

}  // namespace attune
