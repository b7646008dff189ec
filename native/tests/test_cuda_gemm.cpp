// cuBLASLt products against a float64 reference on the host, for every transpose combination, fp32
// and bf16 inputs, fp32 and bf16 outputs, with beta 0 and 1, at odd sizes.
#include <cstdlib>
#include <memory>
#include <string>

#include "cuda/cublaslt.h"
#include "cuda_test.h"

namespace {

using attune::cuda::Gemm;
using attune::cuda::GemmType;
using namespace attune_test::gpu;

// C[m,n] = alpha·op(A)·op(B) + beta·C in double; A stored [m,k] or [k,m] (ta), B [k,n] or [n,k] (tb).
std::vector<float> reference(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const std::vector<float>& a,
                             const std::vector<float>& b, float beta, const std::vector<float>& c) {
  std::vector<float> out(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double x = ta ? a[p * m + i] : a[i * k + p];
        const double y = tb ? b[j * k + p] : b[p * n + j];
        sum += x * y;
      }
      out[i * n + j] = static_cast<float>(alpha * sum + beta * c[i * n + j]);
    }
  }
  return out;
}

template <typename In, typename Out>
void check_products(Gemm& gemm) {
  const GemmType in_type = std::is_same_v<In, float> ? GemmType::kF32 : GemmType::kBF16;
  const GemmType out_type = std::is_same_v<Out, float> ? GemmType::kF32 : GemmType::kBF16;
  const int64_t shapes[][3] = {{1, 1, 1}, {7, 33, 65}, {64, 128, 256}, {129, 17, 4099}, {1, 4096, 2048}, {300, 5, 16}};
  uint64_t seed = 1;
  for (const auto& shape : shapes) {
    const int64_t m = shape[0], n = shape[1], k = shape[2];
    for (int trans = 0; trans < 4; ++trans) {
      const bool ta = trans & 1, tb = trans & 2;
      for (float beta : {0.0f, 1.0f}) {
        const std::vector<float> a = rounded<In>(random_values(static_cast<size_t>(m * k), seed++));
        const std::vector<float> b = rounded<In>(random_values(static_cast<size_t>(k * n), seed++));
        const std::vector<float> c0 = rounded<Out>(random_values(static_cast<size_t>(m * n), seed++));
        DeviceArray<In> da(a), db(b);
        std::unique_ptr<DeviceArray<Out>> dc = beta != 0 ? std::make_unique<DeviceArray<Out>>(c0)
                                                         : std::make_unique<DeviceArray<Out>>(static_cast<size_t>(m * n));
        const attune::Status status = gemm.matmul(ta, tb, m, n, k, 0.5f, da.get(), db.get(), in_type, beta, dc->get(), out_type);
        CHECK(status.ok());
        if (!status.ok()) std::printf("  %s\n", status.message().c_str());
        expect_no_cuda_error();
        const std::vector<float> want = reference(ta, tb, m, n, k, 0.5f, a, b, beta, c0);
        // fp32: CUBLAS_COMPUTE_32F keeps full fp32 products; bf16 output rounds each element.
        const double limit = std::is_same_v<Out, float> ? 1e-5 : 1e-2;
        const std::string label = std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) + (ta ? " Aᵀ" : "") +
                                  (tb ? " Bᵀ" : "") + (beta != 0 ? " +C" : "");
        expect_close(std::string("matmul→") + dtype_name<Out>(), dtype_name<In>(), label,
                     normalized_error(dc->download(), want), limit, dc->guards_intact());
      }
    }
  }
}

std::unique_ptr<Gemm> make_gemm() {
  std::unique_ptr<Gemm> gemm;
  const attune::Status status = Gemm::create(nullptr, 32 << 20, &gemm);
  if (!status.ok()) std::printf("  %s\n", status.message().c_str());
  CHECK(status.ok());
  return gemm;
}

}  // namespace

TEST(fp32_products_match_float64) {
  if (auto gemm = make_gemm()) check_products<float, float>(*gemm);
}

TEST(bf16_products_match_float64) {
  if (auto gemm = make_gemm()) {
    check_products<bf16, float>(*gemm);
    check_products<bf16, bf16>(*gemm);
  }
}

TEST(a_gemm_refuses_negative_and_empty_inner_sizes) {
  if (auto gemm = make_gemm()) {
    CHECK(!gemm->matmul(false, false, -1, 2, 2, 1, nullptr, nullptr, GemmType::kF32, 0, nullptr, GemmType::kF32).ok());
    CHECK(!gemm->matmul(false, false, 2, 2, 0, 1, nullptr, nullptr, GemmType::kF32, 0, nullptr, GemmType::kF32).ok());
    CHECK(gemm->matmul(false, false, 0, 2, 2, 1, nullptr, nullptr, GemmType::kF32, 0, nullptr, GemmType::kF32).ok());
  }
}
