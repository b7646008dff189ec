#include <cmath>
#include <vector>

#include "backend.h"
#include "check.h"

namespace {

// c[m,n] = a[m,k] · b[k,n] in double: the reference the blocked, threaded kernel must match.
std::vector<float> naive_matmul(const std::vector<float>& a, const std::vector<float>& b, int m, int k, int n) {
  std::vector<float> c(static_cast<size_t>(m) * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double sum = 0;
      for (int p = 0; p < k; ++p) sum += static_cast<double>(a[i * k + p]) * b[p * n + j];
      c[i * n + j] = static_cast<float>(sum);
    }
  return c;
}

std::vector<float> pseudo_random(size_t count, unsigned seed) {
  std::vector<float> values(count);
  for (auto& v : values) {
    seed = seed * 1664525u + 1013904223u;  // LCG: deterministic, no <random> distribution differences
    v = static_cast<float>(seed >> 8) / static_cast<float>(1u << 24) * 2.0f - 1.0f;
  }
  return values;
}

// Largest |x - ref| / (max |ref| + tiny): a normalised error that does not blow up near zero.
double normalised_error(const std::vector<float>& x, const std::vector<float>& ref) {
  double max_diff = 0, max_ref = 1e-30;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) return INFINITY;
    max_diff = std::fmax(max_diff, std::fabs(static_cast<double>(x[i]) - ref[i]));
    max_ref = std::fmax(max_ref, std::fabs(static_cast<double>(ref[i])));
  }
  return max_diff / max_ref;
}

void check_shape(int m, int k, int n, unsigned threads) {
  const auto a = pseudo_random(static_cast<size_t>(m) * k, 1);
  const auto b = pseudo_random(static_cast<size_t>(k) * n, 2);
  std::vector<float> c(static_cast<size_t>(m) * n, 123.0f);  // garbage: the kernel must overwrite it
  auto backend = attune::make_cpu_backend(threads);
  CHECK(backend->matmul_f32(a.data(), b.data(), c.data(), m, k, n).ok());
  CHECK(normalised_error(c, naive_matmul(a, b, m, k, n)) < 1e-5);
}

}  // namespace

TEST(cpu_backend_is_named_cpu) { CHECK(std::string(attune::make_cpu_backend(1)->name()) == "cpu"); }

TEST(matches_reference_on_odd_shapes_single_thread) { check_shape(37, 131, 53, 1); }

TEST(matches_reference_across_block_edges_multithreaded) {
  // k and n cross the 64 / 256 block sizes; more threads than rows in the last case.
  check_shape(67, 129, 300, 4);
  check_shape(3, 70, 257, 8);
}

TEST(degenerate_shapes) {
  check_shape(1, 1, 1, 2);
  check_shape(5, 0, 4, 2);  // k = 0: c is all zeros
  auto backend = attune::make_cpu_backend(2);
  float dummy = 0;
  CHECK(backend->matmul_f32(&dummy, &dummy, &dummy, 0, 3, 3).ok());
  CHECK(backend->matmul_f32(&dummy, &dummy, &dummy, -1, 3, 3).code() == attune::StatusCode::kInvalidArgument);
}
