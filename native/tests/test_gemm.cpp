#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <vector>

#include "check.h"
#include "cpu/gemm.h"
#include "cpu/gemm_convert.h"

namespace {

using attune::cpu::SimdPath;
using attune::cpu::ThreadPool;
using attune::cpu::WeightType;

std::vector<float> pseudo_random(size_t count, unsigned seed) {
  std::vector<float> values(count);
  for (auto& v : values) {
    seed = seed * 1664525u + 1013904223u;  // LCG: deterministic on every platform
    v = static_cast<float>(seed >> 8) / static_cast<float>(1u << 24) * 2.0f - 1.0f;
  }
  return values;
}

// f16 decoded by arithmetic, independently of the bit manipulation under test.
double f16_reference(uint16_t h) {
  const int exponent = (h >> 10) & 0x1f;
  const double mantissa = h & 0x3ff;
  const double magnitude = exponent == 0 ? std::ldexp(mantissa, -24) : std::ldexp(1024 + mantissa, exponent - 25);
  return (h & 0x8000) ? -magnitude : magnitude;
}

// A weight matrix in a file dtype, with the exact values it decodes to.
struct Weights {
  WeightType type;
  std::vector<uint8_t> bytes;
  std::vector<double> values;
  const void* data() const { return bytes.data(); }
};

Weights make_weights(WeightType type, size_t count, unsigned seed) {
  const auto source = pseudo_random(count, seed);
  Weights w{type, {}, std::vector<double>(count)};
  w.bytes.resize(count * (type == WeightType::F32 ? 4 : 2));
  for (size_t i = 0; i < count; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &source[i], 4);
    if (type == WeightType::F32) {
      std::memcpy(&w.bytes[i * 4], &source[i], 4);
      w.values[i] = source[i];
      continue;
    }
    uint16_t h;
    if (type == WeightType::BF16) {
      h = static_cast<uint16_t>(bits >> 16);  // truncation: any bf16 will do
      const uint32_t back = static_cast<uint32_t>(h) << 16;
      float f;
      std::memcpy(&f, &back, 4);
      w.values[i] = f;
    } else {
      h = static_cast<uint16_t>(bits & 0xbfffu);  // random bits, exponent < 31: finite, subnormals included
      w.values[i] = f16_reference(h);
    }
    std::memcpy(&w.bytes[i * 2], &h, 2);
  }
  return w;
}

// Fails unless every |got - want| ≤ 1e-5·√K · max |want| (fp32 rounding grows like √K).
void check_close(const std::vector<float>& got, const std::vector<double>& want, int64_t K, const char* what) {
  double max_diff = 0, max_want = 1e-30;
  bool finite = true;
  for (size_t i = 0; i < got.size(); ++i) {
    finite = finite && std::isfinite(got[i]);
    max_diff = std::fmax(max_diff, std::fabs(got[i] - want[i]));
    max_want = std::fmax(max_want, std::fabs(want[i]));
  }
  const bool ok = finite && max_diff <= 1e-5 * std::sqrt(static_cast<double>(std::max<int64_t>(K, 1))) * max_want;
  if (!ok) std::printf("  %s: max diff %g, max value %g, K %lld\n", what, max_diff, max_want, static_cast<long long>(K));
  CHECK(ok);
}

// Runs fn once per kernel path this CPU has, each forced, then restores the automatic choice.
void for_each_path(const std::function<void()>& fn) {
  for (SimdPath path : {SimdPath::kGeneric, SimdPath::kAvx2, SimdPath::kAvx512}) {
    if (!attune::cpu::force_simd_path(path)) continue;
    fn();
  }
  CHECK(attune::cpu::force_simd_path(SimdPath::kAuto));
}

const WeightType kTypes[] = {WeightType::F32, WeightType::BF16, WeightType::F16};

void check_linear(ThreadPool& pool, WeightType type, int64_t T, int64_t in, int64_t out, bool bias, bool accumulate) {
  const auto x = pseudo_random(static_cast<size_t>(T * in), 1);
  const auto w = make_weights(type, static_cast<size_t>(out * in), 2);
  const auto b = pseudo_random(static_cast<size_t>(out), 3);
  auto y = pseudo_random(static_cast<size_t>(T * out), 4);
  std::vector<double> want(y.size());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double sum = (accumulate ? y[t * out + o] : 0.0) + (bias ? b[o] : 0.0);
      for (int64_t i = 0; i < in; ++i) sum += static_cast<double>(x[t * in + i]) * w.values[o * in + i];
      want[t * out + o] = sum;
    }
  attune::cpu::linear(pool, x.data(), w.data(), type, bias ? b.data() : nullptr, y.data(), T, in, out, accumulate);
  char what[160];
  std::snprintf(what, sizeof what, "linear %s type %d T %lld in %lld out %lld bias %d acc %d", attune::cpu::simd_path_name(),
                static_cast<int>(type), static_cast<long long>(T), static_cast<long long>(in),
                static_cast<long long>(out), bias, accumulate);
  check_close(y, want, in, what);
}

void check_gemm(ThreadPool& pool, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta, int64_t pad) {
  // op(A)[M,K], op(B)[K,N], C[M,N], each stored with `pad` extra columns.
  const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  const auto A = pseudo_random(static_cast<size_t>((ta ? K : M) * lda), 5);
  const auto B = pseudo_random(static_cast<size_t>((tb ? N : K) * ldb), 6);
  auto C = pseudo_random(static_cast<size_t>(M * ldc), 7);
  if (beta == 0.0f) C.assign(C.size(), NAN);  // beta = 0 must not read C
  std::vector<double> want(C.size());
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      if (j >= N) {  // the padding is never touched
        want[i * ldc + j] = C[i * ldc + j];
        continue;
      }
      double sum = 0;
      for (int64_t k = 0; k < K; ++k)
        sum += static_cast<double>(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
      want[i * ldc + j] = alpha * sum + (beta == 0.0f ? 0.0 : beta * static_cast<double>(C[i * ldc + j]));
    }
  attune::cpu::gemm_f32(pool, ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  if (beta == 0.0f && pad > 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = N; j < ldc; ++j) C[i * ldc + j] = 0, want[i * ldc + j] = 0;  // NaN padding
  }
  char what[160];
  std::snprintf(what, sizeof what, "gemm_f32 %s ta %d tb %d M %lld N %lld K %lld alpha %g beta %g pad %lld",
                attune::cpu::simd_path_name(), ta, tb, static_cast<long long>(M), static_cast<long long>(N),
                static_cast<long long>(K), alpha, beta, static_cast<long long>(pad));
  check_close(C, want, K, what);
}

}  // namespace

TEST(every_path_this_cpu_has_can_be_forced) {
  // The generic kernels run everywhere; the log says which SIMD paths the tests below covered.
  CHECK(attune::cpu::force_simd_path(SimdPath::kGeneric));
  CHECK(std::strcmp(attune::cpu::simd_path_name(), "generic") == 0);
  std::printf("  kernel paths tested:");
  for_each_path([] { std::printf(" %s", attune::cpu::simd_path_name()); });
  std::printf("; automatic choice: %s\n", attune::cpu::simd_path_name());
}

TEST(f16_scalar_conversion_matches_arithmetic_decoding) {
  bool all = true;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float got = attune::cpu::gemm_detail::f16_to_f32(static_cast<uint16_t>(h));
    const bool special = ((h >> 10) & 0x1f) == 0x1f;
    if (special) {
      all = all && ((h & 0x3ff) ? std::isnan(got) : std::isinf(got) && std::signbit(got) == ((h & 0x8000) != 0));
    } else {
      all = all && got == f16_reference(static_cast<uint16_t>(h)) && std::signbit(got) == ((h & 0x8000) != 0);
    }
  }
  CHECK(all);
}

TEST(linear_matches_reference_on_odd_shapes) {
  // Decode (T = 1), every row count of one skinny pass (≤ 8), two passes (13), the GEMM (17), with
  // odd sizes around every tile edge.
  ThreadPool pool(2);
  for_each_path([&] {
    int variant = 0;
    for (int64_t T : {1, 2, 3, 4, 5, 6, 7, 8, 13, 17})
      for (int64_t in : {1, 3, 17, 63, 65, 127})
        for (int64_t out : {1, 3, 17, 33, 65, 127}) {
          const WeightType type = kTypes[variant % 3];
          check_linear(pool, type, T, in, out, variant % 2 == 0, variant % 4 == 1);
          ++variant;
        }
  });
}

TEST(linear_covers_every_weight_type_with_bias_and_accumulate) {
  ThreadPool pool(3);
  for_each_path([&] {
    for (WeightType type : kTypes)
      for (int64_t T : {1, 3, 64})
        for (int flags = 0; flags < 4; ++flags) check_linear(pool, type, T, 67, 45, flags & 1, flags & 2);
  });
}

TEST(linear_crosses_cache_blocks) {
  // in > the depth block (256) and not a multiple of it; out > the column block (512); T > one
  // packed-A block of rows (4 MiB / in); a skinny product over several L2 slices of weight rows.
  ThreadPool pool(2);
  for_each_path([&] {
    check_linear(pool, WeightType::BF16, 37, 1000, 70, true, false);
    check_linear(pool, WeightType::F32, 19, 300, 2100, false, true);
    check_linear(pool, WeightType::BF16, 10, 300, 1900, true, true);
    check_linear(pool, WeightType::F16, 600, 2000, 9, false, false);
    check_linear(pool, WeightType::F32, 1, 4099, 130, true, true);
  });
}

TEST(linear_decodes_every_weight_exactly) {
  // x = identity picks the weights out one by one: any conversion error shows as an exact mismatch.
  ThreadPool pool(2);
  for_each_path([&] {
    for (WeightType type : kTypes)
      for (int64_t T : {1, 40}) {
        const int64_t in = 40, out = 35;
        const auto w = make_weights(type, static_cast<size_t>(out * in), 9);
        std::vector<float> x(static_cast<size_t>(T * in), 0.0f), y(static_cast<size_t>(T * out));
        for (int64_t t = 0; t < T; ++t) x[t * in + (t * 7) % in] = 1.0f;
        attune::cpu::linear(pool, x.data(), w.data(), type, nullptr, y.data(), T, in, out);
        bool exact = true;
        for (int64_t t = 0; t < T; ++t)
          for (int64_t o = 0; o < out; ++o) exact = exact && y[t * out + o] == w.values[o * in + (t * 7) % in];
        CHECK(exact);
      }
  });
}

TEST(linear_backward_matches_reference) {
  ThreadPool pool(2);
  for_each_path([&] {
    int variant = 0;
    for (int64_t T : {1, 5, 33})
      for (int64_t in : {3, 65})
        for (int64_t out : {1, 17, 130}) {
          const WeightType type = kTypes[variant % 3];
          const bool accumulate = variant++ % 2 == 1;
          const auto dy = pseudo_random(static_cast<size_t>(T * out), 11);
          const auto x = pseudo_random(static_cast<size_t>(T * in), 12);
          const auto w = make_weights(type, static_cast<size_t>(out * in), 13);
          auto dx = pseudo_random(static_cast<size_t>(T * in), 14);
          auto dw = pseudo_random(static_cast<size_t>(out * in), 15);
          std::vector<double> want_dx(dx.size()), want_dw(dw.size());
          for (int64_t t = 0; t < T; ++t)
            for (int64_t i = 0; i < in; ++i) {
              double sum = accumulate ? dx[t * in + i] : 0.0;
              for (int64_t o = 0; o < out; ++o) sum += static_cast<double>(dy[t * out + o]) * w.values[o * in + i];
              want_dx[t * in + i] = sum;
            }
          for (int64_t o = 0; o < out; ++o)
            for (int64_t i = 0; i < in; ++i) {
              double sum = accumulate ? dw[o * in + i] : 0.0;
              for (int64_t t = 0; t < T; ++t) sum += static_cast<double>(dy[t * out + o]) * x[t * in + i];
              want_dw[o * in + i] = sum;
            }
          attune::cpu::linear_backward_input(pool, dy.data(), w.data(), type, dx.data(), T, in, out, accumulate);
          attune::cpu::linear_backward_weight(pool, dy.data(), x.data(), dw.data(), T, in, out, accumulate);
          check_close(dx, want_dx, out, "linear_backward_input");
          check_close(dw, want_dw, T, "linear_backward_weight");
        }
  });
}

TEST(gemm_f32_matches_reference_for_all_transposes_and_strides) {
  ThreadPool pool(2);
  for_each_path([&] {
    int variant = 0;
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int64_t M : {1, 3, 17, 64})
          for (int64_t N : {1, 16, 33, 127})
            for (int64_t K : {1, 7, 65, 300}) {
              const float alpha = variant % 3 == 0 ? 1.0f : -0.5f;
              const float beta = variant % 3 == 0 ? 0.0f : variant % 3 == 1 ? 1.0f : 0.75f;
              check_gemm(pool, ta, tb, M, N, K, alpha, beta, variant % 2 == 0 ? 0 : 3);
              ++variant;
            }
  });
}

TEST(gemm_f32_edge_cases) {
  ThreadPool pool(3);
  for_each_path([&] {
    check_gemm(pool, false, false, 200, 5, 70, 1.0f, 0.0f, 1);  // few columns: the threads split the rows
    check_gemm(pool, false, true, 5, 4, 0, 1.0f, 0.0f, 2);      // K = 0: C = beta · C
    check_gemm(pool, true, false, 6, 7, 0, 1.0f, 0.5f, 0);
    check_gemm(pool, false, true, 9, 11, 13, 0.0f, 1.0f, 0);    // alpha = 0 leaves beta · C
  });
  float untouched = 42.0f;
  attune::cpu::gemm_f32(pool, false, false, 0, 5, 5, 1.0f, nullptr, 5, nullptr, 5, 0.0f, &untouched, 5);
  CHECK(untouched == 42.0f);
}
