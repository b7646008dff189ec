// The GEMM kernels written once over a SIMD width: included only by gemm_kernels_avx2.cpp and
// gemm_kernels_avx512.cpp, each of which supplies a traits type S:
//   V, kWidth (floats per V), kRegisters (vector registers in the ISA), zero(), load(p),
//   store(p, v), set1(x), fma(a, b, c) = a·b + c, add(a, b), hsum(v),
//   load_w<T>(data, i): kWidth weights of dtype T from element i, converted to fp32.
// Packing uses 8-wide (AVX2) transposes in both: it moves data, the micro-kernel does the maths.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "cpu/gemm_convert.h"
#include "cpu/gemm_kernels.h"

namespace attune::cpu::gemm_detail {
// Internal linkage: every instantiation must stay in the translation unit whose flags built it.
namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// 8 weights of dtype T from element i, as fp32.
template <WeightType T>
inline __m256 load8(const void* data, int64_t i) {
  if constexpr (T == WeightType::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(data) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(data) + i));
    if constexpr (T == WeightType::BF16) {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
      return _mm256_cvtph_ps(h);
    }
  }
}

// r[0..8) rows → columns, in registers.
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Fully unrolled loops over a tile let the compiler keep every accumulator in a register.
// ATTUNE_IN_REGISTER keeps a loaded vector in a register: GCC otherwise folds the load into each
// FMA that uses it, repeating the load and making the loop load-bound.
#if defined(__clang__)
#define ATTUNE_UNROLL _Pragma("unroll")
#define ATTUNE_IN_REGISTER(v) __asm__("" : "+v"(v))
#elif defined(__GNUC__)
#define ATTUNE_UNROLL _Pragma("GCC unroll 32")
#define ATTUNE_IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define ATTUNE_UNROLL
#define ATTUNE_IN_REGISTER(v) (void)0
#endif

template <class S, int MR, int NV>
void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, bool load_c) {
  // a: [kc, MR] packed, b: [kc, NV·kWidth] packed, c: [m ≤ MR, n ≤ NR] with row stride ldc.
  using V = typename S::V;
  constexpr int W = S::kWidth, NR = NV * W;
  V acc[MR][NV];
  ATTUNE_UNROLL for (int i = 0; i < MR; ++i)
    ATTUNE_UNROLL for (int j = 0; j < NV; ++j) acc[i][j] = S::zero();
  for (int64_t k = 0; k < kc; ++k, a += MR, b += NR) {
    V bv[NV];
    ATTUNE_UNROLL for (int j = 0; j < NV; ++j) bv[j] = S::load(b + j * W);
    ATTUNE_UNROLL for (int i = 0; i < MR; ++i) {
      const V ai = S::set1(a[i]);
      ATTUNE_UNROLL for (int j = 0; j < NV; ++j) acc[i][j] = S::fma(ai, bv[j], acc[i][j]);
    }
  }
  if (m == MR && n == NR) {
    ATTUNE_UNROLL for (int i = 0; i < MR; ++i)
      ATTUNE_UNROLL for (int j = 0; j < NV; ++j) {
        float* p = c + i * ldc + j * W;
        S::store(p, load_c ? S::add(S::load(p), acc[i][j]) : acc[i][j]);
      }
    return;
  }
  // An edge tile: spill the registers and write only the part of c that exists.
  alignas(64) float tile[MR * NR];
  ATTUNE_UNROLL for (int i = 0; i < MR; ++i)
    ATTUNE_UNROLL for (int j = 0; j < NV; ++j) S::store(tile + i * NR + j * W, acc[i][j]);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) c[i * ldc + j] = (load_c ? c[i * ldc + j] : 0.0f) + tile[i * NR + j];
}

template <int NR, WeightType T>
void pack_b_trans(const void* data, int64_t ld, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst) {
  // op(B)[k][n] = data[n·ld + k] (a Linear weight): each group of 8 rows of data is read 8 × 8 at a
  // time and transposed in registers into 8 columns of the panel. The rows are short streams that
  // the hardware prefetchers miss, so the next group's rows are prefetched meanwhile.
  constexpr int64_t kBytes = T == WeightType::F32 ? 4 : 2;
  const char* bytes = static_cast<const char*>(data);
  for (int64_t p0 = 0; p0 < nc; p0 += NR, dst += kc * NR) {
    const int64_t cols = min64(NR, nc - p0);
    for (int g = 0; g < NR; g += 8) {
      const int64_t valid = cols - g;
      int64_t row[8], ahead[8];
      for (int r = 0; r < 8; ++r) {
        row[r] = (n0 + p0 + g + min64(r, valid - 1)) * ld + k0;
        ahead[r] = (n0 + min64(p0 + g + 8 + r, nc - 1)) * ld + k0;
      }
      int64_t k = 0;
      if (valid >= 8) {
        for (; k + 8 <= kc; k += 8) {
          if ((k * kBytes) % 64 == 0) {
            for (int r = 0; r < 8; ++r) _mm_prefetch(bytes + (ahead[r] + k) * kBytes, _MM_HINT_T0);
          }
          __m256 v[8];
          for (int r = 0; r < 8; ++r) v[r] = load8<T>(data, row[r] + k);
          transpose8(v);
          for (int r = 0; r < 8; ++r) _mm256_storeu_ps(dst + (k + r) * NR + g, v[r]);
        }
      }
      for (; k < kc; ++k)
        for (int r = 0; r < 8; ++r) dst[k * NR + g + r] = r < valid ? element<T>(data, row[r] + k) : 0.0f;
    }
  }
}

template <int NR, WeightType T>
void pack_b_rows(const void* data, int64_t ld, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst) {
  // op(B)[k][n] = data[k·ld + n]: each panel row is a contiguous run of a row of data.
  for (int64_t k = 0; k < kc; ++k) {
    const int64_t src = (k0 + k) * ld + n0;
    float* d = dst + k * NR;
    for (int64_t p0 = 0; p0 < nc; p0 += NR, d += kc * NR) {
      if (nc - p0 >= NR) {
        for (int j = 0; j < NR; j += 8) _mm256_storeu_ps(d + j, load8<T>(data, src + p0 + j));
      } else {
        for (int j = 0; j < NR; ++j) d[j] = p0 + j < nc ? element<T>(data, src + p0 + j) : 0.0f;
      }
    }
  }
}

template <int NR>
void pack_b(const Operand& b, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst) {
  switch (b.type) {
    case WeightType::F32:
      return b.trans ? pack_b_trans<NR, WeightType::F32>(b.data, b.ld, k0, kc, n0, nc, dst)
                     : pack_b_rows<NR, WeightType::F32>(b.data, b.ld, k0, kc, n0, nc, dst);
    case WeightType::BF16:
      return b.trans ? pack_b_trans<NR, WeightType::BF16>(b.data, b.ld, k0, kc, n0, nc, dst)
                     : pack_b_rows<NR, WeightType::BF16>(b.data, b.ld, k0, kc, n0, nc, dst);
    case WeightType::F16:
      return b.trans ? pack_b_trans<NR, WeightType::F16>(b.data, b.ld, k0, kc, n0, nc, dst)
                     : pack_b_rows<NR, WeightType::F16>(b.data, b.ld, k0, kc, n0, nc, dst);
  }
}

template <class S, int ROWS, int R, WeightType T>
void gemv_block(const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t n, int64_t next, int64_t k,
                float alpha, float* y, int64_t ldy, bool load_y) {
  // y[ROWS, n:n+R] from x[ROWS, k] and R rows of w, each weight loaded once for all ROWS; rows
  // next..next+R are prefetched meanwhile. The hardware prefetchers lose track of R short
  // interleaved streams (a row of bf16 weights is a few KiB), so the next block is asked for by hand.
  using V = typename S::V;
  constexpr int W = S::kWidth;
  constexpr int64_t kBytes = T == WeightType::F32 ? 4 : 2;
  const char* ahead = static_cast<const char*>(w) + next * ldw * kBytes;
  V acc[ROWS][R];
  ATTUNE_UNROLL for (int t = 0; t < ROWS; ++t)
    ATTUNE_UNROLL for (int r = 0; r < R; ++r) acc[t][r] = S::zero();
  int64_t i = 0;
  for (; i + W <= k; i += W) {
    V wv[R];
    ATTUNE_UNROLL for (int r = 0; r < R; ++r) {
      wv[r] = S::template load_w<T>(w, (n + r) * ldw + i);
      _mm_prefetch(ahead + (r * ldw + i) * kBytes, _MM_HINT_T0);
    }
    ATTUNE_UNROLL for (int t = 0; t < ROWS; ++t) {
      V xv = S::load(x + t * ldx + i);
      ATTUNE_IN_REGISTER(xv);
      ATTUNE_UNROLL for (int r = 0; r < R; ++r) acc[t][r] = S::fma(xv, wv[r], acc[t][r]);
    }
  }
  for (int t = 0; t < ROWS; ++t)
    for (int r = 0; r < R; ++r) {
      float sum = S::hsum(acc[t][r]);
      for (int64_t j = i; j < k; ++j) sum += x[t * ldx + j] * element<T>(w, (n + r) * ldw + j);
      float& out = y[t * ldy + n + r];
      out = alpha * sum + (load_y ? out : 0.0f);
    }
}

template <class S, int ROWS, WeightType T>
void gemv_rows(const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t n0, int64_t n1, int64_t k,
               float alpha, float* y, int64_t ldy, bool load_y) {
  // R rows of w at a time, each x load shared by R FMAs; R shrinks as ROWS grows so that the
  // ROWS·R accumulators leave a quarter of the vector registers free. The last block prefetches itself.
  constexpr int kFit = S::kRegisters * 3 / 4 / ROWS;
  constexpr int R = kFit < 1 ? 1 : kFit > 4 ? 4 : kFit;
  int64_t n = n0;
  for (; n + R <= n1; n += R) {
    const int64_t next = n + 2 * R <= n1 ? n + R : n;
    gemv_block<S, ROWS, R, T>(x, ldx, w, ldw, n, next, k, alpha, y, ldy, load_y);
  }
  for (; n < n1; ++n) gemv_block<S, ROWS, 1, T>(x, ldx, w, ldw, n, n, k, alpha, y, ldy, load_y);
}

// gemv_rows<ROWS = rows>: one instantiation per row count up to kGemvMaxRows.
template <class S, WeightType T, int ROWS = 1>
void gemv_typed(const float* x, int64_t ldx, int rows, const void* w, int64_t ldw, int64_t n0, int64_t n1,
                int64_t k, float alpha, float* y, int64_t ldy, bool load_y) {
  if constexpr (ROWS < kGemvMaxRows) {
    if (rows > ROWS) return gemv_typed<S, T, ROWS + 1>(x, ldx, rows, w, ldw, n0, n1, k, alpha, y, ldy, load_y);
  }
  gemv_rows<S, ROWS, T>(x, ldx, w, ldw, n0, n1, k, alpha, y, ldy, load_y);
}

template <class S>
void gemv(const float* x, int64_t ldx, int rows, const void* w, WeightType type, int64_t ldw, int64_t n0,
          int64_t n1, int64_t k, float alpha, float* y, int64_t ldy, bool load_y) {
  switch (type) {
    case WeightType::F32: return gemv_typed<S, WeightType::F32>(x, ldx, rows, w, ldw, n0, n1, k, alpha, y, ldy, load_y);
    case WeightType::BF16: return gemv_typed<S, WeightType::BF16>(x, ldx, rows, w, ldw, n0, n1, k, alpha, y, ldy, load_y);
    case WeightType::F16: return gemv_typed<S, WeightType::F16>(x, ldx, rows, w, ldw, n0, n1, k, alpha, y, ldy, load_y);
  }
}

}  // namespace
}  // namespace attune::cpu::gemm_detail
