// What the engine CLI's benchmark commands share: flag parsing, medians, error reporting.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "attune/status.h"

namespace attune {

// "--flag value" pairs after the command name; false (with the offending flag in *bad) when a
// flag is not in `known` or has no value.
inline bool parse_flags(int argc, char** argv, const std::vector<std::string>& known, std::map<std::string, std::string>* out,
                        std::string* bad) {
  for (int i = 2; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (std::find(known.begin(), known.end(), flag) == known.end() || i + 1 >= argc) {
      *bad = flag;
      return false;
    }
    (*out)[flag] = argv[i + 1];
  }
  return true;
}

// Typed reads of parsed flags: each leaves *out as it was when the flag was not given.
struct Flags {
  std::map<std::string, std::string> values;
  void text(const char* flag, std::string* out) const {
    if (auto it = values.find(flag); it != values.end()) *out = it->second;
  }
  void count(const char* flag, int64_t* out) const {
    if (auto it = values.find(flag); it != values.end()) *out = std::atoll(it->second.c_str());
  }
};

inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

inline int fail(const Status& status) {
  std::fprintf(stderr, "attune-engine: %s: %s\n", status_code_name(status.code()), status.message().c_str());
  return 1;
}

}  // namespace attune
