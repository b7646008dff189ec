#include "model/nf4_layout.h"

#include <string_view>
#include <vector>

#include "io/json.h"
#include "io/json_fields.h"

namespace attune {

namespace {

constexpr std::string_view kQuantStateSuffix = ".quant_state.bitsandbytes__nf4";

Status require_dtype(const ModelWeights& weights, const TensorView& tensor, DType dtype) {
  if (tensor.dtype == dtype) return {};
  return Status::invalid_argument(weights.file_of(tensor.name) + ": tensor \"" + tensor.name + "\" has dtype " +
                                  dtype_name(tensor.dtype) + "; a 4-bit NF4 layer stores it as " + dtype_name(dtype));
}

Status require_tensor(const ModelWeights& weights, const std::string& name, const std::vector<int64_t>& shape, DType dtype) {
  const TensorView* tensor = nullptr;
  if (Status status = weights.require(name, shape, &tensor); !status.ok()) return status;
  return require_dtype(weights, *tensor, dtype);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The quant_state tensor holds the bytes of a JSON object (bitsandbytes' pack_dict_to_tensor).
Status read_quant_state(const ModelWeights& weights, const std::string& weight_name, int64_t out, int64_t in,
                        Nf4Layout* layout) {
  const std::string name = weight_name + std::string(kQuantStateSuffix);
  const TensorView* tensor = weights.find(name);
  if (tensor == nullptr) return weights.missing(name);
  if (Status status = require_dtype(weights, *tensor, DType::kU8); !status.ok()) return status;
  const std::string where = weights.file_of(name) + ": tensor \"" + name + "\"";
  json::Value state;
  const std::string_view text(reinterpret_cast<const char*>(tensor->data), tensor->nbytes);
  if (Status status = json::parse(text, &state); !status.ok()) {
    return Status::invalid_argument(where + ": " + status.message());
  }
  const json::Fields fields(state, where);
  std::string quant_type;
  if (Status status = fields.string("quant_type", &quant_type); !status.ok()) return status;
  if (quant_type != "nf4") return fields.error("quant_type", "is \"" + quant_type + "\"; Attune reads \"nf4\"");
  if (Status status = fields.positive_int("blocksize", &layout->blocksize, int64_t{1} << 20); !status.ok()) return status;
  if (Status status = fields.string("dtype", &layout->dtype); !status.ok()) return status;
  const json::Value* shape = fields.get("shape");
  const bool shape_matches = shape != nullptr && shape->as_array().size() == 2 && shape->as_array()[0].is_integer() &&
                             shape->as_array()[0].as_integer() == out && shape->as_array()[1].is_integer() &&
                             shape->as_array()[1].as_integer() == in;
  if (!shape_matches) {
    return fields.error("shape", "must be " + shape_to_string({out, in}) + ", the layer's shape from the model's config");
  }
  layout->nested = fields.get("nested_blocksize") != nullptr;
  if (!layout->nested) return {};
  if (Status status = fields.positive_int("nested_blocksize", &layout->nested_blocksize, int64_t{1} << 20); !status.ok()) {
    return status;
  }
  const json::Value* offset = fields.get("nested_offset");
  if (offset == nullptr || !offset->is_number()) return fields.error("nested_offset", "must be a number");
  layout->nested_offset = offset->as_number();
  return {};
}

}  // namespace

Status check_nf4_weight(const ModelWeights& weights, const QuantizationConfig& quant, const std::string& weight_name,
                        int64_t out, int64_t in, Nf4Layout* layout) {
  const int64_t n = out * in;
  if (Status status = require_tensor(weights, weight_name, {ceil_div(n, 2), 1}, DType::kU8); !status.ok()) return status;
  Nf4Layout parsed;
  if (Status status = read_quant_state(weights, weight_name, out, in, &parsed); !status.ok()) return status;
  if (parsed.nested != quant.bnb_4bit_use_double_quant) {
    return Status::invalid_argument(weights.file_of(weight_name) + ": tensor \"" + weight_name + "\" is " +
                                    (parsed.nested ? "" : "not ") +
                                    "double-quantized, but config.json's bnb_4bit_use_double_quant says otherwise");
  }
  const int64_t blocks = ceil_div(n, parsed.blocksize);
  const DType absmax_dtype = parsed.nested ? DType::kU8 : DType::kF32;
  if (Status status = require_tensor(weights, weight_name + ".absmax", {blocks}, absmax_dtype); !status.ok()) return status;
  if (Status status = require_tensor(weights, weight_name + ".quant_map", {16}, DType::kF32); !status.ok()) return status;
  if (parsed.nested) {
    const std::vector<int64_t> nested_shape = {ceil_div(blocks, parsed.nested_blocksize)};
    if (Status status = require_tensor(weights, weight_name + ".nested_absmax", nested_shape, DType::kF32); !status.ok()) {
      return status;
    }
    if (Status status = require_tensor(weights, weight_name + ".nested_quant_map", {256}, DType::kF32); !status.ok()) {
      return status;
    }
  }
  *layout = parsed;
  return {};
}

}  // namespace attune
