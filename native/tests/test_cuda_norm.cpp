// The RMSNorm CUDA ops (cuda/ops_norm.h) against cpu::rmsnorm_forward and cpu::rmsnorm_backward, in
// fp32 and bf16, at odd shapes (one element a row, rows shorter than a warp, rows longer than a
// block's threads, more rows than fit one pass of blocks): forward with and without rstd and in
// place; backward overwriting dx, accumulating into a pre-filled dx, and in place (dx = dy), with
// the weight gradient accumulated into a pre-filled dweight.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cpu/ops.h"
#include "cpu/ops_backward.h"
#include "cpu/thread_pool.h"
#include "cuda/ops_norm.h"
#include "cuda_test.h"

namespace {

namespace cpu = attune::cpu;
namespace cuda = attune::cuda;
using namespace attune_test::gpu;

// {tokens, H}. 70000 rows pass the launcher's 65536 blocks (the grid-stride loop over rows) and
// make the weight gradient a long column sum.
const int64_t kShapes[][2] = {{1, 1}, {7, 17}, {33, 96}, {5, 4099}, {3, 16384}, {300, 128}, {1, 4096}, {70000, 8}};

// H = 1 is badly conditioned with a small eps: mean(x²) = x², so dx = r·w·dy·(1 − x²r²) is the
// difference of two nearly equal terms and any rounding difference between fp32 and the CPU's
// double sums shows up magnified. A large eps keeps x²r² away from 1 there; the other shapes use a
// model's eps.
float eps_for(int64_t H) { return H == 1 ? 0.5f : 1e-5f; }

std::string shape_name(int64_t tokens, int64_t H) { return "T=" + std::to_string(tokens) + " H=" + std::to_string(H); }

// x over [-2, 2), with one row scaled down (a large rstd) when there are several.
std::vector<float> make_x(int64_t tokens, int64_t H, uint64_t seed) {
  std::vector<float> x = random_values(tokens * H, seed, -2.0f, 2.0f);
  if (tokens > 1) {
    for (int64_t i = 0; i < H; ++i) x[H + i] *= 0.01f;
  }
  return x;
}

template <typename T>
void check_forward() {
  uint64_t seed = 500;
  for (const auto& s : kShapes) {
    const int64_t tokens = s[0], H = s[1];
    const float eps = eps_for(H);
    const std::string shape = shape_name(tokens, H);
    const std::vector<float> x = rounded<T>(make_x(tokens, H, seed++));
    const std::vector<float> weight = random_values(H, seed++, 0.5f, 1.5f);  // fp32
    std::vector<float> want(tokens * H), want_rstd(tokens);
    cpu::rmsnorm_forward(cpu_pool(), x.data(), weight.data(), eps, tokens, H, want.data(), want_rstd.data());

    DeviceArray<float> dweight(weight);
    {
      DeviceArray<T> dx(x), out(tokens * H);
      DeviceArray<float> rstd(tokens);
      expect_ok(cuda::rmsnorm_forward<T>(dx.get(), dweight.get(), eps, tokens, H, out.get(), rstd.get(), nullptr));
      expect_no_cuda_error();
      expect_close("rmsnorm_forward", dtype_name<T>(), shape, normalized_error(out.download(), want), error_limit<T>(),
                   out.guards_intact());
      // rstd is fp32 from the same inputs on both sides: the fp32 limit whatever T.
      expect_close("rmsnorm_forward rstd", dtype_name<T>(), shape, normalized_error(rstd.download(), want_rstd),
                   error_limit<float>(), rstd.guards_intact());
    }
    {
      // In place, no rstd.
      DeviceArray<T> dx(x);
      expect_ok(cuda::rmsnorm_forward<T>(dx.get(), dweight.get(), eps, tokens, H, dx.get(), nullptr, nullptr));
      expect_no_cuda_error();
      expect_close("rmsnorm_forward", dtype_name<T>(), shape + " in place", normalized_error(dx.download(), want),
                   error_limit<T>(), dx.guards_intact());
    }
  }
}

template <typename T>
void check_backward() {
  uint64_t seed = 600;
  for (const auto& s : kShapes) {
    const int64_t tokens = s[0], H = s[1];
    const float eps = eps_for(H);
    const std::string shape = shape_name(tokens, H);
    const std::vector<float> x = rounded<T>(make_x(tokens, H, seed++));
    const std::vector<float> dy = rounded<T>(random_values(tokens * H, seed++));
    const std::vector<float> weight = random_values(H, seed++, 0.5f, 1.5f);
    const std::vector<float> dweight0 = random_values(H, seed++);      // fp32, accumulated into
    const std::vector<float> dx0 = rounded<T>(random_values(tokens * H, seed++));  // for accumulate
    // rstd as the forward saves it, from the CPU: both sides take the same fp32 values.
    std::vector<float> y(tokens * H), rstd(tokens);
    cpu::rmsnorm_forward(cpu_pool(), x.data(), weight.data(), eps, tokens, H, y.data(), rstd.data());

    DeviceArray<T> d_x(x);
    DeviceArray<float> d_weight(weight), d_rstd(rstd);
    {
      // Overwriting dx, with dweight.
      std::vector<float> want_dx(tokens * H), want_dw = dweight0;
      cpu::rmsnorm_backward(cpu_pool(), dy.data(), x.data(), weight.data(), rstd.data(), tokens, H, want_dx.data(), false,
                            want_dw.data());
      DeviceArray<T> d_dy(dy), d_dx(tokens * H);
      DeviceArray<float> d_dw(dweight0);
      expect_ok(cuda::rmsnorm_backward<T>(d_dy.get(), d_x.get(), d_weight.get(), d_rstd.get(), tokens, H, d_dx.get(),
                                          false, d_dw.get(), nullptr));
      expect_no_cuda_error();
      expect_close("rmsnorm_backward dx", dtype_name<T>(), shape, normalized_error(d_dx.download(), want_dx),
                   error_limit<T>(), d_dx.guards_intact());
      // dweight is fp32, summed from the same inputs on both sides.
      expect_close("rmsnorm_backward dweight", dtype_name<T>(), shape, normalized_error(d_dw.download(), want_dw),
                   error_limit<float>(), d_dw.guards_intact());
    }
    {
      // Accumulating into a pre-filled dx, no dweight.
      std::vector<float> want_dx = dx0;
      cpu::rmsnorm_backward(cpu_pool(), dy.data(), x.data(), weight.data(), rstd.data(), tokens, H, want_dx.data(), true,
                            nullptr);
      DeviceArray<T> d_dy(dy), d_dx(dx0);
      expect_ok(cuda::rmsnorm_backward<T>(d_dy.get(), d_x.get(), d_weight.get(), d_rstd.get(), tokens, H, d_dx.get(),
                                          true, nullptr, nullptr));
      expect_no_cuda_error();
      expect_close("rmsnorm_backward dx", dtype_name<T>(), shape + " accumulate",
                   normalized_error(d_dx.download(), want_dx), error_limit<T>(), d_dx.guards_intact());
    }
    {
      // In place (dx = dy), with dweight: dweight must see dy before dx overwrites it.
      std::vector<float> want_dx = dy, want_dw = dweight0;
      cpu::rmsnorm_backward(cpu_pool(), want_dx.data(), x.data(), weight.data(), rstd.data(), tokens, H, want_dx.data(),
                            false, want_dw.data());
      DeviceArray<T> d_dy(dy);
      DeviceArray<float> d_dw(dweight0);
      expect_ok(cuda::rmsnorm_backward<T>(d_dy.get(), d_x.get(), d_weight.get(), d_rstd.get(), tokens, H, d_dy.get(),
                                          false, d_dw.get(), nullptr));
      expect_no_cuda_error();
      expect_close("rmsnorm_backward dx", dtype_name<T>(), shape + " in place",
                   normalized_error(d_dy.download(), want_dx), error_limit<T>(), d_dy.guards_intact());
      expect_close("rmsnorm_backward dweight", dtype_name<T>(), shape + " in place",
                   normalized_error(d_dw.download(), want_dw), error_limit<float>(), d_dw.guards_intact());
    }
  }
}

}  // namespace

TEST(rmsnorm_forward_matches_cpu) {
  check_forward<float>();
  check_forward<bf16>();
}

TEST(rmsnorm_backward_matches_cpu) {
  check_backward<float>();
  check_backward<bf16>();
}

TEST(rmsnorm_sizes_are_checked) {
  // Refused or a no-op before any launch (null pointers are fine there).
  CHECK(cuda::rmsnorm_forward<float>(nullptr, nullptr, 1e-5f, -1, 8, nullptr, nullptr, nullptr).code() ==
        attune::StatusCode::kInvalidArgument);
  CHECK(cuda::rmsnorm_forward<bf16>(nullptr, nullptr, 1e-5f, 0, 8, nullptr, nullptr, nullptr).ok());
  CHECK(cuda::rmsnorm_forward<float>(nullptr, nullptr, 1e-5f, 4, 0, nullptr, nullptr, nullptr).code() ==
        attune::StatusCode::kInvalidArgument);
  CHECK(cuda::rmsnorm_backward<float>(nullptr, nullptr, nullptr, nullptr, 3, -2, nullptr, false, nullptr, nullptr)
            .code() == attune::StatusCode::kInvalidArgument);
  CHECK(cuda::rmsnorm_backward<bf16>(nullptr, nullptr, nullptr, nullptr, 0, 16, nullptr, true, nullptr, nullptr).ok());
  CHECK(cuda::rmsnorm_backward<bf16>(nullptr, nullptr, nullptr, nullptr, 2, 16, nullptr, true, nullptr, nullptr)
            .code() == attune::StatusCode::kInvalidArgument);
  expect_no_cuda_error();
}
