#include "cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <memory>
#include <new>

#include "cpu/gemm_kernels.h"

#if defined(_M_X64)
#include <intrin.h>
#endif

namespace attune::cpu {

using gemm_detail::Kernels;
using gemm_detail::Operand;

namespace {

// Below this many multiply-adds a product runs on the calling thread: waking the pool would cost
// more than the work.
constexpr int64_t kParallelMinWork = 1 << 16;
// Products of up to this many rows against a Linear weight skip packing (see skinny()): up to
// here that is faster, as measured on the shapes of bench/bench_gemm.cpp; past it the GEMM wins.
constexpr int64_t kSkinnyMaxRows = 16;
// The skinny path's slice of weight rows, in bytes: well inside L2.
constexpr int64_t kSkinnySliceBytes = 256 << 10;
// Packed A is built once per call for a block of rows and all of K, and shared by the threads; this
// caps its size (in floats, 4 MiB) so that long prompts are done in row blocks.
constexpr int64_t kPackedACap = 1 << 20;

struct CpuLevels {
  bool avx2 = false;  // with FMA and F16C, which every AVX2 CPU has
  bool avx512 = false;
};

CpuLevels detect_cpu() {
#if defined(_M_X64)
  int r[4];
  __cpuid(r, 1);
  const bool fma = r[2] & (1 << 12), f16c = r[2] & (1 << 29), osxsave = r[2] & (1 << 27), avx = r[2] & (1 << 28);
  if (!(osxsave && avx && fma && f16c)) return {};
  const unsigned long long xcr0 = _xgetbv(0);  // which register states the OS saves
  __cpuidex(r, 7, 0);
  const bool avx2 = (xcr0 & 0x6) == 0x6 && (r[1] & (1 << 5));
  return {avx2, avx2 && (xcr0 & 0xe6) == 0xe6 && (r[1] & (1 << 16))};
#elif defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // These also check that the OS saves the wider registers.
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return {avx2, avx2 && __builtin_cpu_supports("avx512f")};
#else
  return {};
#endif
}

const Kernels* kernels_for(SimdPath path) {
  static const CpuLevels cpu = detect_cpu();
  const Kernels* avx512 = cpu.avx512 ? gemm_detail::avx512_kernels() : nullptr;
  const Kernels* avx2 = cpu.avx2 ? gemm_detail::avx2_kernels() : nullptr;
  switch (path) {
    case SimdPath::kGeneric: return &gemm_detail::generic_kernels();
    case SimdPath::kAvx2: return avx2;
    case SimdPath::kAvx512: return avx512;
    case SimdPath::kAuto: break;
  }
  return avx512 ? avx512 : avx2 ? avx2 : &gemm_detail::generic_kernels();
}

std::atomic<const Kernels*> forced_kernels{nullptr};

const Kernels& active_kernels() {
  const Kernels* forced = forced_kernels.load(std::memory_order_relaxed);
  if (forced) return *forced;
  static const Kernels* const best = kernels_for(SimdPath::kAuto);
  return *best;
}

// Grow-only scratch memory, 64-byte aligned so packed panels start on cache lines.
class Scratch {
 public:
  float* get(size_t count) {
    if (count > capacity_) {
      data_.reset(static_cast<float*>(::operator new[](count * sizeof(float), std::align_val_t{64})));
      capacity_ = count;
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<float, Free> data_;
  size_t capacity_ = 0;
};

// Runs fn over [0, count) on the pool, or inline when the work is too small to share.
template <typename Fn>
void parallel(ThreadPool& pool, int64_t count, int64_t work, const Fn& fn) {
  if (pool.size() == 1 || work < kParallelMinWork || count == 1) {
    fn(int64_t{0}, count);
  } else {
    pool.run(count, fn);
  }
}

// C[M,N] (+)= alpha · op(A)[M,K] · op(B)[K,N], with C's row stride ldc.
struct Product {
  Operand a;  // always fp32
  Operand b;
  int64_t M, N, K;
  float alpha;
  float* c;
  int64_t ldc;
};

void pack_a(const Operand& a, int64_t row0, int64_t rows, int64_t K, int mr, float alpha, float* dst) {
  // dst[K, mr] = alpha · op(A)[row0 : row0+rows, 0:K]ᵀ, rows past `rows` zero.
  const float* data = static_cast<const float*>(a.data);
  if (a.trans) {
    for (int64_t k = 0; k < K; ++k) {
      const float* src = data + k * a.ld + row0;
      for (int i = 0; i < mr; ++i) dst[k * mr + i] = i < rows ? alpha * src[i] : 0.0f;
    }
    return;
  }
  for (int i = 0; i < mr; ++i) {
    if (i >= rows) {
      for (int64_t k = 0; k < K; ++k) dst[k * mr + i] = 0.0f;
      continue;
    }
    const float* src = data + (row0 + i) * a.ld;
    for (int64_t k = 0; k < K; ++k) dst[k * mr + i] = alpha * src[k];
  }
}

// Splits n into the fewest blocks of at most `block`, all of near-equal size: no thin last block.
int64_t balanced_block(int64_t n, int64_t block) {
  const int64_t blocks = (n + block - 1) / block;
  return (n + blocks - 1) / blocks;
}

void gemm_block(const Kernels& kern, const Product& p, const float* packed_a, int64_t m0, int64_t panel0,
                int64_t panel1, int64_t n_begin, int64_t n_end, bool load_c) {
  // C[m0 + panel0·mr : m0 + panel1·mr, n_begin:n_end] from packed A panels [panel0, panel1) and op(B).
  // A [kc, nc] block of op(B) is packed once into this thread's scratch, sized to stay in L2; each
  // [kc, mr] panel of A then stays in L1 while the B block's panels stream past it from L2.
  const int64_t mr = kern.mr, nr = kern.nr;
  const int64_t kc_max = balanced_block(p.K, kern.kc);
  const int64_t nc_max = balanced_block(n_end - n_begin, kern.nc);
  thread_local Scratch b_scratch;
  float* packed_b = b_scratch.get(static_cast<size_t>(kc_max * ((nc_max + nr - 1) / nr) * nr));
  for (int64_t jc = n_begin; jc < n_end; jc += nc_max) {
    const int64_t nc = std::min(nc_max, n_end - jc);
    for (int64_t pc = 0; pc < p.K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, p.K - pc);
      kern.pack_b(p.b, pc, kc, jc, nc, packed_b);
      for (int64_t ir = panel0; ir < panel1; ++ir) {
        const int64_t row = m0 + ir * mr;
        const float* a_panel = packed_a + ir * mr * p.K + pc * mr;
        const int rows = static_cast<int>(std::min(mr, p.M - row));
        for (int64_t jr = 0; jr < nc; jr += nr) {
          kern.micro(kc, a_panel, packed_b + (jr / nr) * kc * nr, p.c + row * p.ldc + jc + jr, p.ldc, rows,
                     static_cast<int>(std::min(nr, nc - jr)), load_c || pc > 0);
        }
      }
    }
  }
}

// The fraction of the threads kept busy when `units` equal pieces of work are shared out.
double balance(int64_t units, int64_t threads) {
  const int64_t rounds = (units + threads - 1) / threads;
  return static_cast<double>(units) / static_cast<double>(rounds * threads);
}

void gemm(ThreadPool& pool, const Kernels& kern, const Product& p, bool load_c) {
  const int64_t mr = kern.mr, nr = kern.nr;
  const int64_t block_rows = std::max(mr, kPackedACap / p.K / mr * mr);
  thread_local Scratch a_scratch;
  for (int64_t m0 = 0; m0 < p.M; m0 += block_rows) {
    const int64_t rows = std::min(block_rows, p.M - m0);
    const int64_t panels_m = (rows + mr - 1) / mr;
    float* packed_a = a_scratch.get(static_cast<size_t>(panels_m * mr * p.K));
    parallel(pool, panels_m, rows * p.K, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        pack_a(p.a, m0 + i * mr, std::min(mr, rows - i * mr), p.K, kern.mr, p.alpha, packed_a + i * mr * p.K);
      }
    });
    // Split the columns when that keeps the threads as busy as splitting the rows: then each
    // thread packs only its own part of B (for a Linear layer, the weights stream from memory once).
    const int64_t panels_n = (p.N + nr - 1) / nr;
    const int64_t work = rows * p.N * p.K;
    if (balance(panels_n, pool.size()) >= balance(panels_m, pool.size())) {
      parallel(pool, panels_n, work, [&](int64_t j0, int64_t j1) {
        gemm_block(kern, p, packed_a, m0, 0, panels_m, j0 * nr, std::min(p.N, j1 * nr), load_c);
      });
    } else {
      parallel(pool, panels_m, work, [&](int64_t i0, int64_t i1) {
        gemm_block(kern, p, packed_a, m0, i0, i1, 0, p.N, load_c);
      });
    }
  }
}

void skinny(ThreadPool& pool, const Kernels& kern, const Product& p, bool load_c) {
  // C[M ≤ kSkinnyMaxRows, N] from A[M, K] and a Linear weight op(B) = B[N, K]ᵀ, unpacked: the
  // threads split the weight rows, and each slice of them small enough to stay in L2 is used by
  // every group of kGemvMaxRows rows of A before the next is read, so the weights stream once.
  const int64_t row_bytes = p.K * (p.b.type == WeightType::F32 ? 4 : 2);
  const int64_t slice = p.M <= gemm_detail::kGemvMaxRows ? p.N : std::max<int64_t>(1, kSkinnySliceBytes / row_bytes);
  const float* a = static_cast<const float*>(p.a.data);
  parallel(pool, p.N, p.M * p.N * p.K, [&](int64_t n0, int64_t n1) {
    for (int64_t s0 = n0; s0 < n1; s0 += slice) {
      for (int64_t t = 0; t < p.M; t += gemm_detail::kGemvMaxRows) {
        const int rows = static_cast<int>(std::min<int64_t>(gemm_detail::kGemvMaxRows, p.M - t));
        kern.gemv(a + t * p.a.ld, p.a.ld, rows, p.b.data, p.b.type, p.b.ld, s0, std::min(n1, s0 + slice), p.K,
                  p.alpha, p.c + t * p.ldc, p.ldc, load_c);
      }
    }
  });
}

void multiply(ThreadPool& pool, const Product& p, float beta, const float* bias) {
  // C = alpha · op(A)·op(B) + beta · C (+ bias on every row).
  if (p.M <= 0 || p.N <= 0) return;
  const Kernels& kern = active_kernels();
  bool load_c = beta != 0.0f;
  if (bias != nullptr || (load_c && beta != 1.0f) || p.K <= 0 || p.alpha == 0.0f) {
    // Scale C and add the bias first, so the kernels only ever overwrite or add.
    parallel(pool, p.M, p.M * p.N, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        float* row = p.c + i * p.ldc;
        for (int64_t j = 0; j < p.N; ++j) {
          row[j] = (load_c ? beta * row[j] : 0.0f) + (bias != nullptr ? bias[j] : 0.0f);
        }
      }
    });
    load_c = true;
  }
  if (p.K <= 0 || p.alpha == 0.0f) return;
  if (p.M <= kSkinnyMaxRows && p.b.trans && !p.a.trans) {
    skinny(pool, kern, p, load_c);
  } else {
    gemm(pool, kern, p, load_c);
  }
}

}  // namespace

void linear(ThreadPool& pool, const float* x, const void* w, WeightType wtype, const float* bias, float* y, int64_t T,
            int64_t in, int64_t out, bool accumulate) {
  // x: [T, in], w: [out, in] (op(B) = wᵀ), y: [T, out].
  multiply(pool, {{x, in, false, WeightType::F32}, {w, in, true, wtype}, T, out, in, 1.0f, y, out},
           accumulate ? 1.0f : 0.0f, bias);
}

void linear_backward_input(ThreadPool& pool, const float* dy, const void* w, WeightType wtype, float* dx, int64_t T,
                           int64_t in, int64_t out, bool accumulate) {
  // dy: [T, out], w: [out, in], dx: [T, in].
  multiply(pool, {{dy, out, false, WeightType::F32}, {w, in, false, wtype}, T, in, out, 1.0f, dx, in},
           accumulate ? 1.0f : 0.0f, nullptr);
}

void linear_backward_weight(ThreadPool& pool, const float* dy, const float* x, float* dw, int64_t T, int64_t in,
                            int64_t out, bool accumulate) {
  // dy: [T, out] (op(A) = dyᵀ), x: [T, in], dw: [out, in].
  multiply(pool, {{dy, out, true, WeightType::F32}, {x, in, false, WeightType::F32}, out, in, T, 1.0f, dw, in},
           accumulate ? 1.0f : 0.0f, nullptr);
}

void gemm_f32(ThreadPool& pool, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // op(A): [M, K], op(B): [K, N], C: [M, N], each with its own row stride.
  multiply(pool, {{A, lda, trans_a, WeightType::F32}, {B, ldb, trans_b, WeightType::F32}, M, N, K, alpha, C, ldc},
           beta, nullptr);
}

bool force_simd_path(SimdPath path) {
  const Kernels* kernels = kernels_for(path);
  if (kernels == nullptr) return false;
  forced_kernels.store(path == SimdPath::kAuto ? nullptr : kernels, std::memory_order_relaxed);
  return true;
}

const char* simd_path_name() { return active_kernels().name; }

}  // namespace attune::cpu
