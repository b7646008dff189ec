// Reading the golden data of test/golden (made by transformers + peft): its JSON files and the
// folders of the golden models. Shared by the CPU and GPU tests that compare against it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/json.h"

namespace attune_test {

// Parses the JSON file at `path`; false (after printing the path and the parse error) when it
// cannot be read or parsed.
bool read_json(const std::string& path, attune::json::Value* out);

// The golden model folders (those holding a reference.json), sorted.
std::vector<std::string> golden_model_dirs();

// A JSON array of integers (token ids, labels) as int32.
std::vector<int32_t> ints(const attune::json::Value& array);

}  // namespace attune_test
