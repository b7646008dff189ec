#include "cuda/cublaslt.h"

#include <cstdlib>
#include <mutex>
#include <vector>

#ifdef _WIN32
#include <windows.h>
#else
#include <dlfcn.h>
#endif

#include "cuda/cuda_status.h"

namespace attune::cuda {

namespace {

// The few values of cublasLt.h / cublas_api.h / library_types.h this file uses, from NVIDIA's
// published headers (they are part of the library's stable ABI).
constexpr int kStatusSuccess = 0;
constexpr int kComputeF32 = 68;  // CUBLAS_COMPUTE_32F
constexpr int kDataF32 = 0;      // CUDA_R_32F
constexpr int kDataBF16 = 14;    // CUDA_R_16BF
constexpr int kOpN = 0, kOpT = 1;
constexpr int kDescTransA = 3, kDescTransB = 4;                              // CUBLASLT_MATMUL_DESC_TRANSA/B
constexpr int kPrefMaxWorkspace = 1;                                         // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
constexpr int kPrefAlignA = 5, kPrefAlignB = 6, kPrefAlignC = 7, kPrefAlignD = 8;  // ..._MIN_ALIGNMENT_*_BYTES

struct Algo {
  uint64_t data[8];
};
struct HeuristicResult {
  Algo algo;
  size_t workspace_size;
  int state;
  float waves_count;
  int reserved[4];
};

const char* status_name(int status) {
  switch (status) {
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 16: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "an unknown cuBLAS status";
  }
}

Status lt_status(int status, const char* what) {
  if (status == kStatusSuccess) return {};
  const std::string message = std::string(what) + " failed with " + status_name(status) + " (" + std::to_string(status) + ")";
  if (status == 3) return Status::out_of_memory(message);
  return Status::internal(message);
}

#ifdef _WIN32
const char* const kLibraryNames[] = {"cublasLt64_13.dll"};
void* open_library(const std::string& path) { return reinterpret_cast<void*>(LoadLibraryA(path.c_str())); }
void* find_symbol(void* library, const char* name) {
  return reinterpret_cast<void*>(GetProcAddress(static_cast<HMODULE>(library), name));
}
#else
// Our cudart is CUDA 13 (static); cuBLASLt must be the same major version.
const char* const kLibraryNames[] = {"libcublasLt.so.13"};
void* open_library(const std::string& path) { return dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL); }
void* find_symbol(void* library, const char* name) { return dlsym(library, name); }
#endif

// The folders searched after the system's library path: the CUDA Toolkit's.
std::vector<std::string> toolkit_folders() {
  std::vector<std::string> folders;
  for (const char* variable : {"CUDA_PATH", "CUDA_HOME"}) {
    if (const char* value = std::getenv(variable)) {
#ifdef _WIN32
      folders.push_back(std::string(value) + "\\bin\\");
#else
      folders.push_back(std::string(value) + "/lib64/");
#endif
    }
  }
#ifndef _WIN32
  folders.push_back("/usr/local/cuda/lib64/");
#endif
  return folders;
}

}  // namespace

struct CublasLt {
  int (*create)(void** handle);
  int (*destroy)(void* handle);
  int (*desc_create)(void** desc, int compute_type, int scale_type);
  int (*desc_destroy)(void* desc);
  int (*desc_set)(void* desc, int attribute, const void* value, size_t size);
  int (*layout_create)(void** layout, int type, uint64_t rows, uint64_t cols, int64_t ld);
  int (*layout_destroy)(void* layout);
  int (*pref_create)(void** pref);
  int (*pref_destroy)(void* pref);
  int (*pref_set)(void* pref, int attribute, const void* value, size_t size);
  int (*heuristic)(void* handle, void* desc, void* a, void* b, void* c, void* d, void* pref, int requested,
                   HeuristicResult* results, int* returned);
  int (*matmul)(void* handle, void* desc, const void* alpha, const void* a, void* a_layout, const void* b, void* b_layout,
                const void* beta, const void* c, void* c_layout, void* d, void* d_layout, const Algo* algo, void* workspace,
                size_t workspace_bytes, cudaStream_t stream);
};

namespace {

// Fills `lib` from `library`; false with *missing naming the first absent entry point.
bool bind(void* library, CublasLt* lib, std::string* missing) {
  struct Entry {
    const char* name;
    void** slot;
  };
  const Entry entries[] = {
      {"cublasLtCreate", reinterpret_cast<void**>(&lib->create)},
      {"cublasLtDestroy", reinterpret_cast<void**>(&lib->destroy)},
      {"cublasLtMatmulDescCreate", reinterpret_cast<void**>(&lib->desc_create)},
      {"cublasLtMatmulDescDestroy", reinterpret_cast<void**>(&lib->desc_destroy)},
      {"cublasLtMatmulDescSetAttribute", reinterpret_cast<void**>(&lib->desc_set)},
      {"cublasLtMatrixLayoutCreate", reinterpret_cast<void**>(&lib->layout_create)},
      {"cublasLtMatrixLayoutDestroy", reinterpret_cast<void**>(&lib->layout_destroy)},
      {"cublasLtMatmulPreferenceCreate", reinterpret_cast<void**>(&lib->pref_create)},
      {"cublasLtMatmulPreferenceDestroy", reinterpret_cast<void**>(&lib->pref_destroy)},
      {"cublasLtMatmulPreferenceSetAttribute", reinterpret_cast<void**>(&lib->pref_set)},
      {"cublasLtMatmulAlgoGetHeuristic", reinterpret_cast<void**>(&lib->heuristic)},
      {"cublasLtMatmul", reinterpret_cast<void**>(&lib->matmul)},
  };
  for (const Entry& entry : entries) {
    *entry.slot = find_symbol(library, entry.name);
    if (*entry.slot == nullptr) {
      *missing = entry.name;
      return false;
    }
  }
  return true;
}

struct Loaded {
  CublasLt lib{};
  bool ok = false;
  std::string reason;
};

Loaded load_once() {
  Loaded loaded;
  std::vector<std::string> candidates;
  if (const char* path = std::getenv("ATTUNE_CUBLASLT")) {
    candidates.push_back(path);
  } else {
    for (const char* name : kLibraryNames) candidates.push_back(name);
    for (const std::string& folder : toolkit_folders()) {
      for (const char* name : kLibraryNames) candidates.push_back(folder + name);
    }
  }
  std::string tried;
  for (const std::string& candidate : candidates) {
    void* library = open_library(candidate);
    tried += (tried.empty() ? "" : ", ") + candidate;
    if (library == nullptr) continue;
    std::string missing;
    if (!bind(library, &loaded.lib, &missing)) {
      loaded.reason = candidate + " is not a usable cuBLASLt: it has no " + missing + ". Install the CUDA 13 cuBLAS library";
      return loaded;
    }
    loaded.ok = true;
    return loaded;
  }
  loaded.reason = "cuBLASLt (CUDA 13) was not found (looked for " + tried +
                  "). Install the CUDA Toolkit 13 or its cuBLAS library, or set ATTUNE_CUBLASLT to the library file";
  return loaded;
}

int data_type(GemmType type) { return type == GemmType::kBF16 ? kDataBF16 : kDataF32; }

// The largest power of two (≤ 256) dividing every pointer: what the algorithm may assume.
uint32_t common_alignment(const void* a, const void* b, const void* c) {
  const uintptr_t bits = reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b) | reinterpret_cast<uintptr_t>(c) | 256;
  return static_cast<uint32_t>(bits & (~bits + 1));
}

}  // namespace

const CublasLt* load_cublaslt(std::string* reason) {
  static const Loaded loaded = load_once();
  if (!loaded.ok) {
    if (reason) *reason = loaded.reason;
    return nullptr;
  }
  return &loaded.lib;
}

struct Gemm::Plan {
  const CublasLt* lib = nullptr;
  void* desc = nullptr;
  void* a = nullptr;  // cuBLAS's column-major view: its "A" is our B, its "B" our A (see matmul)
  void* b = nullptr;
  void* c = nullptr;
  HeuristicResult choice{};
  ~Plan() {
    if (!lib) return;
    for (void* layout : {a, b, c}) {
      if (layout) lib->layout_destroy(layout);
    }
    if (desc) lib->desc_destroy(desc);
  }
};

Status Gemm::create(cudaStream_t stream, size_t workspace_bytes, std::unique_ptr<Gemm>* out) {
  std::string reason;
  const CublasLt* lib = load_cublaslt(&reason);
  if (!lib) return Status::invalid_argument(reason);
  std::unique_ptr<Gemm> gemm(new Gemm());
  gemm->lib_ = lib;
  gemm->stream_ = stream;
  ATTUNE_CUDA_TRY(lt_status(lib->create(&gemm->handle_), "cublasLtCreate"));
  if (workspace_bytes > 0) {
    const cudaError_t error = cudaMalloc(&gemm->workspace_, workspace_bytes);
    if (error != cudaSuccess) {
      cudaGetLastError();  // an allocation failure is not sticky: clear it for the next call
      return cuda_error(error, "allocating cuBLASLt's workspace");
    }
    gemm->workspace_bytes_ = workspace_bytes;
  }
  *out = std::move(gemm);
  return {};
}

Gemm::~Gemm() {
  plans_.clear();
  if (workspace_) cudaFree(workspace_);
  if (handle_) lib_->destroy(handle_);
}

Status Gemm::plan_for(const Key& key, Plan** out) {
  auto found = plans_.find(key);
  if (found != plans_.end()) {
    *out = found->second.get();
    return {};
  }
  const auto [trans_a, trans_b, m, n, k, input, output, alignment, beta_nonzero] = key;
  (void)beta_nonzero;  // part of the key only: heuristics may pick differently when C is read
  auto plan = std::make_unique<Plan>();
  plan->lib = lib_;
  // Row-major C[m,n] is column-major Cᵀ[n,m] = op(B)ᵀ·op(A)ᵀ: cuBLAS computes with our B as its
  // first operand and our A as its second, each described as the column-major matrix its memory
  // holds (rows = the row-major column count), transposed where ours is.
  const int op_first = trans_b ? kOpT : kOpN, op_second = trans_a ? kOpT : kOpN;
  ATTUNE_CUDA_TRY(lt_status(lib_->desc_create(&plan->desc, kComputeF32, kDataF32), "cublasLtMatmulDescCreate"));
  ATTUNE_CUDA_TRY(lt_status(lib_->desc_set(plan->desc, kDescTransA, &op_first, sizeof(op_first)), "setting TRANSA"));
  ATTUNE_CUDA_TRY(lt_status(lib_->desc_set(plan->desc, kDescTransB, &op_second, sizeof(op_second)), "setting TRANSB"));
  const uint64_t first_rows = trans_b ? k : n, first_cols = trans_b ? n : k;
  const uint64_t second_rows = trans_a ? m : k, second_cols = trans_a ? k : m;
  ATTUNE_CUDA_TRY(lt_status(lib_->layout_create(&plan->a, data_type(input), first_rows, first_cols, first_rows), "layout of B"));
  ATTUNE_CUDA_TRY(lt_status(lib_->layout_create(&plan->b, data_type(input), second_rows, second_cols, second_rows), "layout of A"));
  ATTUNE_CUDA_TRY(lt_status(lib_->layout_create(&plan->c, data_type(output), n, m, n), "layout of C"));

  void* pref = nullptr;
  ATTUNE_CUDA_TRY(lt_status(lib_->pref_create(&pref), "cublasLtMatmulPreferenceCreate"));
  const uint64_t max_workspace = workspace_bytes_;
  const uint32_t align = alignment;
  int status = lib_->pref_set(pref, kPrefMaxWorkspace, &max_workspace, sizeof(max_workspace));
  for (int attribute : {kPrefAlignA, kPrefAlignB, kPrefAlignC, kPrefAlignD}) {
    if (status == kStatusSuccess) status = lib_->pref_set(pref, attribute, &align, sizeof(align));
  }
  int returned = 0;
  if (status == kStatusSuccess) {
    status = lib_->heuristic(handle_, plan->desc, plan->a, plan->b, plan->c, plan->c, pref, 1, &plan->choice, &returned);
  }
  lib_->pref_destroy(pref);
  ATTUNE_CUDA_TRY(lt_status(status, "cublasLtMatmulAlgoGetHeuristic"));
  if (returned == 0) {
    return Status::internal("cuBLASLt has no algorithm for a " + std::to_string(m) + "×" + std::to_string(k) + " by " +
                            std::to_string(k) + "×" + std::to_string(n) + " product on this GPU");
  }
  *out = plan.get();
  plans_.emplace(key, std::move(plan));
  return {};
}

Status Gemm::matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a, const void* b,
                    GemmType input, float beta, void* c, GemmType output) {
  if (m < 0 || n < 0 || k < 0) return Status::invalid_argument("A matrix product was given a negative size");
  if (m == 0 || n == 0) return {};
  if (k == 0) return Status::invalid_argument("A matrix product was given an inner size of 0");
  Plan* plan = nullptr;
  ATTUNE_CUDA_TRY(plan_for(Key{trans_a, trans_b, m, n, k, input, output, common_alignment(a, b, c), beta != 0},
                           &plan));
  // cuBLAS's "A" is our B and its "B" our A (see plan_for).
  return lt_status(lib_->matmul(handle_, plan->desc, &alpha, b, plan->a, a, plan->b, &beta, c, plan->c, c, plan->c,
                                &plan->choice.algo, workspace_, workspace_bytes_, stream_),
                   "cublasLtMatmul");
}

}  // namespace attune::cuda
