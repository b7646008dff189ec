#include <string>
#include <vector>

#include "check.h"
#include "io/model_weights.h"
#include "safetensors_writer.h"
#include "status_matchers.h"
#include "temp_dir.h"

using attune::ModelWeights;
using attune::TensorView;
using attune_test::fails_with;
using attune_test::make_tensor;
using attune_test::safetensors_file;
using attune_test::succeeds;
using attune_test::TempDir;

namespace {

constexpr const char* kShard1 = "model-00001-of-00002.safetensors";
constexpr const char* kShard2 = "model-00002-of-00002.safetensors";

// Two shards: "a" and "b" in the first, "c" in the second.
void write_shards(const TempDir& dir) {
  dir.write(kShard1, safetensors_file({make_tensor("a", "F32", {2, 3}), make_tensor("b", "BF16", {4})}));
  dir.write(kShard2, safetensors_file({make_tensor("c", "F16", {5})}));
}

std::string index_json(const std::string& weight_map) {
  return R"({"metadata": {"total_size": 42}, "weight_map": {)" + weight_map + "}}";
}

const std::string kGoodMap = std::string(R"("a": ")") + kShard1 + R"(", "b": ")" + kShard1 + R"(", "c": ")" + kShard2 + "\"";

}  // namespace

TEST(loads_a_single_file) {
  TempDir dir;
  dir.write("model.safetensors", safetensors_file({make_tensor("w", "F32", {2, 2})}));
  ModelWeights weights;
  CHECK(succeeds(ModelWeights::open(dir.path(), &weights)));
  CHECK(weights.tensor_count() == 1 && weights.files().size() == 1);
  CHECK(weights.file_of("w") == dir.path() + "/model.safetensors");
  CHECK(weights.file_of("x").empty());
  const TensorView* w = nullptr;
  CHECK(succeeds(weights.require("w", {2, 2}, &w)) && w == weights.find("w"));
  CHECK(fails_with(weights.require("w", {4}, &w),
                   dir.path() + "/model.safetensors: tensor \"w\" has shape [2, 2]; expected [4]"));
  CHECK(fails_with(weights.require("lm_head.weight", {4}, &w),
                   dir.path() + ": the model's weights have no tensor \"lm_head.weight\""));
}

TEST(loads_shards_through_the_index) {
  TempDir dir;
  write_shards(dir);
  dir.write("model.safetensors.index.json", index_json(kGoodMap));
  ModelWeights weights;
  CHECK(succeeds(ModelWeights::open(dir.path(), &weights)));
  CHECK(weights.tensor_count() == 3 && weights.files().size() == 2);
  CHECK(weights.file_of("a") == dir.path() + "/" + kShard1);
  CHECK(weights.file_of("c") == dir.path() + "/" + kShard2);
  const TensorView* c = nullptr;
  CHECK(succeeds(weights.require("c", {5}, &c)) && c->dtype == attune::DType::kF16);
  CHECK(fails_with(weights.require("c", {6}, &c), std::string(kShard2) + ": tensor \"c\" has shape [5]; expected [6]"));
}

TEST(prefers_the_single_file_as_transformers_does) {
  TempDir dir;
  dir.write("model.safetensors", safetensors_file({make_tensor("only", "F32", {1})}));
  dir.write("model.safetensors.index.json", "not even json");
  ModelWeights weights;
  CHECK(succeeds(ModelWeights::open(dir.path(), &weights)));
  CHECK(weights.find("only") != nullptr);
}

TEST(reports_a_missing_shard) {
  TempDir dir;
  dir.write(kShard1, safetensors_file({make_tensor("a", "F32", {2, 3}), make_tensor("b", "BF16", {4})}));
  dir.write("model.safetensors.index.json", index_json(kGoodMap));
  ModelWeights weights;
  CHECK(fails_with(ModelWeights::open(dir.path(), &weights), "Could not open " + dir.path() + "/" + kShard2));
  CHECK(fails_with(ModelWeights::open(dir.path(), &weights),
                   "(a shard named by " + dir.path() + "/model.safetensors.index.json)"));
}

TEST(refuses_shard_names_that_leave_the_folder) {
  TempDir dir;
  write_shards(dir);
  for (const char* name : {"../model.safetensors", "/etc/passwd", "sub/x.safetensors", "..\\\\x.safetensors",
                           "C:x.safetensors", "..", ".", ""}) {
    dir.write("model.safetensors.index.json", index_json(std::string(R"("a": ")") + name + "\""));
    ModelWeights weights;
    CHECK(fails_with(ModelWeights::open(dir.path(), &weights),
                     "which is not a plain file name; shards must be files inside the model folder"));
  }
}

TEST(checks_that_the_index_agrees_with_the_shards) {
  TempDir dir;
  write_shards(dir);
  const std::string index = dir.path() + "/model.safetensors.index.json";
  ModelWeights weights;
  dir.write("model.safetensors.index.json", index_json(kGoodMap + R"(, "d": ")" + kShard2 + "\""));
  CHECK(fails_with(ModelWeights::open(dir.path(), &weights),
                   index + " puts tensor \"d\" in " + kShard2 + ", but " + dir.path() + "/" + kShard2 +
                       " does not contain it (no shard has it)"));
  dir.write("model.safetensors.index.json",
            index_json(std::string(R"("a": ")") + kShard2 + R"(", "c": ")" + kShard1 + "\""));
  CHECK(fails_with(ModelWeights::open(dir.path(), &weights),
                   "puts tensor \"a\" in " + std::string(kShard2) + ", but " + dir.path() + "/" + kShard2 +
                       " does not contain it (it is in " + dir.path() + "/" + kShard1 + ")"));
}

TEST(refuses_a_tensor_in_two_shards) {
  TempDir dir;
  write_shards(dir);
  dir.write(kShard2, safetensors_file({make_tensor("c", "F16", {5}), make_tensor("a", "F32", {2, 3})}));
  dir.write("model.safetensors.index.json", index_json(kGoodMap));
  ModelWeights weights;
  CHECK(fails_with(ModelWeights::open(dir.path(), &weights),
                   "Tensor \"a\" is in both " + dir.path() + "/" + kShard1 + " and " + dir.path() + "/" + kShard2));
}

TEST(refuses_a_malformed_index) {
  TempDir dir;
  write_shards(dir);
  const std::string index = dir.path() + "/model.safetensors.index.json";
  ModelWeights weights;
  dir.write("model.safetensors.index.json", "{\"weight_map\": {\"a\": ");
  CHECK(fails_with(ModelWeights::open(dir.path(), &weights), index + ": invalid JSON at byte 21"));
  dir.write("model.safetensors.index.json", "{\"metadata\": {}}");
  CHECK(fails_with(ModelWeights::open(dir.path(), &weights),
                   index + ": \"weight_map\" must be an object mapping tensor names to shard files"));
  dir.write("model.safetensors.index.json", "{\"weight_map\": {\"a\": 1}}");
  CHECK(fails_with(ModelWeights::open(dir.path(), &weights), index + ": weight_map[\"a\"] must be a file name, not a number"));
}

TEST(reports_a_missing_folder_or_weights) {
  TempDir dir;
  ModelWeights weights;
  CHECK(fails_with(ModelWeights::open(dir.path(), &weights),
                   "No model.safetensors or model.safetensors.index.json in " + dir.path() +
                       "; Attune loads weights in safetensors format only"));
  CHECK(fails_with(ModelWeights::open(dir.path() + "/nowhere", &weights),
                   "The model folder " + dir.path() + "/nowhere does not exist or is not a folder"));
  dir.write("model.safetensors", "short");
  CHECK(fails_with(ModelWeights::open(dir.path(), &weights), dir.path() + "/model.safetensors: the file is 5 bytes"));
}

TEST(joins_paths_with_one_separator) {
  CHECK(attune::join_path("a", "b") == "a/b");
  CHECK(attune::join_path("a/", "b") == "a/b");
  CHECK(attune::join_path("a\\", "b") == "a\\b");
}
