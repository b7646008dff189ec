// A tiny test harness: TEST(name) { CHECK(...); } registers a test; check_main.cpp runs every test
// of the executable and exits non-zero if any CHECK failed. A failed CHECK reports and continues.
#pragma once

#include <cstdio>
#include <vector>

namespace attune_test {

struct TestCase {
  const char* name;
  void (*run)();
};

std::vector<TestCase>& registry();
void record_failure(const char* file, int line, const char* expression);

// Runs every registered test, prints one line per test and a summary; 0 when all passed, else 1.
int run_registered_tests();

struct Registrar {
  Registrar(const char* name, void (*run)()) { registry().push_back({name, run}); }
};

}  // namespace attune_test

#define TEST(name)                                                     \
  static void name();                                                  \
  static const attune_test::Registrar name##_registrar(#name, &name); \
  static void name()

#define CHECK(condition) \
  ((condition) ? (void)0 : attune_test::record_failure(__FILE__, __LINE__, #condition))
