#include <memory>

#include <vector>

#include "adapter/dora.h"
#include "adapter/lora.h"
#include "backend.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace attune {

namespace {

// Each op is one of cpu/ops.h's or cpu/gemm.h's functions on this backend's thread pool.
class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(unsigned threads) : pool_(threads == 0 ? 1 : threads) {}

  const char* name() const override { return "cpu"; }

  Status matmul_f32(const float* a, const float* b, float* c, int m, int k, int n) override {
    // a: [m, k], b: [k, n], c: [m, n]
    if (m < 0 || k < 0 || n < 0) return Status::invalid_argument("matmul_f32: negative dimension");
    if (m == 0 || n == 0) return {};
    cpu::gemm_f32(pool_, false, false, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    return {};
  }

  void linear(const float* x, const void* w, WeightType type, const float* bias, float* y, int64_t T, int64_t in,
              int64_t out) override {
    cpu::linear(pool_, x, w, type, bias, y, T, in, out);
  }
  void embedding(const int32_t* ids, int64_t T, const void* table, WeightType type, int64_t H, float* out) override {
    cpu::embedding_forward(pool_, ids, T, table, type, H, out);
  }
  void rmsnorm(const float* x, const float* weight, float eps, int64_t T, int64_t H, float* out, float* rstd) override {
    cpu::rmsnorm_forward(pool_, x, weight, eps, T, H, out, rstd);
  }
  void rope(float* x, const int32_t* positions, int64_t T, int64_t heads, int64_t dim, const float* cos_table,
            const float* sin_table) override {
    cpu::rope_forward(pool_, x, positions, T, heads, dim, cos_table, sin_table);
  }
  void attention(const float* q, const float* k, const float* v, int64_t T, int64_t past, int64_t heads, int64_t kv_heads,
                 int64_t dim, float* out) override {
    cpu::attention_forward(pool_, q, k, v, T, past, heads, kv_heads, dim, out);
  }
  void swiglu(const float* gate, const float* up, int64_t n, float* out) override {
    cpu::swiglu_forward(pool_, gate, up, n, out);
  }
  void lora_linear(const float* x, const void* w, WeightType type, const float* bias, const float* A, const float* B,
                   int64_t rank, float scaling, float* y, int64_t T, int64_t in, int64_t out) override {
    std::vector<float> u(static_cast<size_t>(T * rank));
    adapter::lora_forward(pool_, {w, type, bias, in, out}, {A, B, rank, scaling}, x, nullptr, T, y, u.data(), nullptr);
  }
  void dora_linear(const float* x, const void* w, WeightType type, const float* bias, const float* A, const float* B,
                   int64_t rank, float scaling, const float* magnitude, const float* norm, float* y, int64_t T, int64_t in,
                   int64_t out) override {
    std::vector<float> u(static_cast<size_t>(T * rank)), inner(static_cast<size_t>(T * out));
    adapter::dora_forward(pool_, {w, type, bias, in, out}, {A, B, rank, scaling}, magnitude, norm, x, nullptr, T, y, u.data(),
                          inner.data(), nullptr);
  }
  void add(float* x, const float* y, int64_t n) override { cpu::add_inplace(pool_, x, y, n); }
  double cross_entropy_sum(const float* logits, const int32_t* targets, int64_t T, int64_t V, int64_t* count) override {
    return cpu::cross_entropy_sum(pool_, logits, targets, T, V, count);
  }

 private:
  cpu::ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(unsigned threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace attune
