// A stand-in for cuBLASLt under the CUDA emulator: the entry points src/cuda/cublaslt.cpp binds,
// with cuBLASLt's column-major conventions, computed on the CPU (products summed in double, so
// the reference is the exact product rounded once). scripts/cuda-emulate.sh points ATTUNE_CUBLASLT
// at this library. It refuses what cuBLASLt refuses for the settings the engine uses
// (CUBLAS_COMPUTE_32F with fp32 scaling): other compute types, fp32 inputs with a bf16 output,
// mismatched shapes, ld < rows, pointers less aligned than the preference promised; and it asks the
// emulator (emu.cpp, through the test executable's exported emu_* functions) whether every matrix
// lies inside one device allocation, and to run the product in stream order (so a product issued
// while a stream is captured into a CUDA graph is recorded, like a kernel).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

extern "C" {
void emu_submit(void* stream, void (*run)(void*), void* context, void (*release)(void*));
int emu_device_range(const void* p, size_t bytes, const char* what);
void emu_use(void* stream, const void* p, const char* what);
void emu_after(const char* what);
}

namespace {

// cublasLt.h / library_types.h values (the stable ABI), as src/cuda/cublaslt.cpp names them.
constexpr int kSuccess = 0, kInvalidValue = 7, kNotSupported = 15;
constexpr int kComputeF32 = 68, kDataF32 = 0, kDataBF16 = 14;
constexpr int kDescTransA = 3, kDescTransB = 4;
constexpr int kPrefMaxWorkspace = 1, kPrefAlignA = 5, kPrefAlignD = 8;

struct Desc {
  int trans_a = 0, trans_b = 0;
};
struct Layout {
  int type;
  uint64_t rows, cols;
  int64_t ld;
};
struct Preference {
  uint64_t max_workspace = 0;
  uint32_t align[4] = {256, 256, 256, 256};  // A, B, C, D: what the pointers are promised to meet
};
// cublasLtMatmulHeuristicResult_t; the algorithm's opaque words carry the promised alignments.
struct Algo {
  uint64_t data[8];
};
struct Heuristic {
  Algo algo;
  size_t workspace_size;
  int state;
  float waves;
  int reserved[4];
};

size_t element_bytes(int type) { return type == kDataF32 ? 4 : 2; }

float load(const Layout& l, const void* p, uint64_t row, uint64_t col) {
  const uint64_t k = row + col * static_cast<uint64_t>(l.ld);
  if (l.type == kDataF32) return static_cast<const float*>(p)[k];
  const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(p)[k]) << 16;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

void store(const Layout& l, void* p, uint64_t row, uint64_t col, float v) {
  const uint64_t k = row + col * static_cast<uint64_t>(l.ld);
  if (l.type == kDataF32) {
    static_cast<float*>(p)[k] = v;
    return;
  }
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  const bool nan = (bits & 0x7fffffffu) > 0x7f800000u;
  static_cast<uint16_t*>(p)[k] = nan ? 0x7fc0 : static_cast<uint16_t>((bits + 0x7fffu + (bits >> 16 & 1u)) >> 16);  // to nearest even
}

// op(A) [M,K] · op(B) [K,N] = C [M,N], column-major with cuBLAS's op flags.
bool shapes(const Desc& d, const Layout& a, const Layout& b, const Layout& c, uint64_t* M, uint64_t* N, uint64_t* K) {
  const uint64_t am = d.trans_a ? a.cols : a.rows, ak = d.trans_a ? a.rows : a.cols;
  const uint64_t bk = d.trans_b ? b.cols : b.rows, bn = d.trans_b ? b.rows : b.cols;
  if (ak != bk || c.rows != am || c.cols != bn) {
    std::fprintf(stderr, "fake cuBLASLt: shapes do not match: op(A) %llux%llu, op(B) %llux%llu, C %llux%llu\n",
                 (unsigned long long)am, (unsigned long long)ak, (unsigned long long)bk, (unsigned long long)bn,
                 (unsigned long long)c.rows, (unsigned long long)c.cols);
    return false;
  }
  for (const Layout* l : {&a, &b, &c}) {
    if (l->ld < static_cast<int64_t>(l->rows)) return false;
  }
  *M = am;
  *N = bn;
  *K = ak;
  return true;
}

size_t footprint(const Layout& l) { return ((l.cols - 1) * static_cast<uint64_t>(l.ld) + l.rows) * element_bytes(l.type); }

struct Product {
  Desc desc;
  Layout a, b, c, d;
  const void *A, *B, *C;
  void *D, *workspace, *stream;
  float alpha, beta;
  uint64_t M, N, K;
};

void run(void* context) {
  const Product& p = *static_cast<const Product*>(context);
  for (const void* operand : {p.A, p.B, p.beta != 0 ? p.C : nullptr, static_cast<const void*>(p.D), static_cast<const void*>(p.workspace)}) {
    emu_use(p.stream, operand, "cublasLtMatmul");
  }
  std::vector<double> a(p.M * p.K), b(p.K * p.N);  // op(A) row by row, op(B) column by column
  for (uint64_t i = 0; i < p.M; ++i) {
    for (uint64_t k = 0; k < p.K; ++k) a[i * p.K + k] = p.desc.trans_a ? load(p.a, p.A, k, i) : load(p.a, p.A, i, k);
  }
  for (uint64_t j = 0; j < p.N; ++j) {
    for (uint64_t k = 0; k < p.K; ++k) b[j * p.K + k] = p.desc.trans_b ? load(p.b, p.B, j, k) : load(p.b, p.B, k, j);
  }
  std::vector<float> out(p.M * p.N);
  for (uint64_t j = 0; j < p.N; ++j) {
    for (uint64_t i = 0; i < p.M; ++i) {
      double sum = 0;
      for (uint64_t k = 0; k < p.K; ++k) sum += a[i * p.K + k] * b[j * p.K + k];
      // beta = 0: C is not read (it may hold anything, NaN included), as cuBLAS promises.
      double v = static_cast<double>(p.alpha) * sum;
      if (p.beta != 0) v += static_cast<double>(p.beta) * load(p.c, p.C, i, j);
      out[i + j * p.M] = static_cast<float>(v);
    }
  }
  for (uint64_t j = 0; j < p.N; ++j) {
    for (uint64_t i = 0; i < p.M; ++i) store(p.d, p.D, i, j, out[i + j * p.M]);
  }
  emu_after("a cuBLASLt product");
}

}  // namespace

extern "C" {

int cublasLtCreate(void** handle) {
  *handle = new int(0);
  return kSuccess;
}
int cublasLtDestroy(void* handle) {
  delete static_cast<int*>(handle);
  return kSuccess;
}
int cublasLtMatmulDescCreate(void** desc, int compute, int scale) {
  if (compute != kComputeF32 || scale != kDataF32) return kNotSupported;
  *desc = new Desc;
  return kSuccess;
}
int cublasLtMatmulDescDestroy(void* desc) {
  delete static_cast<Desc*>(desc);
  return kSuccess;
}
int cublasLtMatmulDescSetAttribute(void* desc, int attribute, const void* value, size_t size) {
  if (size != 4 || (attribute != kDescTransA && attribute != kDescTransB)) return kInvalidValue;
  int32_t op;
  std::memcpy(&op, value, 4);
  if (op != 0 && op != 1) return kInvalidValue;
  (attribute == kDescTransA ? static_cast<Desc*>(desc)->trans_a : static_cast<Desc*>(desc)->trans_b) = op;
  return kSuccess;
}
int cublasLtMatrixLayoutCreate(void** layout, int type, uint64_t rows, uint64_t cols, int64_t ld) {
  if (type != kDataF32 && type != kDataBF16) return kNotSupported;
  if (rows == 0 || cols == 0 || ld < static_cast<int64_t>(rows)) return kInvalidValue;
  *layout = new Layout{type, rows, cols, ld};
  return kSuccess;
}
int cublasLtMatrixLayoutDestroy(void* layout) {
  delete static_cast<Layout*>(layout);
  return kSuccess;
}
int cublasLtMatmulPreferenceCreate(void** pref) {
  *pref = new Preference;
  return kSuccess;
}
int cublasLtMatmulPreferenceDestroy(void* pref) {
  delete static_cast<Preference*>(pref);
  return kSuccess;
}
int cublasLtMatmulPreferenceSetAttribute(void* pref, int attribute, const void* value, size_t size) {
  Preference& p = *static_cast<Preference*>(pref);
  if (attribute == kPrefMaxWorkspace && size == 8) {
    std::memcpy(&p.max_workspace, value, 8);
    return kSuccess;
  }
  if (attribute >= kPrefAlignA && attribute <= kPrefAlignD && size == 4) {
    std::memcpy(&p.align[attribute - kPrefAlignA], value, 4);
    return kSuccess;
  }
  return kInvalidValue;
}
int cublasLtMatmulAlgoGetHeuristic(void*, void* desc, void* a, void* b, void* c, void* d, void* pref, int requested,
                                   Heuristic* results, int* returned) {
  const Layout &la = *static_cast<Layout*>(a), &lb = *static_cast<Layout*>(b), &lc = *static_cast<Layout*>(c),
               &ld = *static_cast<Layout*>(d);
  uint64_t M, N, K;
  if (requested < 1 || !shapes(*static_cast<Desc*>(desc), la, lb, lc, &M, &N, &K)) return kInvalidValue;
  if (lc.type != ld.type || lc.rows != ld.rows || lc.cols != ld.cols || la.type != lb.type) return kNotSupported;
  if (la.type == kDataF32 && lc.type != kDataF32) return kNotSupported;  // fp32 inputs give fp32 only
  std::memset(results, 0, sizeof *results);
  const Preference& p = *static_cast<Preference*>(pref);
  for (int i = 0; i < 4; ++i) results->algo.data[i] = p.align[i];
  *returned = 1;
  return kSuccess;
}
int cublasLtMatmul(void*, void* desc, const void* alpha, const void* A, void* a_layout, const void* B, void* b_layout,
                   const void* beta, const void* C, void* c_layout, void* D, void* d_layout, const Algo* algo, void* workspace,
                   size_t workspace_bytes, void* stream) {
  auto* p = new Product{*static_cast<Desc*>(desc), *static_cast<Layout*>(a_layout), *static_cast<Layout*>(b_layout),
                        *static_cast<Layout*>(c_layout), *static_cast<Layout*>(d_layout), A, B, C, D, workspace, stream,
                        *static_cast<const float*>(alpha), *static_cast<const float*>(beta), 0, 0, 0};
  bool ok = shapes(p->desc, p->a, p->b, p->c, &p->M, &p->N, &p->K);
  const void* pointers[4] = {A, B, C, D};
  for (int i = 0; ok && i < 4; ++i) {
    const uint64_t promised = algo ? algo->data[i] : 256;
    if (promised > 0 && reinterpret_cast<uintptr_t>(pointers[i]) % promised != 0) {
      std::fprintf(stderr, "fake cuBLASLt: operand %c at %p is not %llu-byte aligned as the preference promised\n", "ABCD"[i],
                   pointers[i], (unsigned long long)promised);
      ok = false;
    }
  }
  ok = ok && emu_device_range(A, footprint(p->a), "cublasLtMatmul's A") && emu_device_range(B, footprint(p->b), "cublasLtMatmul's B") &&
       emu_device_range(D, footprint(p->d), "cublasLtMatmul's D") &&
       (p->beta == 0 || emu_device_range(C, footprint(p->c), "cublasLtMatmul's C")) &&
       (workspace_bytes == 0 || emu_device_range(workspace, workspace_bytes, "cublasLtMatmul's workspace"));
  if (!ok) {
    delete p;
    return kInvalidValue;
  }
  emu_submit(stream, run, p, [](void* context) { delete static_cast<Product*>(context); });
  return kSuccess;
}

}  // extern "C"
