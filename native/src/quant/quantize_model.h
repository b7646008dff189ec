// `attune quantize`'s heavy part: a full-precision model folder → the safetensors files of a
// bitsandbytes NF4 4-bit checkpoint (what transformers' save_pretrained writes for a model loaded
// with BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")).
//
// Every decoder linear weight model.layers.{i}.{self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj}
// .weight is NF4-quantized (quant/nf4.h, with double quantization unless turned off) and stored as
// bitsandbytes' Linear4bit state_dict stores it (quant/nf4_weight.h: weight, weight.absmax,
// weight.quant_map, [weight.nested_absmax, weight.nested_quant_map,]
// weight.quant_state.bitsandbytes__nf4); every other tensor (embeddings, norms, biases, lm_head,
// anything extra) is copied with its dtype and bytes. bitsandbytes/transformers quantize exactly
// these: every nn.Linear but the output embedding.
//
// Output, into an existing folder `dest_dir` (the caller's temporary folder; config.json and the
// tokenizer files are the caller's business): `model.safetensors`, or, when the tensors pass
// `max_shard_bytes`, shards `model-0000i-of-0000n.safetensors` split as huggingface_hub's
// split_state_dict_into_shards splits (in the source's tensor order, a quantized weight's pieces
// kept together; a new shard starts before one would pass the limit; a bigger unit gets its own)
// plus `model.safetensors.index.json` as transformers writes it (json.dumps(indent=2,
// sort_keys=True), metadata total_parameters and total_size). Each file is written by
// io/safetensors_writer.h byte for byte as the safetensors library would, with metadata
// {"format": "pt"}, tensor by tensor, then fsynced: memory holds one weight at a time.
//
// A quant_state's JSON holds nested_offset (the mean of the weight's absmax), which fixes its
// byte length and so every later offset in the header. With double quantization each weight is
// therefore quantized once before the header is written (to learn that length) and again when its
// data is written; the second result is checked against the first.
//
// On any failure (bad input, a non-finite weight, a full disk, cancellation) the files written so
// far are removed and the error names the file and the tensor.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "attune/cancel.h"
#include "attune/status.h"
#include "attune/tensor_view.h"
#include "model/config.h"

namespace attune::quant {

// huggingface_hub's "2GB" (decimal, as it parses sizes).
constexpr uint64_t kDefaultMaxShardBytes = 2'000'000'000;

struct QuantizeModelOptions {
  int64_t blocksize = 64;
  bool double_quant = true;
  uint64_t max_shard_bytes = kDefaultMaxShardBytes;
  unsigned threads = 0;  // 0: every logical processor
};

struct QuantizeModelProgress {
  // Steps done of total: one per source tensor written, plus (with double quantization) one per
  // weight measured before the header is written.
  int64_t done = 0;
  int64_t total = 0;
  std::string tensor;  // the tensor just finished
};

struct QuantizeModelResult {
  std::vector<std::string> files;  // names inside dest_dir, the index last when sharded
  int64_t source_tensors = 0;
  int64_t quantized_weights = 0;
  int64_t tensors_written = 0;
  uint64_t total_size = 0;  // bytes of tensor data (the index's total_size)
  // The dtype the quantized weights had (their quant_state dtype): what bitsandbytes dequantizes
  // to, and the natural bnb_4bit_compute_dtype.
  DType weight_dtype = DType::kBF16;
};

using QuantizeModelProgressFn = std::function<void(const QuantizeModelProgress&)>;

// The names of the weights quantize_model quantizes, for a model of `config`, in layer order.
std::vector<std::string> quantized_weight_names(const ModelConfig& config);

// Quantizes the model folder `src_dir` into the existing folder `dest_dir` (see above). Refuses a
// model that is already quantized (config.json has a quantization_config), models Attune cannot
// read (model/config.h, model/check_weights.h), unsupported block sizes. `on_progress` (may be
// empty) is called on this thread; `cancel` is checked between tensors.
Status quantize_model(const std::string& src_dir, const std::string& dest_dir, const QuantizeModelOptions& options,
                      const CancelToken& cancel, const QuantizeModelProgressFn& on_progress,
                      QuantizeModelResult* result);

// Python's json.dumps of a str (ensure_ascii): `"`, `\`, \n \r \t \b \f escaped, every other
// character outside ' '..'~' as \uXXXX (lower-case hex, surrogate pairs above U+FFFF).
std::string python_json_string(const std::string& utf8);

}  // namespace attune::quant
