// attune quantize's native part: the streaming safetensors writer (src/io/safetensors_writer.*)
// and the model quantizer (src/quant/quantize_model.*), on the golden models.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

#ifdef __linux__
#include <csignal>
#include <sys/resource.h>
#endif

#include "attune/cancel.h"
#include "check.h"
#include "io/json.h"
#include "io/model_weights.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/check_weights.h"
#include "model/config.h"
#include "quant/nf4.h"
#include "quant/nf4_weight.h"
#include "quant/quantize_model.h"
#include "safetensors_writer.h"
#include "status_matchers.h"
#include "temp_dir.h"
#include "tensor/convert.h"

namespace fs = std::filesystem;
using attune::DType;
using attune::ModelConfig;
using attune::ModelWeights;
using attune::SafetensorsFile;
using attune::SafetensorsLayout;
using attune::SafetensorsTensorData;
using attune::SafetensorsWriter;
using attune::Status;
using attune::TensorView;
using attune_test::fails_with;
using attune_test::succeeds;
using attune_test::TempDir;
using attune_test::TestTensor;
using namespace attune::quant;

namespace {

const std::string kGolden = ATTUNE_GOLDEN_DIR;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

size_t files_in(const std::string& dir) {
  size_t n = 0;
  for (auto it = fs::directory_iterator(dir); it != fs::directory_iterator(); ++it) ++n;
  return n;
}

// The reference's order, written out independently of the code under test: dtype alignment
// (safetensors' enum position) descending, then name bytes.
int reference_rank(const std::string& dtype) {
  static const std::vector<std::string> order = {"BOOL", "F4",   "F6_E2M3", "F6_E3M2", "U8",  "I8",
                                                 "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16",
                                                 "U16",  "F16",  "BF16",    "I32",     "U32", "F32",
                                                 "C64",  "F64",  "I64",     "U64"};
  return static_cast<int>(std::find(order.begin(), order.end(), dtype) - order.begin());
}

void sort_like_the_reference(std::vector<TestTensor>* tensors) {
  std::stable_sort(tensors->begin(), tensors->end(), [](const TestTensor& a, const TestTensor& b) {
    const int ra = reference_rank(a.dtype), rb = reference_rank(b.dtype);
    if (ra != rb) return ra > rb;
    return a.name < b.name;
  });
}

std::vector<SafetensorsTensorData> as_data(const std::vector<TestTensor>& tensors) {
  std::vector<SafetensorsTensorData> out;
  for (const TestTensor& t : tensors) {
    DType dtype = DType::kU8;
    CHECK(attune::dtype_from_name(t.dtype, &dtype));
    out.push_back({t.name, dtype, t.shape, t.data.data(), t.data.size()});
  }
  return out;
}

attune::QuantizationConfig nf4_quant(bool nested, const std::string& compute = "float32") {
  attune::QuantizationConfig q;
  q.load_in_4bit = true;
  q.bnb_4bit_quant_type = "nf4";
  q.bnb_4bit_use_double_quant = nested;
  q.bnb_4bit_compute_dtype = compute;
  return q;
}

struct Quantized {
  Status status;
  QuantizeModelResult result;
  std::vector<QuantizeModelProgress> progress;
};

Quantized run_quantize(const std::string& src, const std::string& dest, const QuantizeModelOptions& options = {},
                       attune::CancelToken* cancel_after = nullptr, int64_t cancel_at = -1) {
  Quantized q;
  attune::CancelToken never;
  attune::CancelToken& cancel = cancel_after ? *cancel_after : never;
  q.status = quantize_model(src, dest, options, cancel,
                            [&](const QuantizeModelProgress& p) {
                              q.progress.push_back(p);
                              if (cancel_after && p.done == cancel_at) cancel_after->cancel();
                            },
                            &q.result);
  return q;
}

// Every tensor the quantized checkpoint of `src` must hold, computed in memory: the linear
// weights through nf4_quantize + nf4_checkpoint_tensors, everything else as it is.
std::vector<TestTensor> expected_tensors(const std::string& src, const QuantizeModelOptions& options) {
  ModelConfig config;
  CHECK(succeeds(attune::load_model_config(src, &config)));
  ModelWeights weights;
  CHECK(succeeds(ModelWeights::open(src, &weights)));
  std::vector<std::string> linear = quantized_weight_names(config);
  std::vector<TestTensor> out;
  for (const SafetensorsFile& file : weights.files()) {
    for (const TensorView& t : file.tensors()) {
      if (std::find(linear.begin(), linear.end(), t.name) == linear.end()) {
        out.push_back({t.name, attune::dtype_name(t.dtype), t.shape,
                       std::string(reinterpret_cast<const char*>(t.data), t.nbytes)});
        continue;
      }
      Nf4Options nf4;
      nf4.blocksize = options.blocksize;
      nf4.double_quant = options.double_quant;
      Nf4Quantized q;
      CHECK(succeeds(nf4_quantize(t, nf4, nullptr, &q)));
      std::vector<CheckpointTensor> pieces;
      CHECK(succeeds(nf4_checkpoint_tensors(t.name, q, t.shape, t.dtype, &pieces)));
      for (const CheckpointTensor& p : pieces) {
        out.push_back({p.name, attune::dtype_name(p.dtype), p.shape, std::string(p.data.begin(), p.data.end())});
      }
    }
  }
  return out;
}

// A copy of the golden model `name` in `dir`, every float tensor converted to BF16.
void write_bf16_copy(const std::string& name, const TempDir& dir) {
  const std::string src = kGolden + "/" + name;
  for (const char* file : {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
    fs::copy_file(src + "/" + file, dir.path() + "/" + file);
  }
  ModelWeights weights;
  CHECK(succeeds(ModelWeights::open(src, &weights)));
  std::vector<std::vector<uint16_t>> storage;
  std::vector<SafetensorsTensorData> tensors;
  for (const SafetensorsFile& file : weights.files()) {
    for (const TensorView& t : file.tensors()) {
      std::vector<float> values;
      CHECK(succeeds(attune::to_f32(t, &values)));
      storage.emplace_back(values.size());
      attune::f32_to_bf16(values.data(), storage.back().data(), static_cast<int64_t>(values.size()));
      tensors.push_back({t.name, DType::kBF16, t.shape, storage.back().data(), storage.back().size() * 2});
    }
  }
  CHECK(succeeds(attune::write_safetensors_file(dir.path() + "/model.safetensors", tensors, {{"format", "pt"}})));
}

// Checks a quantized folder against quantizing `src` in memory: every tensor present with the same
// bytes, the model passes check_weights with a 4-bit config, and every NF4 weight loads through
// Nf4Weight::load and dequantizes to exactly what quantizing the source weight in memory gives.
void check_against_memory(const std::string& src, const std::string& out, const QuantizeModelOptions& options,
                          const std::string& compute) {
  ModelConfig config;
  CHECK(succeeds(attune::load_model_config(src, &config)));
  config.quantization = nf4_quant(options.double_quant, compute);
  ModelWeights quantized;
  CHECK(succeeds(ModelWeights::open(out, &quantized)));
  CHECK(succeeds(attune::check_weights(config, quantized)));
  const std::vector<TestTensor> expected = expected_tensors(src, options);
  CHECK(quantized.tensor_count() == expected.size());
  for (const TestTensor& t : expected) {
    const TensorView* got = quantized.find(t.name);
    CHECK(got != nullptr);
    if (got == nullptr) continue;
    CHECK(attune::dtype_name(got->dtype) == t.dtype);
    CHECK(got->shape == t.shape);
    CHECK(got->nbytes == t.data.size() && std::memcmp(got->data, t.data.data(), t.data.size()) == 0);
  }
  ModelWeights source;
  CHECK(succeeds(ModelWeights::open(src, &source)));
  for (const std::string& name : quantized_weight_names(config)) {
    const TensorView* w = source.find(name);
    const int64_t rows = w->shape[0], cols = w->shape[1];
    Nf4Weight loaded;
    CHECK(succeeds(Nf4Weight::load(quantized, *config.quantization, name, rows, cols, &loaded)));
    Nf4Options nf4;
    nf4.blocksize = options.blocksize;
    nf4.double_quant = options.double_quant;
    Nf4Quantized q;
    CHECK(succeeds(nf4_quantize(*w, nf4, nullptr, &q)));
    Nf4Weight fresh;
    CHECK(succeeds(Nf4Weight::from_quantized(std::move(q), rows, cols, w->dtype, &fresh)));
    CHECK(loaded.dtype() == w->dtype);
    const std::vector<float> a = loaded.dequantize();
    const std::vector<float> b = fresh.dequantize();
    CHECK(a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  }
}

}  // namespace

// --- The streaming writer.

TEST(writer_matches_the_reference_layout_byte_for_byte) {
  std::vector<TestTensor> tensors = {
      attune_test::make_tensor("z.bias", "F32", {3}),
      attune_test::make_tensor("a.weight", "BF16", {4, 2}),
      attune_test::make_tensor("a.weight.absmax", "U8", {5}),
      attune_test::make_tensor("m", "F16", {2, 2}),
      attune_test::make_tensor("b.scalar", "F32", {}),
      attune_test::make_tensor("ids", "I64", {3}),
      attune_test::make_tensor("mask", "BOOL", {7}),
      attune_test::make_tensor("empty", "F32", {0, 4}),
      attune_test::make_tensor("a", "U8", {9, 1}),
      attune_test::make_tensor("q", "I8", {3}),
      attune_test::make_tensor("x", "I32", {2}),
      attune_test::make_tensor("d", "F64", {1}),
      attune_test::make_tensor("s", "I16", {3}),
  };
  for (const std::string& metadata : {std::string(), std::string(R"({"format":"pt"})")}) {
    TempDir dir;
    const std::string path = dir.path() + "/model.safetensors";
    std::vector<std::pair<std::string, std::string>> meta;
    if (!metadata.empty()) meta = {{"format", "pt"}};
    CHECK(succeeds(attune::write_safetensors_file(path, as_data(tensors), meta)));
    std::vector<TestTensor> sorted = tensors;
    sort_like_the_reference(&sorted);
    CHECK(sorted.front().name == "ids" && sorted.back().name == "mask");
    const std::string expected = attune_test::safetensors_file(sorted, metadata);
    CHECK(read_file(path) == expected);
    SafetensorsFile parsed;
    CHECK(succeeds(SafetensorsFile::open(path, &parsed)));
    CHECK(parsed.tensors().size() == tensors.size());
    for (size_t i = 0; i < sorted.size(); ++i) CHECK(parsed.tensors()[i].name == sorted[i].name);
    for (const TestTensor& t : tensors) {
      const TensorView* v = parsed.find(t.name);
      CHECK(v != nullptr && v->nbytes == t.data.size() && std::memcmp(v->data, t.data.data(), t.data.size()) == 0);
    }
    if (!metadata.empty()) CHECK(parsed.metadata().size() == 1 && parsed.metadata()[0].second == "pt");
  }
}

TEST(writer_takes_tensors_in_any_order_and_escapes_names) {
  const std::vector<TestTensor> tensors = {
      attune_test::make_tensor("first", "F32", {64}),
      attune_test::make_tensor("quote\"back\\slash", "BF16", {3}),
      attune_test::make_tensor("line\nfeed\x01", "U8", {5}),
      attune_test::make_tensor("caf\xc3\xa9 \xf0\x9f\x98\x80", "F16", {6}),
  };
  std::vector<attune::SafetensorsTensorSpec> specs;
  for (const SafetensorsTensorData& t : as_data(tensors)) specs.push_back({t.name, t.dtype, t.shape});
  SafetensorsLayout layout;
  CHECK(succeeds(SafetensorsLayout::make(specs, {}, &layout)));
  CHECK(layout.header().size() % 8 == 0 && layout.header().find("\"line\\nfeed\\u0001\"") != std::string::npos);
  TempDir dir;
  const std::string path = dir.path() + "/x.safetensors";
  SafetensorsWriter writer;
  CHECK(succeeds(SafetensorsWriter::create(path, layout, &writer)));
  for (auto it = tensors.rbegin(); it != tensors.rend(); ++it) {
    CHECK(succeeds(writer.write(it->name, it->data.data(), it->data.size())));
  }
  CHECK(succeeds(writer.finish()));
  SafetensorsFile parsed;
  CHECK(succeeds(SafetensorsFile::open(path, &parsed)));
  for (const TestTensor& t : tensors) {
    const TensorView* v = parsed.find(t.name);
    CHECK(v != nullptr && v->nbytes == t.data.size() && std::memcmp(v->data, t.data.data(), t.data.size()) == 0);
  }
}

TEST(writer_refuses_mistakes) {
  SafetensorsLayout layout;
  CHECK(fails_with(SafetensorsLayout::make({{"a", DType::kF32, {2}}, {"a", DType::kU8, {2}}}, {}, &layout), "given twice"));
  CHECK(fails_with(SafetensorsLayout::make({{"__metadata__", DType::kF32, {2}}}, {}, &layout), "reserves"));
  CHECK(fails_with(SafetensorsLayout::make({{"a", DType::kF32, {-1}}}, {}, &layout), "negative"));
  CHECK(succeeds(SafetensorsLayout::make({{"a", DType::kF32, {2}}, {"b", DType::kU8, {3}}}, {}, &layout)));
  TempDir dir;
  const std::string path = dir.path() + "/x.safetensors";
  SafetensorsWriter writer;
  CHECK(succeeds(SafetensorsWriter::create(path, layout, &writer)));
  const uint8_t bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  CHECK(fails_with(writer.write("c", bytes, 3), "no tensor \"c\""));
  CHECK(fails_with(writer.write("a", bytes, 3), "has 8 bytes"));
  CHECK(succeeds(writer.write("a", bytes, 8)));
  CHECK(fails_with(writer.write("a", bytes, 8), "written twice"));
  CHECK(fails_with(writer.finish(), "\"b\""));
  SafetensorsWriter again;
  CHECK(fails_with(SafetensorsWriter::create(path, layout, &again), "Could not create " + path));
}

// --- Quantizing a model folder.

TEST(quantizes_llama_like_quantizing_in_memory) {
  const std::string src = kGolden + "/llama";
  TempDir dir;
  const Quantized q = run_quantize(src, dir.path());
  CHECK(succeeds(q.status));
  CHECK(q.result.files == std::vector<std::string>{"model.safetensors"});
  CHECK(files_in(dir.path()) == 1);
  CHECK(q.result.quantized_weights == 14 && q.result.weight_dtype == DType::kF32);
  ModelWeights source;
  CHECK(succeeds(ModelWeights::open(src, &source)));
  CHECK(q.result.source_tensors == static_cast<int64_t>(source.tensor_count()));
  CHECK(q.result.tensors_written == static_cast<int64_t>(source.tensor_count()) + 14 * 5);
  check_against_memory(src, dir.path(), {}, "float32");
  // The file is the one the test helper builds from the same tensors in the reference's order.
  std::vector<TestTensor> expected = expected_tensors(src, {});
  sort_like_the_reference(&expected);
  CHECK(read_file(dir.path() + "/model.safetensors") == attune_test::safetensors_file(expected, R"({"format":"pt"})"));
  uint64_t total = 0;
  for (const TestTensor& t : expected) total += t.data.size();
  CHECK(q.result.total_size == total);
  // Progress: every weight measured, then every source tensor written, in order.
  CHECK(!q.progress.empty() && q.progress.back().done == q.progress.back().total);
  CHECK(q.progress.back().total == q.result.source_tensors + 14);
  for (size_t i = 0; i < q.progress.size(); ++i) CHECK(q.progress[i].done == static_cast<int64_t>(i) + 1);
}

TEST(quantizes_without_double_quantization_and_with_other_block_sizes) {
  for (const auto& [blocksize, nested] : std::vector<std::pair<int64_t, bool>>{{64, false}, {128, true}, {32, false}}) {
    for (const char* model : {"llama", "qwen2", "qwen3", "llama_tied"}) {
      const std::string src = kGolden + "/" + model;
      TempDir dir;
      QuantizeModelOptions options;
      options.blocksize = blocksize;
      options.double_quant = nested;
      const Quantized q = run_quantize(src, dir.path(), options);
      CHECK(succeeds(q.status));
      check_against_memory(src, dir.path(), options, "float32");
      ModelWeights out;
      CHECK(succeeds(ModelWeights::open(dir.path(), &out)));
      const TensorView* state = out.find("model.layers.1.mlp.down_proj.weight.quant_state.bitsandbytes__nf4");
      CHECK(state != nullptr);
      if (state == nullptr) continue;
      const std::string json(reinterpret_cast<const char*>(state->data), state->nbytes);
      CHECK(json.find("\"blocksize\": " + std::to_string(blocksize)) != std::string::npos);
      CHECK((json.find("nested_offset") != std::string::npos) == nested);
      CHECK(out.find("model.layers.0.self_attn.q_proj.weight.nested_absmax") != nullptr || !nested);
      CHECK(q.progress.back().total == q.result.source_tensors + (nested ? q.result.quantized_weights : 0));
    }
  }
}

TEST(quantizes_a_bf16_model_to_bf16_quant_states) {
  TempDir bf16;
  write_bf16_copy("qwen2", bf16);
  TempDir dir;
  const Quantized q = run_quantize(bf16.path(), dir.path());
  CHECK(succeeds(q.status));
  CHECK(q.result.weight_dtype == DType::kBF16);
  check_against_memory(bf16.path(), dir.path(), {}, "bfloat16");
  ModelWeights out;
  CHECK(succeeds(ModelWeights::open(dir.path(), &out)));
  // Biases and norms keep their dtype.
  CHECK(out.find("model.layers.0.self_attn.q_proj.bias")->dtype == DType::kBF16);
  CHECK(out.find("model.norm.weight")->dtype == DType::kBF16);
  const TensorView* state = out.find("model.layers.0.self_attn.k_proj.weight.quant_state.bitsandbytes__nf4");
  CHECK(std::string(reinterpret_cast<const char*>(state->data), state->nbytes).find("\"dtype\": \"bfloat16\"") !=
        std::string::npos);
}

TEST(shards_like_huggingface_hub_and_reads_sharded_sources) {
  // llama_sharded holds llama's tensors in three files: the output is the same checkpoint.
  TempDir single;
  CHECK(succeeds(run_quantize(kGolden + "/llama_sharded", single.path()).status));
  check_against_memory(kGolden + "/llama", single.path(), {}, "float32");

  QuantizeModelOptions options;
  options.max_shard_bytes = 60'000;  // the embedding (90,112 bytes) gets a shard of its own
  TempDir dir;
  const Quantized q = run_quantize(kGolden + "/llama", dir.path(), options);
  CHECK(succeeds(q.status));
  const size_t shards = q.result.files.size() - 1;
  CHECK(shards > 2 && q.result.files.back() == "model.safetensors.index.json");
  CHECK(q.result.files[0] == "model-00001-of-" + std::string(5 - std::to_string(shards).size(), '0') +
                                 std::to_string(shards) + ".safetensors");
  CHECK(files_in(dir.path()) == shards + 1);
  check_against_memory(kGolden + "/llama", dir.path(), options, "float32");
  ModelWeights out;
  CHECK(succeeds(ModelWeights::open(dir.path(), &out)));
  for (const attune::SafetensorsFile& file : out.files()) {
    // A shard passes the limit only when it holds one oversized tensor.
    uint64_t bytes = 0;
    for (const TensorView& t : file.tensors()) bytes += t.nbytes;
    CHECK(bytes <= options.max_shard_bytes || file.tensors().size() == 1);
  }
  // A quantized weight's pieces share a shard.
  const std::string w = "model.layers.1.mlp.up_proj.weight";
  for (const char* suffix : {".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".quant_state.bitsandbytes__nf4"}) {
    CHECK(out.file_of(w + suffix) == out.file_of(w));
  }
  // The index as transformers writes it: indent 2, sorted keys, total_size = every tensor's bytes.
  const std::string index = read_file(dir.path() + "/model.safetensors.index.json");
  CHECK(index.rfind("{\n  \"metadata\": {\n    \"total_parameters\": ", 0) == 0);
  CHECK(index.find("\"total_size\": " + std::to_string(q.result.total_size) + "\n  },\n  \"weight_map\": {\n    \"lm_head.weight\": \"model-") !=
        std::string::npos);
  CHECK(index.size() > 4 && index.substr(index.size() - 4) == "}\n}\n");
  attune::json::Value parsed;
  CHECK(succeeds(attune::json::parse(index, &parsed)));
  CHECK(parsed.find("weight_map")->as_object().size() == out.tensor_count());
  uint64_t total = 0;
  for (const attune::SafetensorsFile& file : out.files()) {
    for (const TensorView& t : file.tensors()) total += t.nbytes;
  }
  CHECK(parsed.find("metadata")->find("total_size")->as_integer() == static_cast<int64_t>(total));
  // total_parameters as transformers counts a 4-bit model: every original parameter.
  ModelWeights source;
  CHECK(succeeds(ModelWeights::open(kGolden + "/llama", &source)));
  int64_t parameters = 0;
  for (const attune::SafetensorsFile& file : source.files()) {
    for (const TensorView& t : file.tensors()) parameters += t.numel();
  }
  CHECK(parsed.find("metadata")->find("total_parameters")->as_integer() == parameters);
}

TEST(refuses_a_quantized_model_a_missing_folder_and_bad_options) {
  TempDir quantized;
  CHECK(succeeds(run_quantize(kGolden + "/llama", quantized.path()).status));
  std::string config = read_file(kGolden + "/llama/config.json");
  config.insert(config.rfind('}'), R"(, "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "nf4"})");
  quantized.write("config.json", config);
  TempDir dir;
  CHECK(fails_with(run_quantize(quantized.path(), dir.path()).status, quantized.path() + " is already quantized (bitsandbytes 4-bit"));
  CHECK(files_in(dir.path()) == 0);
  CHECK(fails_with(run_quantize(kGolden + "/no-such-model", dir.path()).status, "/no-such-model does not exist"));
  CHECK(fails_with(run_quantize(kGolden + "/llama", dir.path() + "/missing").status, "output folder"));
  QuantizeModelOptions options;
  options.blocksize = 48;
  CHECK(fails_with(run_quantize(kGolden + "/llama", dir.path(), options).status, "block size 48"));
  // An output file already there is never overwritten.
  dir.write("model.safetensors", "mine");
  CHECK(fails_with(run_quantize(kGolden + "/llama", dir.path()).status, "Could not create"));
  CHECK(read_file(dir.path() + "/model.safetensors") == "mine");
}

TEST(a_broken_weight_is_named_and_leaves_nothing) {
  TempDir model;
  for (const auto& entry : fs::directory_iterator(kGolden + "/llama")) {
    fs::copy_file(entry.path(), fs::path(model.path()) / entry.path().filename());
  }
  // A NaN in layer 1's v_proj: found where the file's header says the tensor lies.
  const std::string path = model.path() + "/model.safetensors";
  const std::string bytes = read_file(path);
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = header << 8 | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  attune::json::Value json;
  CHECK(succeeds(attune::json::parse(bytes.substr(8, header), &json)));
  const std::string name = "model.layers.1.self_attn.v_proj.weight";
  const int64_t begin = json.find(name)->find("data_offsets")->as_array()[0].as_integer();
  {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(8 + header + static_cast<uint64_t>(begin) + 4 * 5));
    const uint32_t nan = 0x7FC00000u;
    file.write(reinterpret_cast<const char*>(&nan), 4);
  }
  for (const bool nested : {true, false}) {
    TempDir dir;
    QuantizeModelOptions options;
    options.double_quant = nested;
    const Status status = run_quantize(model.path(), dir.path(), options).status;
    CHECK(fails_with(status, path + ": Tensor \"" + name + "\" holds a value that is not finite"));
    CHECK(fails_with(status, "flat index 5"));
    CHECK(files_in(dir.path()) == 0);
  }
}

TEST(cancels_between_tensors_and_leaves_nothing) {
  for (const int64_t at : {int64_t{0}, int64_t{3}, int64_t{20}, int64_t{34}}) {
    TempDir dir;
    attune::CancelToken cancel;
    if (at == 0) cancel.cancel();
    QuantizeModelOptions options;
    options.max_shard_bytes = 100'000;
    const Quantized q = run_quantize(kGolden + "/llama", dir.path(), options, &cancel, at);
    CHECK(q.status.code() == attune::StatusCode::kCancelled);
    CHECK(files_in(dir.path()) == 0);
    if (at > 0) CHECK(q.progress.size() == static_cast<size_t>(at));
  }
}

#ifdef __linux__
TEST(a_full_disk_names_the_file_and_leaves_nothing) {
  // A file-size limit fails writes the way a full disk does (EFBIG instead of ENOSPC).
  struct sigaction ignore = {}, previous = {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGXFSZ, &ignore, &previous);
  rlimit saved = {};
  getrlimit(RLIMIT_FSIZE, &saved);
  for (const uint64_t limit : {uint64_t{4096}, uint64_t{100'000}}) {
    TempDir dir;
    rlimit small = saved;
    small.rlim_cur = limit;
    setrlimit(RLIMIT_FSIZE, &small);
    QuantizeModelOptions options;
    options.max_shard_bytes = 150'000;
    const Status status = run_quantize(kGolden + "/llama", dir.path(), options).status;
    setrlimit(RLIMIT_FSIZE, &saved);
    CHECK(fails_with(status, dir.path() + "/model-0000"));
    CHECK(fails_with(status, "File too large"));
    CHECK(files_in(dir.path()) == 0);
  }
  sigaction(SIGXFSZ, &previous, nullptr);
}
#endif

TEST(python_json_strings) {
  CHECK(python_json_string("model.layers.0.weight") == "\"model.layers.0.weight\"");
  CHECK(python_json_string("a\"b\\c\nd\te\x01\x7f") == "\"a\\\"b\\\\c\\nd\\te\\u0001\\u007f\"");
  CHECK(python_json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "\"caf\\u00e9 \\u20ac \\ud83d\\ude00\"");
}
