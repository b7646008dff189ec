// Matrix products on the GPU through cuBLASLt, loaded at run time with dlopen: the build needs no
// cuBLAS headers or libraries, and the engine still loads (and runs on the CPU) where the library
// is missing — load_cublaslt() then says which file it looked for and where.
//
// Every product is row-major, as the rest of the engine: C[m,n] = alpha·op(A)·op(B) + beta·C with
// op(A) = A stored [m,k], or Aᵀ of A stored [k,m] (trans_a); op(B) = B stored [k,n], or Bᵀ of B
// stored [n,k] (trans_b). Inputs bf16 or fp32 (both the same), accumulation always fp32
// (CUBLAS_COMPUTE_32F: no TF32 shortcut, so fp32 products match the CPU's), output bf16 or fp32.
// A linear layer y = x·Wᵀ is matmul(false, true, T, out, in, x, W, y).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "attune/status.h"

namespace attune::cuda {

enum class GemmType { kF32, kBF16 };

struct CublasLt;  // the loaded library's entry points

// The process-wide cuBLASLt, loaded on first use; null with *reason set when it cannot be loaded.
// ATTUNE_CUBLASLT names the library file to use instead of the search.
const CublasLt* load_cublaslt(std::string* reason);

class Gemm {
 public:
  // A handle bound to `stream` with `workspace_bytes` of device workspace (32 MB suits Hopper).
  static Status create(cudaStream_t stream, size_t workspace_bytes, std::unique_ptr<Gemm>* out);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  size_t workspace_bytes() const { return workspace_bytes_; }

  Status matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a, const void* b,
                GemmType input, float beta, void* c, GemmType output);

 private:
  Gemm() = default;
  struct Plan;  // the descriptors and the algorithm chosen for one shape
  // trans_a, trans_b, m, n, k, input, output, the pointers' common alignment, beta ≠ 0
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, GemmType, GemmType, uint32_t, bool>;
  Status plan_for(const Key& key, Plan** out);

  const CublasLt* lib_ = nullptr;
  void* handle_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<Key, std::unique_ptr<Plan>> plans_;  // heuristics asked once per shape
};

}  // namespace attune::cuda
