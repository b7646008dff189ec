// The per-instruction-set pieces of the GEMM (gemm.cpp drives them): one table per SIMD level,
// each compiled in its own translation unit with that level's compiler flags, so the rest of the
// binary still runs on CPUs without it.
#pragma once

#include <cstdint>

#include "cpu/gemm.h"

namespace attune::cpu::gemm_detail {

// A read-only operand: element [r][c] of op(X) is data[c·ld + r] when trans, else data[r·ld + c].
struct Operand {
  const void* data;
  int64_t ld;
  bool trans;
  WeightType type;
};

// The most rows of x one gemv call takes: its accumulators must fit the registers.
constexpr int kGemvMaxRows = 8;

struct Kernels {
  const char* name;
  int mr, nr;           // the micro-tile of C held in registers: mr rows × nr columns
  int64_t kc, nc;       // cache blocking: a [kc, mr] panel of A fits L1, a [kc, nc] block of B fits L2

  // c[m,n] (+)= a[kc,mr]ᵀ-panel · b[kc,nr]-panel, i.e. c[i][j] = Σ_k a[k·mr+i]·b[k·nr+j] for i < m ≤ mr,
  // j < n ≤ nr; adds to what c holds when load_c, else overwrites it.
  void (*micro)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, bool load_c);

  // dst: ⌈nc/nr⌉ panels of [kc, nr], panel p at dst + p·kc·nr, from op(B)[k0:k0+kc, n0:n0+nc]
  // converted to fp32; columns past nc are zero.
  void (*pack_b)(const Operand& b, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst);

  // y[t·ldy + n] = alpha · Σ_k x[t·ldx + k] · w[n·ldw + k] (+ y[t·ldy + n] when load_y), for
  // t < rows ≤ kGemvMaxRows and n in [n0, n1): each row of w is streamed once for all rows of x.
  void (*gemv)(const float* x, int64_t ldx, int rows, const void* w, WeightType type, int64_t ldw, int64_t n0,
               int64_t n1, int64_t k, float alpha, float* y, int64_t ldy, bool load_y);
};

const Kernels& generic_kernels();
// Null when this build has no such kernels (not x86-64, or a compiler without the flags).
const Kernels* avx2_kernels();
const Kernels* avx512_kernels();

}  // namespace attune::cpu::gemm_detail
