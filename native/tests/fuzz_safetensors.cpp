// Fuzz target: arbitrary bytes as a safetensors file. The parser must never crash or read outside
// the bytes (the sanitizers watch), every refusal must say why and name the file, and every
// accepted file's views must lie inside the bytes with sizes that match their shapes.
//
// ctest runs it through fuzz_driver.cpp. With clang, the same file is a libFuzzer target:
//   clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -Inative/include -Inative/src
//     native/tests/fuzz_safetensors.cpp native/tests/safetensors_writer.cpp native/src/status.cpp
//     native/src/io/*.cpp native/src/tensor/*.cpp -o fuzz_safetensors      (one command)
//   ./fuzz_safetensors corpus/
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_driver.h"
#include "io/safetensors.h"
#include "safetensors_writer.h"
#include "tensor/convert.h"

namespace {

size_t accepted = 0;

void require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "fuzz_safetensors: broken invariant: %s\n", invariant);
  std::abort();
}

bool is_float(attune::DType dtype) {
  return dtype == attune::DType::kF32 || dtype == attune::DType::kF16 || dtype == attune::DType::kBF16;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  attune::SafetensorsFile file;
  const attune::Status status = attune::SafetensorsFile::parse(data, size, "fuzz input", &file);
  if (!status.ok()) {
    require(status.message().rfind("fuzz input: ", 0) == 0 && status.message().size() > 12,
            "a refusal names the file and says why");
    return 0;
  }
  ++accepted;
  uint8_t checksum = 0;
  for (const attune::TensorView& tensor : file.tensors()) {
    require(tensor.data >= data + 8 && tensor.data + tensor.nbytes <= data + size, "a view lies inside the input");
    require(tensor.nbytes == static_cast<size_t>(tensor.numel()) * attune::dtype_size(tensor.dtype),
            "a view's size matches its shape and dtype");
    require(file.find(tensor.name) == &tensor, "find() returns the tensor by its name");
    for (size_t i = 0; i < tensor.nbytes; ++i) checksum ^= tensor.data[i];  // every byte readable
    if (is_float(tensor.dtype)) {
      std::vector<float> values;
      require(attune::to_f32(tensor, &values).ok() && values.size() == static_cast<size_t>(tensor.numel()),
              "a float tensor converts to fp32");
    }
  }
  volatile uint8_t sink = checksum;
  (void)sink;
  return 0;
}

attune_test::FuzzSetup attune_test::fuzz_setup() {
  FuzzSetup setup;
  setup.seeds = {
      safetensors_file({make_tensor("model.embed_tokens.weight", "BF16", {4, 3}), make_tensor("scale", "F32", {}),
                        make_tensor("ids", "I64", {2}), make_tensor("mask", "BOOL", {3})},
                       R"({"format":"pt"})"),
      safetensors_file({make_tensor("empty", "F16", {0, 5}), make_tensor("h", "F16", {4, 8}),
                        make_tensor("f8", "F8_E4M3", {2, 2}), make_tensor("d", "F64", {1})}),
      safetensors_file({make_tensor("caf\\u00e9 \\ud83d\\ude00", "U8", {5}), make_tensor("i", "I32", {1, 1, 2})},
                       R"({"a":"\n","b":"\u00e9"})"),
      safetensors_file({make_tensor("model.layers.0.self_attn.q_proj.weight", "BF16", {8, 8}),
                        make_tensor("model.layers.0.self_attn.q_proj.bias", "BF16", {8})}),
      safetensors_raw("{}", ""),
      safetensors_raw(R"({"__metadata__":null,"x":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}}  )", "ab"),
  };
  setup.tokens = {"{", "}", "[", "]", ",", ":", "\"", "\\", "\\u0000", "\\ud800", "\\udc00", "\\u00e9",
                  "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "\"F32\"", "\"BF16\"",
                  "\"F8_E5M2\"", "\"BOOL\"", "\"U32\"", "null", "true", "-1", "0", "1e999", "1.5",
                  "18446744073709551615", "9223372036854775807", "-9223372036854775808", "4294967296",
                  "[]", "{}", "[0,0]", "[0,4294967296]", "\"\xFF\"", "\"\xC0\xAF\"", "\"\xED\xA0\x80\"", "    "};
  setup.length_prefixed = true;
  setup.accepted = &accepted;
  return setup;
}
