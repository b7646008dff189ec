#include "quant/nf4_weight.h"

#include <cmath>
#include <cstring>
#include <locale>
#include <sstream>
#include <utility>

#include "tensor/convert.h"

namespace attune::quant {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// fp32 values of a tensor already checked to be F32 with `count` elements (copied: the data may be
// unaligned).
std::vector<float> read_f32(const TensorView& tensor, int64_t count) {
  std::vector<float> values(static_cast<size_t>(count));
  std::memcpy(values.data(), tensor.data, static_cast<size_t>(count) * sizeof(float));
  return values;
}

// Checks `values` against bitsandbytes' map `standard` entry by entry.
Status check_map(const std::vector<float>& values, const float* standard, const std::string& where,
                 const std::string& tensor_name, const char* what) {
  constexpr double kTolerance = 1e-6;
  for (size_t i = 0; i < values.size(); ++i) {
    const double got = values[i];
    const double expected = standard[i];
    if (!(std::fabs(got - expected) <= kTolerance)) {
      return Status::invalid_argument(where + ": tensor \"" + tensor_name + "\" is not " + what + " (entry " +
                                      std::to_string(i) + " is " + python_float_repr(got) + ", expected " +
                                      python_float_repr(expected) +
                                      "); Attune reads only bitsandbytes' standard NF4 maps, so this checkpoint cannot be used as it is");
    }
  }
  return {};
}

bool dtype_from_quant_state(const std::string& name, DType* out) {
  std::string bare = name;
  if (bare.rfind("torch.", 0) == 0) bare = bare.substr(6);  // some bitsandbytes versions keep the prefix
  if (bare == "bfloat16") {
    *out = DType::kBF16;
  } else if (bare == "float16") {
    *out = DType::kF16;
  } else if (bare == "float32") {
    *out = DType::kF32;
  } else {
    return false;
  }
  return true;
}

template <typename T>
std::vector<uint8_t> bytes_of(const T* values, size_t count) {
  std::vector<uint8_t> bytes(count * sizeof(T));
  if (count > 0) std::memcpy(bytes.data(), values, bytes.size());
  return bytes;
}

}  // namespace

Nf4Round Nf4Weight::round() const {
  switch (dtype_) {
    case DType::kBF16:
      return Nf4Round::kBF16;
    case DType::kF16:
      return Nf4Round::kF16;
    default:
      return Nf4Round::kNone;
  }
}

Status Nf4Weight::load(const ModelWeights& weights, const QuantizationConfig& quant, const std::string& weight_name,
                       int64_t out, int64_t in, Nf4Weight* result) {
  Nf4Layout layout;
  if (Status status = check_nf4_weight(weights, quant, weight_name, out, in, &layout); !status.ok()) return status;
  Nf4Tensors tensors;
  tensors.weight = weights.find(weight_name);
  tensors.absmax = weights.find(weight_name + ".absmax");
  tensors.quant_map = weights.find(weight_name + ".quant_map");
  if (layout.nested) {
    tensors.nested_absmax = weights.find(weight_name + ".nested_absmax");
    tensors.nested_quant_map = weights.find(weight_name + ".nested_quant_map");
  }
  return from_tensors(tensors, layout, out, in, weights.file_of(weight_name), result);
}

Status Nf4Weight::from_tensors(const Nf4Tensors& tensors, const Nf4Layout& layout, int64_t out, int64_t in,
                               const std::string& where, Nf4Weight* result) {
  if (tensors.weight == nullptr || tensors.absmax == nullptr || tensors.quant_map == nullptr ||
      (layout.nested && (tensors.nested_absmax == nullptr || tensors.nested_quant_map == nullptr))) {
    return Status::internal("Nf4Weight::from_tensors: a tensor of the NF4 weight is missing");
  }
  const std::string& name = tensors.weight->name;
  if (!nf4_blocksize_supported(layout.blocksize) || (layout.nested && !nf4_blocksize_supported(layout.nested_blocksize))) {
    return Status::invalid_argument(where + ": tensor \"" + name + "\" has block size " +
                                    std::to_string(layout.blocksize) + " (nested " +
                                    std::to_string(layout.nested_blocksize) +
                                    "); bitsandbytes' block sizes are powers of two from 32 to 4096");
  }
  DType dtype;
  if (!dtype_from_quant_state(layout.dtype, &dtype)) {
    return Status::invalid_argument(where + ": tensor \"" + name + "\" has quant_state dtype \"" + layout.dtype +
                                    "\"; Attune reads \"bfloat16\", \"float16\" and \"float32\"");
  }
  const int64_t n = out * in;
  const int64_t blocks = ceil_div(n, layout.blocksize);
  // Sizes are the layout check's business; a mismatch here is a caller's bug, not a bad file.
  if (tensors.weight->nbytes != static_cast<size_t>(ceil_div(n, 2)) ||
      tensors.absmax->nbytes != static_cast<size_t>(blocks) * (layout.nested ? 1 : 4) ||
      tensors.quant_map->nbytes != 16 * sizeof(float) ||
      (layout.nested && (tensors.nested_absmax->nbytes != static_cast<size_t>(ceil_div(blocks, layout.nested_blocksize)) * 4 ||
                         tensors.nested_quant_map->nbytes != 256 * sizeof(float)))) {
    return Status::internal(where + ": tensor \"" + name + "\": the NF4 tensors do not have the sizes of a [" +
                            std::to_string(out) + ", " + std::to_string(in) + "] weight (check_nf4_weight first)");
  }
  Nf4Weight w;
  w.dtype_ = dtype;
  w.code_ = read_f32(*tensors.quant_map, 16);
  if (Status status = check_map(w.code_, nf4_code().data(), where, tensors.quant_map->name, "the NF4 code");
      !status.ok()) {
    return status;
  }
  w.view_.packed = tensors.weight->data;
  w.view_.rows = out;
  w.view_.cols = in;
  w.view_.blocksize = layout.blocksize;
  if (layout.nested) {
    w.nested_code_ = read_f32(*tensors.nested_quant_map, 256);
    if (Status status = check_map(w.nested_code_, dynamic_map_signed().data(), where, tensors.nested_quant_map->name,
                                  "bitsandbytes' signed dynamic 8-bit map");
        !status.ok()) {
      return status;
    }
    w.absmax2_ = read_f32(*tensors.nested_absmax, ceil_div(blocks, layout.nested_blocksize));
    w.view_.absmax_q = tensors.absmax->data;
    w.view_.nested_blocksize = layout.nested_blocksize;
    // bitsandbytes: offset = torch.tensor(float(qs_dict["nested_offset"])), an fp32 scalar.
    w.view_.offset = static_cast<float>(layout.nested_offset);
  } else {
    w.absmax_ = read_f32(*tensors.absmax, blocks);
  }
  w.view_.code = w.code_.data();
  w.view_.absmax = layout.nested ? nullptr : w.absmax_.data();
  w.view_.absmax2 = layout.nested ? w.absmax2_.data() : nullptr;
  w.view_.nested_code = layout.nested ? w.nested_code_.data() : nullptr;
  *result = std::move(w);
  return {};
}

Status Nf4Weight::from_quantized(Nf4Quantized quantized, int64_t out, int64_t in, DType dtype, Nf4Weight* result) {
  if (out < 1 || in < 1 || out * in != quantized.numel) {
    return Status::invalid_argument("An NF4 weight of " + std::to_string(quantized.numel) +
                                    " values cannot have the shape [" + std::to_string(out) + ", " +
                                    std::to_string(in) + "]");
  }
  if (dtype != DType::kF32 && dtype != DType::kBF16 && dtype != DType::kF16) {
    return Status::invalid_argument(std::string("An NF4 weight dequantizes to F32, BF16 or F16, not ") +
                                    dtype_name(dtype));
  }
  Nf4Weight w;
  w.dtype_ = dtype;
  w.code_.assign(nf4_code().begin(), nf4_code().end());
  w.packed_ = std::move(quantized.packed);
  w.view_.packed = w.packed_.data();
  w.view_.rows = out;
  w.view_.cols = in;
  w.view_.blocksize = quantized.blocksize;
  w.view_.code = w.code_.data();
  if (quantized.nested) {
    w.absmax_q_ = std::move(quantized.absmax_q);
    w.absmax2_ = std::move(quantized.absmax2);
    w.nested_code_.assign(dynamic_map_signed().begin(), dynamic_map_signed().end());
    w.view_.absmax_q = w.absmax_q_.data();
    w.view_.absmax2 = w.absmax2_.data();
    w.view_.nested_code = w.nested_code_.data();
    w.view_.nested_blocksize = quantized.nested_blocksize;
    w.view_.offset = quantized.offset;
  } else {
    w.absmax_ = std::move(quantized.absmax);
    w.view_.absmax = w.absmax_.data();
  }
  *result = std::move(w);
  return {};
}

void Nf4Weight::dequantize_rows(int64_t r0, int64_t r1, float* dst, bool round_to_dtype, ThreadPool* pool) const {
  nf4_dequantize_rows(view_, r0, r1, round_to_dtype ? round() : Nf4Round::kNone, dst, pool);
}

std::vector<float> Nf4Weight::dequantize(ThreadPool* pool) const {
  std::vector<float> values(static_cast<size_t>(view_.numel()));
  dequantize_rows(0, view_.rows, values.data(), true, pool);
  return values;
}

const char* quant_state_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return "bfloat16";
    case DType::kF16:
      return "float16";
    case DType::kF32:
      return "float32";
    default:
      return "";
  }
}

std::string nf4_quant_state_json(const Nf4Quantized& q, const std::vector<int64_t>& shape, DType dtype) {
  // json.dumps of QuantState.as_dict's non-tensor entries, in insertion order.
  std::string json = "{\"quant_type\": \"nf4\", \"blocksize\": " + std::to_string(q.blocksize) + ", \"dtype\": \"" +
                     quant_state_dtype_name(dtype) + "\", \"shape\": [";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) json += ", ";
    json += std::to_string(shape[i]);
  }
  json += "]";
  if (q.nested) {
    json += ", \"nested_blocksize\": " + std::to_string(q.nested_blocksize) +
            ", \"nested_dtype\": \"float32\", \"nested_offset\": " + python_float_repr(q.offset);
  }
  json += "}";
  return json;
}

Status nf4_checkpoint_tensors(const std::string& weight_name, const Nf4Quantized& q,
                              const std::vector<int64_t>& shape, DType dtype, std::vector<CheckpointTensor>* out) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  if (shape.empty() || numel != q.numel) {
    return Status::invalid_argument("Tensor \"" + weight_name + "\": the shape " + shape_to_string(shape) +
                                    " does not hold the " + std::to_string(q.numel) + " quantized values");
  }
  if (*quant_state_dtype_name(dtype) == '\0') {
    return Status::invalid_argument("Tensor \"" + weight_name + "\" has dtype " + std::string(dtype_name(dtype)) +
                                    "; an NF4 weight is quantized from F32, BF16 or F16");
  }
  std::vector<CheckpointTensor> tensors;
  tensors.push_back({weight_name, DType::kU8, {static_cast<int64_t>(q.packed.size()), 1}, q.packed});
  if (q.nested) {
    tensors.push_back({weight_name + ".absmax", DType::kU8, {q.blocks()}, q.absmax_q});
  } else {
    tensors.push_back({weight_name + ".absmax", DType::kF32, {q.blocks()}, bytes_of(q.absmax.data(), q.absmax.size())});
  }
  tensors.push_back({weight_name + ".quant_map", DType::kF32, {16}, bytes_of(nf4_code().data(), 16)});
  if (q.nested) {
    tensors.push_back({weight_name + ".nested_absmax", DType::kF32, {static_cast<int64_t>(q.absmax2.size())},
                       bytes_of(q.absmax2.data(), q.absmax2.size())});
    tensors.push_back({weight_name + ".nested_quant_map", DType::kF32, {256}, bytes_of(dynamic_map_signed().data(), 256)});
  }
  const std::string json = nf4_quant_state_json(q, shape, dtype);
  tensors.push_back({weight_name + ".quant_state.bitsandbytes__nf4", DType::kU8, {static_cast<int64_t>(json.size())},
                     std::vector<uint8_t>(json.begin(), json.end())});
  *out = std::move(tensors);
  return {};
}

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  if (value == 0.0) return std::signbit(value) ? "-0.0" : "0.0";
  // The shortest digit string that reads back as `value` (correctly rounded at each precision,
  // which is the nearest such string, as Python's repr picks).
  std::string scientific;
  for (int precision = 1; precision <= 17; ++precision) {
    std::ostringstream stream;
    stream.imbue(std::locale::classic());
    stream.precision(precision - 1);
    stream << std::scientific << value;
    std::istringstream back(stream.str());
    back.imbue(std::locale::classic());
    double parsed = 0;
    back >> parsed;
    scientific = stream.str();
    if (parsed == value) break;
  }
  // scientific: [-]d[.ddd]e±XX
  std::string out;
  size_t pos = 0;
  if (scientific[0] == '-') {
    out = "-";
    pos = 1;
  }
  const size_t e = scientific.find('e');
  std::string digits;
  for (size_t i = pos; i < e; ++i) {
    if (scientific[i] != '.') digits += scientific[i];
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  const int exponent = std::stoi(scientific.substr(e + 1));
  const int decpt = exponent + 1;  // value = 0.digits × 10^decpt
  const int k = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (decpt >= k) {
      out += digits + std::string(static_cast<size_t>(decpt - k), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
    }
  } else {
    out += digits.substr(0, 1);
    if (k > 1) out += "." + digits.substr(1);
    const int magnitude = exponent < 0 ? -exponent : exponent;
    out += exponent < 0 ? "e-" : "e+";
    if (magnitude < 10) out += "0";
    out += std::to_string(magnitude);
  }
  return out;
}

}  // namespace attune::quant
