// Finite-difference gradient checks for the backward ops and adapter layers.
//
// The forward ops run in fp32, so the checks differentiate a scalar loss L = Σ_i w_i·y_i (random
// weights w, the sum taken in double) by central differences: every input element is perturbed by
// ±h, (L+ − L−)/(x+ − x−) is compared with the analytic gradient (x± are the fp32 values actually
// stored, so the step itself carries no rounding). With h ≈ 1e-3…1e-2 on O(1) values, the fp32
// rounding of L (~1e-7·|L|) and the truncation (~h²·L''') both stay around 1e-4 of the gradient.
//
// The error of a gradient is max(‖g − fd‖₂/‖fd‖₂, max_i |g_i − fd_i| / max_i |fd_i|): a norm
// error (catches a gradient wrong everywhere by a little) and a worst-element error relative to
// the largest element (catches one wrong element, without dividing by near-zero elements). Each
// check also proves it has teeth: the same error of the analytic gradient scaled by 1.01, and of
// the analytic gradient with its largest element moved by 2%, must both exceed the tolerance.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <vector>

#include "check.h"

namespace attune_test {

// n deterministic values in [lo, hi) (an LCG: the same on every platform).
inline std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> values(n);
  uint32_t state = seed * 2654435761u + 12345u;
  for (auto& v : values) {
    state = state * 1664525u + 1013904223u;
    v = lo + (hi - lo) * static_cast<float>(state >> 8) / static_cast<float>(1u << 24);
  }
  return values;
}

// Σ_i w_i·y_i in double.
inline double weighted_sum(const float* y, const std::vector<float>& w) {
  double sum = 0;
  for (size_t i = 0; i < w.size(); ++i) sum += static_cast<double>(w[i]) * y[i];
  return sum;
}

// Central differences of loss() with respect to each element of param (perturbed in place, then
// restored exactly).
inline std::vector<double> numeric_gradient(float* param, size_t n, const std::function<double()>& loss, float h) {
  std::vector<double> grad(n);
  for (size_t i = 0; i < n; ++i) {
    const float saved = param[i];
    const float plus = saved + h, minus = saved - h;
    param[i] = plus;
    const double l_plus = loss();
    param[i] = minus;
    const double l_minus = loss();
    param[i] = saved;
    grad[i] = (l_plus - l_minus) / (static_cast<double>(plus) - static_cast<double>(minus));
  }
  return grad;
}

// The error defined above of `analytic` against `numeric`.
inline double gradient_error(const std::vector<double>& analytic, const std::vector<double>& numeric) {
  double diff2 = 0, ref2 = 0, max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < numeric.size(); ++i) {
    const double d = analytic[i] - numeric[i];
    diff2 += d * d;
    ref2 += numeric[i] * numeric[i];
    max_diff = std::max(max_diff, std::fabs(d));
    max_ref = std::max(max_ref, std::fabs(numeric[i]));
  }
  if (max_ref == 0) return max_diff == 0 ? 0.0 : INFINITY;
  return std::max(std::sqrt(diff2 / ref2), max_diff / max_ref);
}

struct GradientCheck {
  double error = 0;          // of the analytic gradient
  double scaled_error = 0;   // of 1.01 × the analytic gradient (must exceed the tolerance)
  double element_error = 0;  // of the analytic gradient with its largest element × 1.02 (likewise)
  double max_abs = 0;        // max |fd|, to see the check is not of a zero gradient
};

// Checks analytic (the gradient of loss() with respect to param[0..n)) against central differences
// with step h: CHECKs error ≤ tol, that both mutations exceed tol, and that the gradient is not
// all zeros; prints one line with the measured errors.
inline GradientCheck check_gradient(const char* name, float* param, const float* analytic, size_t n,
                                    const std::function<double()>& loss, float h = 1e-3f, double tol = 3e-3) {
  const std::vector<double> numeric = numeric_gradient(param, n, loss, h);
  std::vector<double> got(analytic, analytic + n);
  GradientCheck result;
  result.error = gradient_error(got, numeric);
  for (double v : numeric) result.max_abs = std::max(result.max_abs, std::fabs(v));
  std::vector<double> scaled(got);
  for (double& v : scaled) v *= 1.01;
  result.scaled_error = gradient_error(scaled, numeric);
  std::vector<double> bumped(got);
  size_t largest = 0;
  for (size_t i = 0; i < n; ++i) largest = std::fabs(got[i]) > std::fabs(got[largest]) ? i : largest;
  if (n > 0) bumped[largest] *= 1.02;
  result.element_error = gradient_error(bumped, numeric);
  std::printf("  %-44s n=%-4zu h=%.0e  error %.2e  (tol %.0e; x1.01 → %.2e, one element x1.02 → %.2e; max|g| %.3g)\n",
              name, n, static_cast<double>(h), result.error, tol, result.scaled_error, result.element_error,
              result.max_abs);
  CHECK(result.error <= tol);
  CHECK(result.scaled_error > tol);
  CHECK(result.element_error > tol);
  CHECK(result.max_abs > 0);
  return result;
}

inline GradientCheck check_gradient(const char* name, std::vector<float>& param, const std::vector<float>& analytic,
                                    const std::function<double()>& loss, float h = 1e-3f, double tol = 3e-3) {
  CHECK(param.size() == analytic.size());
  return check_gradient(name, param.data(), analytic.data(), param.size(), loss, h, tol);
}

// max |a − b| / max |b|: for comparisons against a double reference.
inline double relative_max_error(const float* a, const std::vector<double>& b) {
  double max_diff = 0, max_ref = 1e-300;
  for (size_t i = 0; i < b.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    max_ref = std::max(max_ref, std::fabs(b[i]));
  }
  return max_diff / max_ref;
}

}  // namespace attune_test
