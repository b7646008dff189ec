// Portable kernels: plain loops shaped so the compiler vectorises them for the baseline ISA (SSE2
// on x86-64, NEON on ARM64). Every CPU runs these; the SIMD tables take over where supported.
#include "cpu/gemm_convert.h"
#include "cpu/gemm_kernels.h"

namespace attune::cpu::gemm_detail {

namespace {

// 4 × 8: the accumulators fit the 16 SSE registers as 8 vectors of 4 lanes.
constexpr int kMr = 4, kNr = 8;
// Independent partial sums in the dot products: lets the compiler vectorise a float reduction
// without reassociating it under -ffast-math.
constexpr int kLanes = 8;

void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, bool load_c) {
  // a: [kc, kMr] packed, b: [kc, kNr] packed, c: [m ≤ kMr, n ≤ kNr] with row stride ldc.
  float acc[kMr][kNr] = {};
  for (int64_t k = 0; k < kc; ++k, a += kMr, b += kNr)
    for (int i = 0; i < kMr; ++i)
      for (int j = 0; j < kNr; ++j) acc[i][j] += a[i] * b[j];
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) c[i * ldc + j] = (load_c ? c[i * ldc + j] : 0.0f) + acc[i][j];
}

template <WeightType T>
void pack_b_typed(const Operand& b, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst) {
  // dst panels of [kc, kNr]; op(B)[k][n] = data[n·ld + k] when trans (a Linear weight), else data[k·ld + n].
  for (int64_t p0 = 0; p0 < nc; p0 += kNr, dst += kc * kNr)
    for (int j = 0; j < kNr; ++j) {
      const int64_t col = n0 + p0 + j;
      const bool valid = p0 + j < nc;
      for (int64_t k = 0; k < kc; ++k) {
        const int64_t at = b.trans ? col * b.ld + k0 + k : (k0 + k) * b.ld + col;
        dst[k * kNr + j] = valid ? element<T>(b.data, at) : 0.0f;
      }
    }
}

void pack_b(const Operand& b, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst) {
  switch (b.type) {
    case WeightType::F32: return pack_b_typed<WeightType::F32>(b, k0, kc, n0, nc, dst);
    case WeightType::BF16: return pack_b_typed<WeightType::BF16>(b, k0, kc, n0, nc, dst);
    case WeightType::F16: return pack_b_typed<WeightType::F16>(b, k0, kc, n0, nc, dst);
  }
}

template <WeightType T>
void gemv_typed(const float* x, int64_t ldx, int rows, const void* w, int64_t ldw, int64_t n0, int64_t n1,
                int64_t k, float alpha, float* y, int64_t ldy, bool load_y) {
  // y[rows, n0:n1] from x[rows, k] and rows n0..n1 of w; each row of w converted once into row_f32.
  float row_f32[256];
  for (int64_t n = n0; n < n1; ++n) {
    float acc[kGemvMaxRows][kLanes] = {};
    for (int64_t i0 = 0; i0 < k; i0 += 256) {
      const int64_t len = k - i0 < 256 ? k - i0 : 256;
      for (int64_t i = 0; i < len; ++i) row_f32[i] = element<T>(w, n * ldw + i0 + i);
      for (int t = 0; t < rows; ++t) {
        const float* xt = x + t * ldx + i0;
        int64_t i = 0;
        for (; i + kLanes <= len; i += kLanes)
          for (int l = 0; l < kLanes; ++l) acc[t][l] += xt[i + l] * row_f32[i + l];
        for (; i < len; ++i) acc[t][0] += xt[i] * row_f32[i];
      }
    }
    for (int t = 0; t < rows; ++t) {
      float sum = 0;
      for (float lane : acc[t]) sum += lane;
      float& out = y[t * ldy + n];
      out = alpha * sum + (load_y ? out : 0.0f);
    }
  }
}

void gemv(const float* x, int64_t ldx, int rows, const void* w, WeightType type, int64_t ldw, int64_t n0,
          int64_t n1, int64_t k, float alpha, float* y, int64_t ldy, bool load_y) {
  switch (type) {
    case WeightType::F32: return gemv_typed<WeightType::F32>(x, ldx, rows, w, ldw, n0, n1, k, alpha, y, ldy, load_y);
    case WeightType::BF16: return gemv_typed<WeightType::BF16>(x, ldx, rows, w, ldw, n0, n1, k, alpha, y, ldy, load_y);
    case WeightType::F16: return gemv_typed<WeightType::F16>(x, ldx, rows, w, ldw, n0, n1, k, alpha, y, ldy, load_y);
  }
}

}  // namespace

const Kernels& generic_kernels() {
  // The same blocking as the SIMD kernels: an A panel in L1, a 512 KiB block of B in L2.
  static const Kernels kernels{"generic", kMr, kNr, 256, 512, &micro, &pack_b, &gemv};
  return kernels;
}

}  // namespace attune::cpu::gemm_detail
