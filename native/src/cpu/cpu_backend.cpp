#include <memory>

#include "backend.h"
#include "cpu/matmul.h"
#include "cpu/parallel.h"

namespace attune {

namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(unsigned threads) : threads_(threads == 0 ? 1 : threads) {}

  const char* name() const override { return "cpu"; }

  Status matmul_f32(const float* a, const float* b, float* c, int m, int k, int n) override {
    // a: [m, k], b: [k, n], c: [m, n]; rows of c are split across threads.
    if (m < 0 || k < 0 || n < 0) return Status::invalid_argument("matmul_f32: negative dimension");
    if (m == 0 || n == 0) return {};
    parallel_for(m, threads_, [&](int row0, int row1) { matmul_f32_rows(a, b, c, row0, row1, k, n); });
    return {};
  }

 private:
  unsigned threads_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(unsigned threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace attune
