// The RoPE CUDA ops (cuda/ops_rope.h) against cpu::rope_forward and cpu::rope_backward, in fp32 and
// bf16, on real RoPE tables (θ = 10000): head dims 64, 96 and 128 and the smallest (2), one head and
// odd head counts, positions spread over the whole table in no order, and more tokens than fit one
// pass of blocks.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cpu/ops.h"
#include "cpu/ops_backward.h"
#include "cpu/thread_pool.h"
#include "cuda/ops_rope.h"
#include "cuda_test.h"

namespace {

namespace cpu = attune::cpu;
namespace cuda = attune::cuda;
using namespace attune_test::gpu;

constexpr int64_t kMaxPositions = 4096;

// cos/sin of p · 10000^(−2i/dim), [kMaxPositions, dim/2], computed in double and stored as fp32.
void rope_tables(int64_t dim, std::vector<float>* cos_table, std::vector<float>* sin_table) {
  const int64_t half = dim / 2;
  cos_table->resize(kMaxPositions * half);
  sin_table->resize(kMaxPositions * half);
  for (int64_t p = 0; p < kMaxPositions; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * std::pow(10000.0, -2.0 * static_cast<double>(i) / dim);
      (*cos_table)[p * half + i] = static_cast<float>(std::cos(angle));
      (*sin_table)[p * half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

template <typename T>
void check_rope() {
  // {tokens, heads, dim}; the last has more tokens than the launcher's 65536 blocks (the
  // grid-stride loop over tokens).
  const int64_t shapes[][3] = {{1, 1, 64}, {7, 3, 128}, {33, 5, 64}, {33, 32, 128},
                               {4, 7, 96}, {3, 2, 2}, {70000, 1, 64}};
  uint64_t seed = 700;
  for (const auto& s : shapes) {
    const int64_t tokens = s[0], heads = s[1], dim = s[2];
    const std::string shape =
        "T=" + std::to_string(tokens) + " heads=" + std::to_string(heads) + " dim=" + std::to_string(dim);
    std::vector<float> cos_table, sin_table;
    rope_tables(dim, &cos_table, &sin_table);
    // Positions anywhere in the table, the last row included.
    std::vector<float> positions_f = random_values(tokens, seed++, 0.0f, static_cast<float>(kMaxPositions));
    for (float& p : positions_f) p = static_cast<float>(static_cast<int32_t>(p));
    positions_f[0] = static_cast<float>(kMaxPositions - 1);
    std::vector<int32_t> positions(tokens);
    for (int64_t t = 0; t < tokens; ++t) positions[t] = static_cast<int32_t>(positions_f[t]);

    const int64_t n = tokens * heads * dim;
    const std::vector<float> x = rounded<T>(random_values(n, seed++));
    DeviceArray<int32_t> d_positions(positions_f);
    DeviceArray<float> d_cos(cos_table), d_sin(sin_table);

    for (bool backward : {false, true}) {
      std::vector<float> want = x;
      if (backward) {
        cpu::rope_backward(cpu_pool(), want.data(), positions.data(), tokens, heads, dim, cos_table.data(),
                           sin_table.data());
      } else {
        cpu::rope_forward(cpu_pool(), want.data(), positions.data(), tokens, heads, dim, cos_table.data(),
                          sin_table.data());
      }
      DeviceArray<T> d_x(x);
      if (backward) {
        expect_ok(cuda::rope_backward<T>(d_x.get(), d_positions.get(), tokens, heads, dim, d_cos.get(), d_sin.get(),
                                         nullptr));
      } else {
        expect_ok(cuda::rope_forward<T>(d_x.get(), d_positions.get(), tokens, heads, dim, d_cos.get(), d_sin.get(),
                                        nullptr));
      }
      expect_no_cuda_error();
      expect_close(backward ? "rope_backward" : "rope_forward", dtype_name<T>(), shape,
                   normalized_error(d_x.download(), want), error_limit<T>(), d_x.guards_intact());
    }
  }
}

}  // namespace

TEST(rope_matches_cpu) {
  check_rope<float>();
  check_rope<bf16>();
}

TEST(rope_sizes_are_checked) {
  // Refused or a no-op before any launch (null pointers are fine there).
  const auto invalid = attune::StatusCode::kInvalidArgument;
  CHECK(cuda::rope_forward<float>(nullptr, nullptr, -1, 4, 64, nullptr, nullptr, nullptr).code() == invalid);
  CHECK(cuda::rope_forward<bf16>(nullptr, nullptr, 0, 4, 64, nullptr, nullptr, nullptr).ok());
  CHECK(cuda::rope_forward<float>(nullptr, nullptr, 3, 0, 64, nullptr, nullptr, nullptr).ok());
  CHECK(cuda::rope_backward<float>(nullptr, nullptr, 3, 4, 63, nullptr, nullptr, nullptr).code() == invalid);
  CHECK(cuda::rope_backward<bf16>(nullptr, nullptr, 3, 4, 0, nullptr, nullptr, nullptr).code() == invalid);
  CHECK(cuda::rope_backward<bf16>(nullptr, nullptr, 3, 4, 64, nullptr, nullptr, nullptr).code() == invalid);
  expect_no_cuda_error();
}
