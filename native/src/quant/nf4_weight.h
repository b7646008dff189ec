// An NF4 linear weight as bitsandbytes stores it in a checkpoint, both ways:
//   - reading: Nf4Weight from a checkpoint's tensors (model/nf4_layout.h checks their layout)
//     → the dequantize API of quant/nf4.h;
//   - writing: every tensor bitsandbytes' Linear4bit state_dict holds for one layer, from an
//     Nf4Quantized (quant/nf4.h), with the quant_state JSON byte for byte as bitsandbytes writes it.
//
// For a weight P.weight of logical shape [out, in] (bitsandbytes' Params4bit._save_to_state_dict +
// QuantState.as_dict(packed=True), in this order):
//   P.weight                                U8  [ceil(n/2), 1]  packed codes
//   P.weight.absmax                         U8  [blocks] (nested) or F32 [blocks]
//   P.weight.quant_map                      F32 [16]            the NF4 code
//   P.weight.nested_absmax                  F32 [ceil(blocks/256)]    nested only
//   P.weight.nested_quant_map               F32 [256]                 nested only
//   P.weight.quant_state.bitsandbytes__nf4  U8  [bytes]         json.dumps(...) of
//     {"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [out, in],
//      "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.0123}
//   (the last three only when nested; Python's default separators ", " and ": "; dtype is
//   str(torch dtype) without "torch."; nested_offset is Python's repr of the fp32 offset as a
//   float: shortest round-trip digits, exponent form below 1e-4 and from 1e16).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attune/status.h"
#include "attune/tensor_view.h"
#include "io/model_weights.h"
#include "model/config.h"
#include "model/nf4_layout.h"
#include "quant/nf4.h"

namespace attune::quant {

// The tensors of one NF4 weight in a checkpoint (the nested ones null when not double-quantized).
struct Nf4Tensors {
  const TensorView* weight = nullptr;
  const TensorView* absmax = nullptr;
  const TensorView* quant_map = nullptr;
  const TensorView* nested_absmax = nullptr;
  const TensorView* nested_quant_map = nullptr;
};

class Nf4Weight {
 public:
  Nf4Weight() = default;
  Nf4Weight(const Nf4Weight&) = delete;  // view() points into the owned buffers
  Nf4Weight& operator=(const Nf4Weight&) = delete;
  Nf4Weight(Nf4Weight&&) = default;  // vectors keep their buffers when moved
  Nf4Weight& operator=(Nf4Weight&&) = default;

  // The NF4 weight `weight_name` of a [out, in] linear layer in `weights`: checks its layout
  // (check_nf4_weight), then reads it. The packed codes (and 8-bit absmax codes) are used where
  // they lie in the mapped file: `weights` must outlive the result. The file's quant maps are used
  // after checking that they are bitsandbytes' standard ones (within 1e-6: a map built by torch
  // without FMA differs from the standard one in the last bit of a few entries); any other map is
  // refused by name.
  static Status load(const ModelWeights& weights, const QuantizationConfig& quant, const std::string& weight_name,
                     int64_t out, int64_t in, Nf4Weight* result);
  // The same from tensors found by other means and their parsed quant_state; `where` prefixes
  // errors (a file name). The tensors' shapes and dtypes must already be checked
  // (check_nf4_weight does); their values are checked here.
  static Status from_tensors(const Nf4Tensors& tensors, const Nf4Layout& layout, int64_t out, int64_t in,
                             const std::string& where, Nf4Weight* result);
  // A freshly quantized weight (owned). `dtype`: the dtype it was quantized from (F32/BF16/F16),
  // which dequantization rounds to.
  static Status from_quantized(Nf4Quantized quantized, int64_t out, int64_t in, DType dtype, Nf4Weight* result);

  int64_t out() const { return view_.rows; }
  int64_t in() const { return view_.cols; }
  // The dtype bitsandbytes dequantizes to (quant_state's dtype): kF32, kBF16 or kF16.
  DType dtype() const { return dtype_; }
  Nf4Round round() const;
  const Nf4View& view() const { return view_; }

  // Rows [r0, r1) in fp32 (rounded to dtype() when round_to_dtype, as bitsandbytes returns them).
  void dequantize_rows(int64_t r0, int64_t r1, float* dst, bool round_to_dtype = true,
                       ThreadPool* pool = nullptr) const;
  // The whole weight, [out · in] fp32, rounded to dtype().
  std::vector<float> dequantize(ThreadPool* pool = nullptr) const;

 private:
  Nf4View view_;
  DType dtype_ = DType::kF32;
  // Owned copies (tensor data may be unaligned in a mapped file; these are small), or everything
  // for from_quantized.
  std::vector<float> code_;
  std::vector<float> absmax_;
  std::vector<float> absmax2_;
  std::vector<float> nested_code_;
  std::vector<uint8_t> packed_;    // from_quantized only
  std::vector<uint8_t> absmax_q_;  // from_quantized only
};

// One tensor to write into a safetensors file.
struct CheckpointTensor {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // little-endian, numel × dtype size bytes
};

// "bfloat16", "float16", "float32": the quant_state spelling of a weight dtype ("" for others).
const char* quant_state_dtype_name(DType dtype);

// The bytes of P.weight.quant_state.bitsandbytes__nf4 for a weight of `shape` quantized from
// `dtype`, exactly as bitsandbytes' pack_dict_to_tensor(json.dumps(...)) writes them.
std::string nf4_quant_state_json(const Nf4Quantized& q, const std::vector<int64_t>& shape, DType dtype);

// All the tensors of `weight_name` ("model.layers.0.mlp.up_proj.weight") in bitsandbytes' order.
// `shape` is the weight's logical shape (numel must equal q.numel), `dtype` its dtype before
// quantization (F32, BF16 or F16).
Status nf4_checkpoint_tensors(const std::string& weight_name, const Nf4Quantized& q,
                              const std::vector<int64_t>& shape, DType dtype, std::vector<CheckpointTensor>* out);

// Python's repr() of a float (what json.dumps writes for one): "0.0123", "1e-05", "1e+16", "0.5",
// "3.0"; "NaN", "Infinity", "-Infinity" as json.dumps spells them.
std::string python_float_repr(double value);

}  // namespace attune::quant
