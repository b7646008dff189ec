// AVX-512F kernels, for CPUs with 512-bit FMA units (Zen 5, Xeons): twice the AVX2 work per
// instruction. CMake compiles this file alone with -mavx512f (/arch:AVX512); gemm.cpp calls into
// it only after checking the CPU at run time. Without those flags it compiles to nothing.
#include "cpu/gemm_kernels.h"

// MSVC defines no __FMA__ / __F16C__; /arch:AVX512 implies both.
#if defined(__AVX512F__) && defined(__AVX2__) && ((defined(__FMA__) && defined(__F16C__)) || defined(_MSC_VER))

// GCC 12's AVX-512 headers trip its own -Wuninitialized (GCC bug 105593, fixed in 13).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "cpu/gemm_simd.h"

namespace attune::cpu::gemm_detail {

namespace {

struct Avx512 {
  using V = __m512;
  static constexpr int kWidth = 16;
  static constexpr int kRegisters = 32;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static float hsum(V v) {
    // Halve to 256 bits with AVX512F-only instructions (MSVC lacks _mm512_reduce_add_ps).
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  template <WeightType T>
  static V load_w(const void* data, int64_t i) {
    if constexpr (T == WeightType::F32) {
      return _mm512_loadu_ps(static_cast<const float*>(data) + i);
    } else {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(data) + i));
      if constexpr (T == WeightType::BF16) {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      } else {
        return _mm512_cvtph_ps(h);
      }
    }
  }
};

// 12 × 32: 24 accumulators + 2 columns of b + a broadcast, of the 32 zmm registers; 14 loads per
// 24 FMAs leaves the load ports slack.
constexpr int kMr = 12, kNv = 2;

}  // namespace

const Kernels* avx512_kernels() {
  // kc 256 keeps an A panel (kMr × 256 floats) in L1 and a [256, 512] block of B (512 KiB) in a
  // 1 MiB L2; measured best on Zen 5.
  static const Kernels kernels{"avx512", kMr, kNv * Avx512::kWidth, 256, 512, &micro<Avx512, kMr, kNv>,
                               &pack_b<kNv * Avx512::kWidth>, &gemv<Avx512>};
  return &kernels;
}

}  // namespace attune::cpu::gemm_detail

#else

const attune::cpu::gemm_detail::Kernels* attune::cpu::gemm_detail::avx512_kernels() { return nullptr; }

#endif
