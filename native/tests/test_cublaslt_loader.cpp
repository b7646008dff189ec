// cuBLASLt is loaded at run time; where it cannot be, the reason names what was tried and the fix.
#include <cstdlib>
#include <string>

#include "check.h"
#include "cuda/cublaslt.h"

TEST(a_missing_library_is_named_with_the_fix) {
  // Before the first load in this process, which caches its result.
  setenv("ATTUNE_CUBLASLT", "/nonexistent/libcublasLt.so.13", 1);
  std::string reason;
  CHECK(attune::cuda::load_cublaslt(&reason) == nullptr);
  CHECK(reason.find("/nonexistent/libcublasLt.so.13") != std::string::npos);
  CHECK(reason.find("ATTUNE_CUBLASLT") != std::string::npos);
  CHECK(reason.find("CUDA Toolkit 13") != std::string::npos);
}

TEST(creating_a_gemm_without_the_library_fails_cleanly) {
  std::unique_ptr<attune::cuda::Gemm> gemm;
  const attune::Status status = attune::cuda::Gemm::create(nullptr, 0, &gemm);
  CHECK(!status.ok());
  CHECK(gemm == nullptr);
  CHECK(status.message().find("cuBLASLt") != std::string::npos);
}
