#include "quant/quantize_model.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <thread>
#include <utility>

#ifndef _WIN32
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "cpu/thread_pool.h"
#include "host_os.h"
#include "io/json.h"
#include "io/mapped_file.h"
#include "io/model_weights.h"
#include "io/output_file.h"
#include "io/safetensors_writer.h"
#include "model/check_weights.h"
#include "quant/nf4.h"
#include "quant/nf4_weight.h"

namespace attune::quant {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool is_directory(const std::string& path) {
  try {
    std::error_code error;
    return std::filesystem::is_directory(std::filesystem::u8path(path), error);
  } catch (const std::exception&) {
    return false;
  }
}

// Tells the OS this process is done with a source tensor's pages for now: they leave its resident
// set (the page cache keeps them; a later read maps them again), so quantizing a model holds about
// one tensor resident instead of the whole mapped model. The mapping is read-only and private:
// nothing is lost. (Windows: left to the OS.)
void release_pages(const TensorView& tensor) {
#ifndef _WIN32
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  if (tensor.nbytes == 0 || page == 0) return;
  const auto address = reinterpret_cast<uintptr_t>(tensor.data);
  // Whole pages only; the mapping starts on a page and covers the file's last page.
  const uintptr_t begin = address & ~(page - 1);
  const uintptr_t end = (address + tensor.nbytes + page - 1) & ~(page - 1);
  madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
#else
  (void)tensor;
#endif
}

// One thing that goes into one shard: a tensor copied as it is, or a quantized weight's pieces.
struct Unit {
  const TensorView* source = nullptr;
  bool quantize = false;
  std::vector<SafetensorsTensorSpec> pieces;  // what it becomes in the output, bitsandbytes' order
  std::string quant_state;                    // quantized: the planned quant_state JSON
  uint64_t bytes = 0;
  size_t shard = 0;
};

uint64_t bytes_of(const SafetensorsTensorSpec& spec) {
  uint64_t bytes = dtype_size(spec.dtype);
  for (int64_t d : spec.shape) bytes *= static_cast<uint64_t>(d);
  return bytes;
}

// The tensors nf4_checkpoint_tensors() makes for `name`, from sizes alone.
std::vector<SafetensorsTensorSpec> nf4_pieces(const std::string& name, int64_t numel, int64_t blocksize, bool nested,
                                             size_t quant_state_bytes) {
  const int64_t blocks = ceil_div(numel, blocksize);
  std::vector<SafetensorsTensorSpec> pieces;
  pieces.push_back({name, DType::kU8, {ceil_div(numel, 2), 1}});
  pieces.push_back({name + ".absmax", nested ? DType::kU8 : DType::kF32, {blocks}});
  pieces.push_back({name + ".quant_map", DType::kF32, {16}});
  if (nested) {
    pieces.push_back({name + ".nested_absmax", DType::kF32, {ceil_div(blocks, kNf4NestedBlocksize)}});
    pieces.push_back({name + ".nested_quant_map", DType::kF32, {256}});
  }
  pieces.push_back({name + ".quant_state.bitsandbytes__nf4", DType::kU8, {static_cast<int64_t>(quant_state_bytes)}});
  return pieces;
}

std::string shard_name(size_t index, size_t count) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

// "<dir> is already quantized ..." when config.json says so; ok otherwise (including when it cannot
// be read: load_model_config reports that).
Status refuse_quantized(const std::string& src_dir) {
  MappedFile file;
  if (!MappedFile::open(join_path(src_dir, "config.json"), &file).ok()) return {};
  json::Value config;
  if (!json::parse(file.text(), &config).ok()) return {};
  const json::Value* quant = config.find("quantization_config");
  if (quant == nullptr || quant->is_null()) return {};
  std::string method = "bitsandbytes";
  if (const json::Value* m = quant->find("quant_method"); m != nullptr && m->is_string()) method = m->as_string();
  const json::Value* four = quant->find("load_in_4bit");
  const json::Value* eight = quant->find("load_in_8bit");
  std::string what = method;
  if (method == "bitsandbytes") {
    what = eight != nullptr && eight->is_bool() && eight->as_bool() ? "bitsandbytes 8-bit"
           : four != nullptr && four->is_bool() && four->as_bool() ? "bitsandbytes 4-bit"
                                                                    : "bitsandbytes";
  }
  return Status::invalid_argument(src_dir + " is already quantized (" + what +
                                  ": its config.json has a quantization_config); quantize the full-precision model it came from instead");
}

std::string json_index(const std::vector<Unit>& units, const std::vector<std::string>& shards, uint64_t total_size,
                       uint64_t total_parameters) {
  std::vector<std::pair<std::string, const std::string*>> map;
  for (const Unit& unit : units) {
    for (const SafetensorsTensorSpec& piece : unit.pieces) map.emplace_back(piece.name, &shards[unit.shard]);
  }
  std::sort(map.begin(), map.end());
  std::string text = "{\n  \"metadata\": {\n    \"total_parameters\": " + std::to_string(total_parameters) +
                     ",\n    \"total_size\": " + std::to_string(total_size) + "\n  },\n  \"weight_map\": {";
  for (size_t i = 0; i < map.size(); ++i) {
    text += i == 0 ? "\n" : ",\n";
    text += "    " + python_json_string(map[i].first) + ": " + python_json_string(*map[i].second);
  }
  text += map.empty() ? "}\n}\n" : "\n  }\n}\n";
  return text;
}

}  // namespace

std::vector<std::string> quantized_weight_names(const ModelConfig& config) {
  static const char* const kProjections[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                              "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                              "mlp.down_proj"};
  std::vector<std::string> names;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    for (const char* projection : kProjections) {
      names.push_back("model.layers." + std::to_string(layer) + "." + projection + ".weight");
    }
  }
  return names;
}

Status quantize_model(const std::string& src_dir, const std::string& dest_dir, const QuantizeModelOptions& options,
                      const CancelToken& cancel, const QuantizeModelProgressFn& on_progress,
                      QuantizeModelResult* result) {
  if (!nf4_blocksize_supported(options.blocksize)) {
    return Status::invalid_argument("NF4 block size " + std::to_string(options.blocksize) +
                                    " is not supported; bitsandbytes uses a power of two from 32 to 4096 (64 is the default)");
  }
  if (options.max_shard_bytes == 0) return Status::invalid_argument("The maximum shard size must be above 0 bytes");
  if (!is_directory(src_dir)) {
    return Status::invalid_argument("The model folder " + src_dir + " does not exist or is not a folder");
  }
  if (!is_directory(dest_dir)) {
    return Status::invalid_argument("The output folder " + dest_dir + " does not exist or is not a folder");
  }
  if (Status status = refuse_quantized(src_dir); !status.ok()) return status;
  ModelConfig config;
  if (Status status = load_model_config(src_dir, &config); !status.ok()) return status;
  ModelWeights weights;
  if (Status status = ModelWeights::open(src_dir, &weights); !status.ok()) return status;
  if (Status status = check_weights(config, weights); !status.ok()) return status;

  unsigned threads = options.threads;
  if (threads == 0) threads = host_affinity_threads();
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  cpu::ThreadPool pool(threads);
  Nf4Options nf4;
  nf4.blocksize = options.blocksize;
  nf4.double_quant = options.double_quant;

  // Units in the source's order: its files as the index first names them, each in header order.
  std::vector<std::string> to_quantize = quantized_weight_names(config);
  std::sort(to_quantize.begin(), to_quantize.end());
  std::vector<Unit> units;
  QuantizeModelResult out;
  bool have_dtype = false;
  uint64_t total_parameters = 0;
  for (const SafetensorsFile& file : weights.files()) {
    for (const TensorView& tensor : file.tensors()) {
      Unit unit;
      unit.source = &tensor;
      unit.quantize = std::binary_search(to_quantize.begin(), to_quantize.end(), tensor.name);
      if (unit.quantize) {
        // check_weights has checked the shape [out, in] and that the dtype is F32, F16 or BF16.
        if (!have_dtype) out.weight_dtype = tensor.dtype;
        have_dtype = true;
        total_parameters += static_cast<uint64_t>(ceil_div(tensor.numel(), 2) * 2);
        if (!options.double_quant) {
          Nf4Quantized plain;
          plain.numel = tensor.numel();
          plain.blocksize = options.blocksize;
          unit.quant_state = nf4_quant_state_json(plain, tensor.shape, tensor.dtype);
        }
        ++out.quantized_weights;
      } else {
        total_parameters += static_cast<uint64_t>(tensor.numel());
        unit.pieces.push_back({tensor.name, tensor.dtype, tensor.shape});
      }
      units.push_back(std::move(unit));
    }
  }
  out.source_tensors = static_cast<int64_t>(units.size());

  QuantizeModelProgress progress;
  progress.total = out.source_tensors + (options.double_quant ? out.quantized_weights : 0);
  auto report = [&](const std::string& tensor) {
    ++progress.done;
    progress.tensor = tensor;
    if (on_progress) on_progress(progress);
  };
  auto quantize = [&](const TensorView& tensor, Nf4Quantized* q) {
    Status status = nf4_quantize(tensor, nf4, &pool, q);
    if (!status.ok()) return Status::invalid_argument(weights.file_of(tensor.name) + ": " + status.message());
    return status;
  };

  // With double quantization, the quant_state JSON (its nested_offset) needs the weight quantized.
  for (Unit& unit : units) {
    if (!unit.quantize) continue;
    if (options.double_quant) {
      if (cancel.cancelled()) return Status::cancelled();
      Nf4Quantized q;
      if (Status status = quantize(*unit.source, &q); !status.ok()) return status;
      unit.quant_state = nf4_quant_state_json(q, unit.source->shape, unit.source->dtype);
      release_pages(*unit.source);
      report(unit.source->name);
    }
    unit.pieces = nf4_pieces(unit.source->name, unit.source->numel(), options.blocksize, options.double_quant,
                             unit.quant_state.size());
  }

  // Shards: huggingface_hub's split_state_dict_into_shards over the units, shards numbered in the
  // order it appends them (an oversized unit at once, the open shard when it is full or at the end).
  size_t shard_count = 0;
  {
    std::vector<Unit*> open;  // the shard being filled
    uint64_t open_bytes = 0;
    auto close_open = [&]() {
      for (Unit* unit : open) unit->shard = shard_count;
      ++shard_count;
      open.clear();
      open_bytes = 0;
    };
    for (Unit& unit : units) {
      for (const SafetensorsTensorSpec& piece : unit.pieces) unit.bytes += bytes_of(piece);
      out.total_size += unit.bytes;
      if (unit.bytes > options.max_shard_bytes) {
        unit.shard = shard_count++;
        continue;
      }
      if (!open.empty() && open_bytes + unit.bytes > options.max_shard_bytes) close_open();
      open.push_back(&unit);
      open_bytes += unit.bytes;
    }
    if (!open.empty()) close_open();
    if (shard_count == 0) shard_count = 1;  // a model with no tensors: one empty file
  }

  std::vector<std::string> names;
  for (size_t s = 0; s < shard_count; ++s) names.push_back(shard_count == 1 ? kSingleWeightsFile : shard_name(s, shard_count));

  std::vector<std::string> created;
  auto fail = [&](Status status) {
    for (const std::string& path : created) remove_file(path);
    return status;
  };
  for (size_t s = 0; s < shard_count; ++s) {
    std::vector<SafetensorsTensorSpec> specs;
    for (const Unit& unit : units) {
      if (unit.shard == s) specs.insert(specs.end(), unit.pieces.begin(), unit.pieces.end());
    }
    SafetensorsLayout layout;
    if (Status status = SafetensorsLayout::make(std::move(specs), {{"format", "pt"}}, &layout); !status.ok()) {
      return fail(status);
    }
    const std::string path = join_path(dest_dir, names[s]);
    SafetensorsWriter writer;
    if (Status status = SafetensorsWriter::create(path, std::move(layout), &writer); !status.ok()) return fail(status);
    created.push_back(path);
    for (const Unit& unit : units) {
      if (unit.shard != s) continue;
      if (cancel.cancelled()) {
        writer = SafetensorsWriter();
        return fail(Status::cancelled());
      }
      const TensorView& source = *unit.source;
      Status status;
      if (!unit.quantize) {
        status = writer.write(source.name, source.data, source.nbytes);
        ++out.tensors_written;
      } else {
        Nf4Quantized q;
        std::vector<CheckpointTensor> pieces;
        status = quantize(source, &q);
        if (status.ok()) status = nf4_checkpoint_tensors(source.name, q, source.shape, source.dtype, &pieces);
        if (status.ok() && nf4_quant_state_json(q, source.shape, source.dtype) != unit.quant_state) {
          status = Status::internal("Tensor \"" + source.name + "\" quantized differently the second time");
        }
        if (status.ok() && pieces.size() != unit.pieces.size()) {
          status = Status::internal("Tensor \"" + source.name + "\": the NF4 tensors differ from the plan");
        }
        for (size_t i = 0; status.ok() && i < pieces.size(); ++i) {
          const CheckpointTensor& piece = pieces[i];
          const SafetensorsTensorSpec& planned = unit.pieces[i];
          if (piece.name != planned.name || piece.dtype != planned.dtype || piece.shape != planned.shape) {
            status = Status::internal("Tensor \"" + piece.name + "\" differs from the planned " + planned.name);
          } else {
            status = writer.write(piece.name, piece.data.data(), piece.data.size());
            ++out.tensors_written;
          }
        }
      }
      if (!status.ok()) {
        writer = SafetensorsWriter();
        return fail(status);
      }
      release_pages(source);
      report(source.name);
    }
    if (Status status = writer.finish(); !status.ok()) {
      writer = SafetensorsWriter();
      return fail(status);
    }
  }
  if (shard_count > 1) {
    const std::string path = join_path(dest_dir, kWeightsIndexFile);
    if (Status status = write_new_file(path, json_index(units, names, out.total_size, total_parameters)); !status.ok()) {
      return fail(status);
    }
    names.push_back(kWeightsIndexFile);
  }
  out.files = std::move(names);
  *result = std::move(out);
  return {};
}

std::string python_json_string(const std::string& utf8) {
  static const char kHex[] = "0123456789abcdef";
  auto escape_unit = [](std::string* out, uint32_t unit) {
    *out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) *out += kHex[(unit >> shift) & 15];
  };
  std::string out = "\"";
  for (size_t i = 0; i < utf8.size();) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      ++i;
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20 || c == 0x7F) {
            escape_unit(&out, c);
          } else {
            out += static_cast<char>(c);
          }
      }
      continue;
    }
    // A multi-byte sequence (valid UTF-8: the names come from parsed JSON).
    const int length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    uint32_t code = c & (length == 4 ? 0x07 : length == 3 ? 0x0F : 0x1F);
    for (int k = 1; k < length && i + static_cast<size_t>(k) < utf8.size(); ++k) {
      code = (code << 6) | (static_cast<unsigned char>(utf8[i + static_cast<size_t>(k)]) & 0x3F);
    }
    i += static_cast<size_t>(length);
    if (code >= 0x10000) {
      code -= 0x10000;
      escape_unit(&out, 0xD800 | (code >> 10));
      escape_unit(&out, 0xDC00 | (code & 0x3FF));
    } else {
      escape_unit(&out, code);
    }
  }
  out += "\"";
  return out;
}

}  // namespace attune::quant
