// AVX2 + FMA kernels. CMake compiles this file alone with -mavx2 -mfma -mf16c (/arch:AVX2); gemm.cpp
// calls into it only after checking the CPU at run time. Without those flags it compiles to nothing.
#include "cpu/gemm_kernels.h"

// MSVC defines no __FMA__ / __F16C__; /arch:AVX2 implies both.
#if defined(__AVX2__) && ((defined(__FMA__) && defined(__F16C__)) || defined(_MSC_VER))

#include "cpu/gemm_simd.h"

namespace attune::cpu::gemm_detail {

namespace {

struct Avx2 {
  using V = __m256;
  static constexpr int kWidth = 8;
  static constexpr int kRegisters = 16;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  template <WeightType T>
  static V load_w(const void* data, int64_t i) { return load8<T>(data, i); }
};

// 6 × 16: 12 accumulators + 2 columns of b + 1 broadcast of a fill 15 of the 16 ymm registers.
constexpr int kMr = 6, kNv = 2;

}  // namespace

const Kernels* avx2_kernels() {
  // kc 256 keeps an A panel (kMr × 256 floats) in L1 and a [256, 512] block of B (512 KiB) in a
  // 1 MiB L2; measured best on Zen 5.
  static const Kernels kernels{"avx2", kMr, kNv * Avx2::kWidth, 256, 512, &micro<Avx2, kMr, kNv>,
                               &pack_b<kNv * Avx2::kWidth>, &gemv<Avx2>};
  return &kernels;
}

}  // namespace attune::cpu::gemm_detail

#else

const attune::cpu::gemm_detail::Kernels* attune::cpu::gemm_detail::avx2_kernels() { return nullptr; }

#endif
