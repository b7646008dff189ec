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

}  // namespace attune_test

int main() {
  int failed_tests = 0;
  for (const auto& test : attune_test::registry()) {
    const int before = attune_test::failures;
    test.run();
    const bool passed = attune_test::failures == before;
    failed_tests += passed ? 0 : 1;
    std::printf("%s %s\n", passed ? "ok  " : "FAIL", test.name);
  }
  std::printf("%zu tests, %d failed\n", attune_test::registry().size(), failed_tests);
  return failed_tests == 0 ? 0 : 1;
}
