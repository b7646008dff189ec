// CHECK(fails_with(status, "text")): the status is an error whose message contains `text`. On a
// mismatch it prints the actual message, which is what one needs to see to fix the test or the code.
#pragma once

#include <cstdio>
#include <string>

#include "attune/status.h"

namespace attune_test {

inline bool fails_with(const attune::Status& status, const std::string& text) {
  if (status.ok()) {
    std::printf("  expected an error containing: %s\n  but the status is ok\n", text.c_str());
    return false;
  }
  if (status.message().find(text) == std::string::npos) {
    std::printf("  expected an error containing: %s\n  actual message: %s\n", text.c_str(), status.message().c_str());
    return false;
  }
  return true;
}

inline bool succeeds(const attune::Status& status) {
  if (!status.ok()) std::printf("  unexpected error: %s\n", status.message().c_str());
  return status.ok();
}

}  // namespace attune_test
