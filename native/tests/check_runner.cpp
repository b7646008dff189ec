#include <cstdio>

#include "check.h"

namespace attune_test {

namespace {
int failures = 0;
}

std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}

void record_failure(const char* file, int line, const char* expression) {
  ++failures;
  std::printf("  FAILED %s:%d: CHECK(%s)\n", file, line, expression);
}

int run_registered_tests() {
  int failed_tests = 0;
  for (const auto& test : registry()) {
    const int before = failures;
    test.run();
    const bool passed = failures == before;
    failed_tests += passed ? 0 : 1;
    std::printf("%s %s\n", passed ? "ok  " : "FAIL", test.name);
  }
  std::printf("%zu tests, %d failed\n", registry().size(), failed_tests);
  return failed_tests == 0 ? 0 : 1;
}

}  // namespace attune_test
