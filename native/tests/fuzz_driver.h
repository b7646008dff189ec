// Runs a libFuzzer target (LLVMFuzzerTestOneInput) without libFuzzer: a fixed-seed stream of
// mutated inputs (bit flips, byte edits, truncations, deletions, duplications, token and seed
// splices, length-prefix edits), so ctest runs the same inputs on every run and every compiler.
// A target reports a broken invariant by aborting, as libFuzzer expects; the sanitizers abort on
// an out-of-bounds read or undefined behaviour.
//
//   fuzz_<target> [iterations=20000] [seed=1]
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace attune_test {

struct FuzzSetup {
  std::vector<std::string> seeds;   // valid inputs to mutate
  std::vector<std::string> tokens;  // spliced into inputs: syntax, field names, extreme numbers
  // The input starts with an 8-byte little-endian length of the region after it (safetensors):
  // edits inside that region usually fix the length up too, so they get past the length check.
  bool length_prefixed = false;
  const size_t* accepted = nullptr;  // the target's count of inputs it accepted, for the summary
};

// Defined by each fuzz target.
FuzzSetup fuzz_setup();

}  // namespace attune_test

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
