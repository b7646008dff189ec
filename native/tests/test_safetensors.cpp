#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "io/safetensors.h"
#include "safetensors_writer.h"
#include "status_matchers.h"
#include "temp_dir.h"

using attune::DType;
using attune::SafetensorsFile;
using attune::Status;
using attune::TensorView;
using attune_test::fails_with;
using attune_test::make_tensor;
using attune_test::safetensors_file;
using attune_test::safetensors_raw;
using attune_test::succeeds;

namespace {

Status parse(const std::string& bytes, SafetensorsFile* file) {
  return SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "w.safetensors", file);
}

Status parse(const std::string& bytes) {
  SafetensorsFile file;
  return parse(bytes, &file);
}

// A header with one F32 tensor "t" of shape [2] (8 bytes) whose entry is `entry`, and a buffer of
// `buffer_bytes` bytes.
std::string one_tensor(const std::string& entry, size_t buffer_bytes = 8) {
  return safetensors_raw("{\"t\":" + entry + "}", std::string(buffer_bytes, '\0'));
}

}  // namespace

TEST(reads_tensors_metadata_and_data) {
  const std::vector<attune_test::TestTensor> tensors = {
      make_tensor("model.embed_tokens.weight", "BF16", {4, 3}),
      make_tensor("scale", "F32", {}),
      make_tensor("empty", "F16", {0, 5}),
      make_tensor("ids", "I64", {2}),
  };
  const std::string bytes = safetensors_file(tensors, R"({"format":"pt","note":"\u00e9"})");
  SafetensorsFile file;
  CHECK(succeeds(parse(bytes, &file)));
  CHECK(file.source() == "w.safetensors");
  CHECK(file.tensors().size() == 4);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorView& view = file.tensors()[i];
    CHECK(view.name == tensors[i].name);
    CHECK(view.shape == tensors[i].shape);
    CHECK(view.nbytes == tensors[i].data.size());
    CHECK(std::memcmp(view.data, tensors[i].data.data(), view.nbytes) == 0);
  }
  const TensorView* embed = file.find("model.embed_tokens.weight");
  CHECK(embed != nullptr && embed->dtype == DType::kBF16 && embed->numel() == 12);
  CHECK(file.find("scale")->numel() == 1 && file.find("scale")->nbytes == 4);
  CHECK(file.find("empty")->numel() == 0 && file.find("empty")->nbytes == 0);
  CHECK(file.find("missing") == nullptr);
  CHECK(file.metadata().size() == 2);
  CHECK(file.metadata()[0].first == "format" && file.metadata()[0].second == "pt");
  CHECK(file.metadata()[1].second == "\xC3\xA9");
}

TEST(accepts_an_empty_file_and_null_metadata) {
  CHECK(succeeds(parse(safetensors_raw("{}", ""))));
  CHECK(succeeds(parse(safetensors_raw("{\"__metadata__\":null}", ""))));
  CHECK(succeeds(parse(safetensors_raw("  {}  ", ""))));  // safetensors pads headers with spaces
}

TEST(dtype_names_and_sizes) {
  const char* names[] = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"};
  const size_t sizes[] = {8, 4, 2, 2, 8, 4, 2, 1, 1, 1, 1, 1};
  for (size_t i = 0; i < 12; ++i) {
    DType dtype = DType::kF32;
    CHECK(attune::dtype_from_name(names[i], &dtype));
    CHECK(std::string(attune::dtype_name(dtype)) == names[i]);
    CHECK(attune::dtype_size(dtype) == sizes[i]);
    // Every dtype round-trips through a file.
    CHECK(succeeds(parse(safetensors_file({make_tensor("x", names[i], {3})}))));
  }
  DType unchanged = DType::kF32;
  CHECK(!attune::dtype_from_name("U32", &unchanged) && unchanged == DType::kF32);
  CHECK(attune::shape_to_string({4096, 128}) == "[4096, 128]" && attune::shape_to_string({}) == "[]");
}

TEST(refuses_a_bad_header_length) {
  CHECK(fails_with(parse("abc"), "w.safetensors: the file is 3 bytes, too short for safetensors"));
  std::string huge = safetensors_raw("{}", "");
  huge[3] = 0x10;  // 0x10000002 bytes: over 100 MB
  CHECK(fails_with(parse(huge), "w.safetensors: the header length is 268435458 bytes, over safetensors' limit of 100 MB"));
  std::string at_limit = safetensors_raw("{}", "");
  const uint64_t limit = attune::kSafetensorsMaxHeaderBytes;
  for (int i = 0; i < 8; ++i) at_limit[i] = static_cast<char>((limit >> (8 * i)) & 0xFF);
  CHECK(fails_with(parse(at_limit), "over safetensors' limit"));
  std::string past = safetensors_raw("{}", "");
  past[0] = 3;
  CHECK(fails_with(parse(past), "w.safetensors: the header length is 3 bytes but only 2 follow it"));
  std::string max = safetensors_raw("{}", "");
  for (int i = 0; i < 8; ++i) max[i] = '\xFF';
  CHECK(fails_with(parse(max), "over safetensors' limit"));
}

TEST(refuses_a_header_that_is_not_a_json_object) {
  CHECK(fails_with(parse(safetensors_raw("{\"t\":", "")), "w.safetensors: the header is not valid JSON: invalid JSON at byte 5"));
  CHECK(fails_with(parse(safetensors_raw("", "")), "the header is not valid JSON"));
  CHECK(fails_with(parse(safetensors_raw("[]", "")), "w.safetensors: the header must be a JSON object, not an array"));
  CHECK(fails_with(parse(safetensors_raw("{\"a\":1,\"a\":2}", "")), "duplicate key \"a\""));
  CHECK(fails_with(parse(safetensors_raw("{\"\xFF\":1}", "")), "invalid UTF-8"));
}

TEST(refuses_bad_entries_naming_the_tensor) {
  CHECK(fails_with(parse(one_tensor("[]")),
                   "w.safetensors: tensor \"t\" must be an object with dtype, shape and data_offsets, not an array"));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F33","shape":[2],"data_offsets":[0,8]})")),
                   "w.safetensors: tensor \"t\": field \"dtype\" is \"F33\", which Attune does not read"));
  CHECK(fails_with(parse(one_tensor(R"({"shape":[2],"data_offsets":[0,8]})")),
                   "tensor \"t\": field \"dtype\" is missing"));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":32,"shape":[2],"data_offsets":[0,8]})")),
                   "tensor \"t\": field \"dtype\" must be a string, not a number"));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1})")),
                   "w.safetensors: tensor \"t\": unexpected field \"extra\""));
}

TEST(refuses_bad_shapes) {
  const std::string message = "tensor \"t\": field \"shape\" must be an array of non-negative integers";
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})")), message));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})")), message));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})")), message));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})")), message));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","data_offsets":[0,8]})")), message));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]})")), message));
}

TEST(refuses_bad_offsets) {
  const std::string message = "tensor \"t\": field \"data_offsets\" must be [begin, end]: two non-negative integers";
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8,8]})")), message));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0]})")), message));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":["0","8"]})")), message));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})")), message));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8.0]})")), message));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":{"begin":0}})")), message));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2]})")), message));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})")),
                   "w.safetensors: tensor \"t\": data_offsets [8, 0) end before they begin"));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 4)),
                   "w.safetensors: tensor \"t\": data_offsets [0, 8) run past the end of the data buffer (4 bytes)"));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,9223372036854775807]})")),
                   "run past the end of the data buffer (8 bytes)"));
}

TEST(refuses_a_size_that_does_not_match_the_shape) {
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,8]})")),
                   "w.safetensors: tensor \"t\": shape [2, 3] × F32 is 24 bytes but data_offsets [0, 8) hold 8"));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"BF16","shape":[2],"data_offsets":[0,8]})")),
                   "shape [2] × BF16 is 4 bytes but data_offsets [0, 8) hold 8"));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[4294967296],"data_offsets":[0,8]})")),
                   "shape [4294967296] × F32 is 17179869184 bytes but data_offsets [0, 8) hold 8"));
  // A byte count that overflows 64 bits must not wrap around to a small number that matches.
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]})", 0)),
                   "is more than 2^64 bytes but data_offsets [0, 0) hold 0"));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]})")),
                   "shape [4294967296, 4294967296, 4] × F32 is more than 2^64 bytes"));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]})")),
                   "is more than 2^64 bytes"));
}

TEST(refuses_overlap_and_holes) {
  const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  CHECK(fails_with(parse(safetensors_raw("{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                         std::string(12, '\0'))),
                   "w.safetensors: tensors \"a\" and \"b\" overlap (data_offsets [0, 8) and [4, 12))"));
  CHECK(fails_with(parse(safetensors_raw("{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                         std::string(8, '\0'))),
                   "tensors \"a\" and \"b\" overlap"));
  // A zero-size tensor may sit at a boundary, not inside another tensor.
  CHECK(succeeds(parse(safetensors_raw("{" + a + R"(,"z":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}})",
                                       std::string(8, '\0')))));
  CHECK(fails_with(parse(safetensors_raw("{" + a + R"(,"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                                         std::string(8, '\0'))),
                   "tensors \"a\" and \"z\" overlap"));
  CHECK(fails_with(parse(safetensors_raw("{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                                         std::string(20, '\0'))),
                   "w.safetensors: bytes [8, 12) of the data buffer belong to no tensor (a hole between \"a\" and \"b\")"));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[4,12]})", 12)),
                   "bytes [0, 4) of the data buffer belong to no tensor (a hole before the first tensor, \"t\")"));
  CHECK(fails_with(parse(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 11)),
                   "w.safetensors: bytes [8, 11) at the end of the data buffer belong to no tensor"));
  CHECK(fails_with(parse(safetensors_raw("{}", "x")), "bytes [0, 1) at the end of the data buffer belong to no tensor"));
}

TEST(refuses_bad_metadata) {
  CHECK(fails_with(parse(safetensors_raw(R"({"__metadata__":["pt"]})", "")),
                   "w.safetensors: \"__metadata__\" must be an object whose values are strings, not an array"));
  CHECK(fails_with(parse(safetensors_raw(R"({"__metadata__":{"format":"pt","step":3}})", "")),
                   "\"__metadata__\" must be an object whose values are strings; \"step\" is a number"));
}

TEST(opens_files_from_disk) {
  attune_test::TempDir dir;
  const std::string path = dir.write("model.safetensors", safetensors_file({make_tensor("w", "F16", {2, 2})}));
  SafetensorsFile file;
  CHECK(succeeds(SafetensorsFile::open(path, &file)));
  CHECK(file.source() == path);
  CHECK(file.find("w") != nullptr && file.find("w")->nbytes == 8);
  // Views survive moving the file object: the mapping does not move.
  SafetensorsFile moved = std::move(file);
  CHECK(moved.find("w")->data[0] == static_cast<uint8_t>(make_tensor("w", "F16", {2, 2}).data[0]));

  const std::string broken = dir.write("broken.safetensors", safetensors_raw("{\"t\":1}", ""));
  CHECK(fails_with(SafetensorsFile::open(broken, &file), broken + ": tensor \"t\" must be an object"));
  const std::string empty = dir.write("empty.safetensors", "");
  CHECK(fails_with(SafetensorsFile::open(empty, &file), empty + ": the file is 0 bytes, too short"));
  CHECK(fails_with(SafetensorsFile::open(dir.path() + "/absent.safetensors", &file),
                   "Could not open " + dir.path() + "/absent.safetensors: "));
#ifndef _WIN32
  // The OS's words; Windows words them its own way.
  CHECK(fails_with(SafetensorsFile::open(dir.path() + "/absent.safetensors", &file), "No such file or directory"));
  CHECK(fails_with(SafetensorsFile::open(dir.path(), &file), "Could not map " + dir.path() + ": it is not a regular file"));
#endif
}
