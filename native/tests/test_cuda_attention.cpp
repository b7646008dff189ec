// The CUDA attention ops (cuda/ops_attention.h) against the CPU ops of the same names, for T = f32
// and bf16 (inputs rounded to T before the CPU reference sees them): the training forward (out
// and lse), the backward (dq, dk, dv) and the inference forward against a cache (past > 0, with
// and without the flash-decoding workspace). Shapes: T = 1, 7, 65, 200 (not multiples of any tile),
// heads/kv_heads 4/4, 8/2 (GQA), 6/1 (MQA), head dims 64 and 128 throughout, and 32, 80, 96, 256
// on a few shapes; 16 (the golden test models': 4/2 and 4/4 heads) on four training shapes and
// five cached ones. Cache rows past past + T hold NaN: reading them would show in the output.
//
// Limits. bf16 outputs: error_limit<bf16>() (storage rounding, 2⁻⁹ relative per element). lse is
// fp32 for both dtypes and computed from the same (rounded) inputs: 1e-5. f32 forward: 1e-5; the
// kernels only reorder fp32 sums of at most a few hundred terms (~1e-7 relative). f32 backward:
// 1e-4, because the GPU takes D_i = dO_i·O_i from the forward's output where the CPU sums
// Σ_j P_ij·dP_ij in double; the two agree to fp32 rounding of a dim-long dot product (~1e-6
// absolute), and dS = P·(dP − D) cancels: for T = 1 (one key: dS = dP − D) the exact dq and dk
// are 0, the CPU gets exactly 0, and the comparison measures that rounding noise in absolute
// terms, a few 1e-6 over a few hundred elements. (The kernels' source run through a CPU emulation
// of blocks, barriers and shuffles gave: f32 forward ≤ 9e-7, lse ≤ 3e-7, backward ≤ 1.3e-6 except
// T=1 dk 3.5e-6; bf16 ≤ 2.8e-3; at head dim 16: f32 forward ≤ 7e-7, backward ≤ 1e-6, bf16 ≤ 2.2e-3.)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "attune/status.h"
#include "check.h"
#include "cpu/ops.h"
#include "cpu/ops_backward.h"
#include "cuda/ops_attention.h"
#include "cuda_test.h"

namespace {

using attune::Status;
using attune_test::gpu::bf16;
using attune_test::gpu::DeviceArray;
using attune_test::gpu::dtype_name;
using attune_test::gpu::error_limit;
using attune_test::gpu::expect_close;
using attune_test::gpu::expect_no_cuda_error;
using attune_test::gpu::normalized_error;
using attune_test::gpu::random_values;
using attune_test::gpu::rounded;

constexpr double kLseLimit = 1e-5;
constexpr double kForwardF32Limit = 1e-5;
constexpr double kBackwardF32Limit = 1e-4;  // see the top of the file

template <typename T>
double forward_limit() {
  return std::is_same_v<T, float> ? kForwardF32Limit : error_limit<T>();
}
template <typename T>
double backward_limit() {
  return std::is_same_v<T, float> ? kBackwardF32Limit : error_limit<T>();
}

attune::cpu::ThreadPool& pool() {
  static attune::cpu::ThreadPool instance(2);
  return instance;
}

struct Shape {
  int64_t tokens, past, heads, kv_heads, dim;
};

std::string describe(const Shape& s) {
  std::string text = "T=" + std::to_string(s.tokens);
  if (s.past > 0) text += " past=" + std::to_string(s.past);
  return text + " heads=" + std::to_string(s.heads) + "/" + std::to_string(s.kv_heads) +
         " dim=" + std::to_string(s.dim);
}

bool ok_or_print(const Status& status) {
  if (!status.ok()) std::printf("  %s\n", status.message().c_str());
  return status.ok();
}

// Training shapes: T ∈ {1, 7, 65, 200} × heads/kv_heads ∈ {4/4, 8/2, 6/1} × dim ∈ {64, 128}, and
// the other head dims on a few of them (16 on four).
std::vector<Shape> training_shapes() {
  std::vector<Shape> shapes;
  for (int64_t tokens : {1, 7, 65, 200}) {
    for (auto heads : {std::pair<int64_t, int64_t>{4, 4}, {8, 2}, {6, 1}}) {
      for (int64_t dim : {64, 128}) shapes.push_back({tokens, 0, heads.first, heads.second, dim});
    }
  }
  shapes.push_back({65, 0, 8, 2, 32});
  shapes.push_back({65, 0, 6, 1, 80});
  shapes.push_back({200, 0, 4, 4, 96});
  shapes.push_back({7, 0, 4, 4, 256});
  shapes.push_back({65, 0, 8, 2, 256});
  // Head dim 16, the golden test models' (heads/kv_heads 4/2 and 4/4): lanes 16..31 own no
  // output column.
  shapes.push_back({1, 0, 4, 2, 16});
  shapes.push_back({7, 0, 4, 2, 16});
  shapes.push_back({65, 0, 4, 4, 16});
  shapes.push_back({200, 0, 6, 1, 16});
  return shapes;
}

// q in [−3, 3): scores spread over several units, so the softmax is far from uniform and the
// online max really moves between key tiles.
std::vector<float> query_values(size_t n, uint64_t seed) { return random_values(n, seed, -3.0f, 3.0f); }

template <typename T>
void check_forward_train(const Shape& s, uint64_t seed) {
  const size_t q_size = static_cast<size_t>(s.tokens * s.heads * s.dim);
  const size_t kv_size = static_cast<size_t>(s.tokens * s.kv_heads * s.dim);
  const auto q = rounded<T>(query_values(q_size, seed));
  const auto k = rounded<T>(random_values(kv_size, seed + 1));
  const auto v = rounded<T>(random_values(kv_size, seed + 2));
  std::vector<float> want_out(q_size), want_lse(static_cast<size_t>(s.tokens * s.heads));
  attune::cpu::attention_forward_train(pool(), q.data(), k.data(), v.data(), s.tokens, s.heads, s.kv_heads, s.dim,
                                       want_out.data(), want_lse.data());

  DeviceArray<T> dq(q), dk(k), dv(v), out(q_size);
  DeviceArray<float> lse(want_lse.size());
  CHECK(ok_or_print(attune::cuda::attention_forward_train<T>(dq.get(), dk.get(), dv.get(), s.tokens, s.heads,
                                                             s.kv_heads, s.dim, out.get(), lse.get(), nullptr)));
  expect_no_cuda_error();
  expect_close("attention_forward_train out", dtype_name<T>(), describe(s), normalized_error(out.download(), want_out),
               forward_limit<T>(), out.guards_intact());
  expect_close("attention_forward_train lse", dtype_name<T>(), describe(s), normalized_error(lse.download(), want_lse),
               kLseLimit, lse.guards_intact());
}

template <typename T>
void check_backward(const Shape& s, uint64_t seed) {
  const size_t q_size = static_cast<size_t>(s.tokens * s.heads * s.dim);
  const size_t kv_size = static_cast<size_t>(s.tokens * s.kv_heads * s.dim);
  const size_t rows = static_cast<size_t>(s.tokens * s.heads);
  const auto q = rounded<T>(query_values(q_size, seed));
  const auto k = rounded<T>(random_values(kv_size, seed + 1));
  const auto v = rounded<T>(random_values(kv_size, seed + 2));
  const auto dout = rounded<T>(random_values(q_size, seed + 3));
  std::vector<float> out(q_size), lse(rows);
  attune::cpu::attention_forward_train(pool(), q.data(), k.data(), v.data(), s.tokens, s.heads, s.kv_heads, s.dim,
                                       out.data(), lse.data());
  std::vector<float> want_dq(q_size), want_dk(kv_size), want_dv(kv_size);
  attune::cpu::attention_backward(pool(), dout.data(), q.data(), k.data(), v.data(), lse.data(), s.tokens, s.heads,
                                  s.kv_heads, s.dim, want_dq.data(), want_dk.data(), want_dv.data());

  // The GPU gets the forward's output as T, as it would from attention_forward_train.
  DeviceArray<T> d_dout(dout), d_q(q), d_k(k), d_v(v), d_out(rounded<T>(out));
  DeviceArray<float> d_lse(lse), delta(rows);
  DeviceArray<T> dq(q_size), dk(kv_size), dv(kv_size);
  CHECK(ok_or_print(attune::cuda::attention_backward<T>(d_dout.get(), d_q.get(), d_k.get(), d_v.get(), d_out.get(),
                                                        d_lse.get(), s.tokens, s.heads, s.kv_heads, s.dim, dq.get(),
                                                        dk.get(), dv.get(), delta.get(), nullptr)));
  expect_no_cuda_error();
  const double limit = backward_limit<T>();
  expect_close("attention_backward dq", dtype_name<T>(), describe(s), normalized_error(dq.download(), want_dq), limit,
               dq.guards_intact());
  expect_close("attention_backward dk", dtype_name<T>(), describe(s), normalized_error(dk.download(), want_dk), limit,
               dk.guards_intact() && delta.guards_intact());
  expect_close("attention_backward dv", dtype_name<T>(), describe(s), normalized_error(dv.download(), want_dv), limit,
               dv.guards_intact());
}

// workspace_bytes: 0 = no workspace; SIZE_MAX = attention_forward_workspace_bytes(); else that many.
template <typename T>
void check_forward_cached(const Shape& s, size_t workspace_bytes, uint64_t seed) {
  const int64_t capacity = s.past + s.tokens + 3;  // 3 rows past the filled ones, never to be read
  const size_t q_size = static_cast<size_t>(s.tokens * s.heads * s.dim);
  const size_t row = static_cast<size_t>(s.kv_heads * s.dim);
  auto k = rounded<T>(random_values(static_cast<size_t>(capacity) * row, seed + 1));
  auto v = rounded<T>(random_values(static_cast<size_t>(capacity) * row, seed + 2));
  for (size_t i = static_cast<size_t>(s.past + s.tokens) * row; i < k.size(); ++i) k[i] = v[i] = NAN;
  const auto q = rounded<T>(query_values(q_size, seed));
  std::vector<float> want(q_size);
  attune::cpu::attention_forward(pool(), q.data(), k.data(), v.data(), s.tokens, s.past, s.heads, s.kv_heads, s.dim,
                                 want.data());

  if (workspace_bytes == SIZE_MAX) {
    workspace_bytes = attune::cuda::attention_forward_workspace_bytes(s.tokens, s.heads, s.dim);
  }
  DeviceArray<T> dq(q), dk(k), dv(v), out(q_size);
  DeviceArray<uint8_t> workspace(workspace_bytes > 0 ? workspace_bytes : 1);
  CHECK(ok_or_print(attune::cuda::attention_forward<T>(dq.get(), dk.get(), dv.get(), s.tokens, s.past, s.heads,
                                                       s.kv_heads, s.dim, out.get(), nullptr,
                                                       workspace_bytes > 0 ? workspace.get() : nullptr,
                                                       workspace_bytes)));
  expect_no_cuda_error();
  std::string shape = describe(s);
  if (workspace_bytes > 0) shape += " workspace=" + std::to_string(workspace_bytes);
  expect_close("attention_forward", dtype_name<T>(), shape, normalized_error(out.download(), want), forward_limit<T>(),
               out.guards_intact() && workspace.guards_intact());
}

template <typename T>
void check_all_training(uint64_t seed) {
  for (const Shape& s : training_shapes()) {
    check_forward_train<T>(s, seed);
    check_backward<T>(s, seed + 10);
    seed += 100;
  }
}

template <typename T>
void check_all_cached(uint64_t seed) {
  // Prefill and decode against a cache, without workspace: one block reads all the keys.
  for (const Shape& s : {Shape{3, 5, 4, 4, 64}, Shape{1, 100, 8, 2, 128}, Shape{7, 0, 6, 1, 64},
                         Shape{65, 40, 8, 2, 128}, Shape{1, 1, 6, 1, 96}}) {
    check_forward_cached<T>(s, 0, seed);
    seed += 100;
  }
  // Flash-decoding: long caches and few query rows split the keys across blocks (up to 8 splits
  // of ≥ 128 keys here, on any GPU of 8 SMs or more), then combine. Also with a workspace of room
  // for 3 splits only, and a 200-row prefill (100 blocks: split in 2 on a GPU of more SMs, such
  // as an H100, where the early rows see no key of the second split).
  const Shape decode[] = {{1, 1000, 8, 2, 128}, {1, 1000, 4, 4, 64}, {5, 700, 8, 2, 64}, {2, 300, 6, 1, 128},
                          {1, 999, 8, 2, 256}};
  for (const Shape& s : decode) {
    check_forward_cached<T>(s, SIZE_MAX, seed);
    seed += 100;
  }
  const Shape small = {1, 1000, 8, 2, 64};
  check_forward_cached<T>(small, 3 * static_cast<size_t>(small.heads * (small.dim + 2)) * sizeof(float), seed);
  check_forward_cached<T>({200, 33, 8, 2, 64}, SIZE_MAX, seed + 100);
  // Head dim 16 (the golden test models'): decode (R = 1) and prefill (R = 4) rows, without and
  // with the workspace; the 130-token prefill is 34 blocks, split in 3 on a GPU of more than 34 SMs.
  seed += 200;
  for (const Shape& s : {Shape{3, 5, 4, 2, 16}, Shape{33, 40, 4, 2, 16}}) {
    check_forward_cached<T>(s, 0, seed);
    seed += 100;
  }
  for (const Shape& s : {Shape{1, 1000, 4, 2, 16}, Shape{3, 501, 4, 4, 16}, Shape{130, 300, 4, 2, 16}}) {
    check_forward_cached<T>(s, SIZE_MAX, seed);
    seed += 100;
  }
}

}  // namespace

TEST(cuda_attention_forward_train_and_backward_f32) { check_all_training<float>(1000); }

TEST(cuda_attention_forward_train_and_backward_bf16) { check_all_training<bf16>(2000); }

TEST(cuda_attention_forward_cached_f32) { check_all_cached<float>(3000); }

TEST(cuda_attention_forward_cached_bf16) { check_all_cached<bf16>(4000); }

TEST(cuda_attention_rejects_bad_shapes) {
  DeviceArray<float> x(4 * 256), lse(4), delta(4);
  for (int64_t dim : {16, 32, 64, 80, 96, 128, 256}) CHECK(attune::cuda::attention_head_dim_supported(dim));
  for (int64_t dim : {8, 48, 512}) {
    CHECK(!attune::cuda::attention_head_dim_supported(dim));
    const Status forward = attune::cuda::attention_forward<float>(x.get(), x.get(), x.get(), 1, 0, 1, 1, dim, x.get(),
                                                                  nullptr);
    const Status train = attune::cuda::attention_forward_train<float>(x.get(), x.get(), x.get(), 1, 1, 1, dim, x.get(),
                                                                      lse.get(), nullptr);
    const Status backward = attune::cuda::attention_backward<float>(x.get(), x.get(), x.get(), x.get(), x.get(),
                                                                    lse.get(), 1, 1, 1, dim, x.get(), x.get(), x.get(),
                                                                    delta.get(), nullptr);
    for (const Status& status : {forward, train, backward}) {
      CHECK(status.code() == attune::StatusCode::kInvalidArgument);
      CHECK(status.message().find("head dim " + std::to_string(dim)) != std::string::npos);
    }
  }
  // heads not a multiple of kv_heads
  CHECK(attune::cuda::attention_forward<float>(x.get(), x.get(), x.get(), 1, 0, 6, 4, 64, x.get(), nullptr).code() ==
        attune::StatusCode::kInvalidArgument);
  // Nothing to do: ok, no launch.
  CHECK(attune::cuda::attention_forward<float>(x.get(), x.get(), x.get(), 0, 0, 4, 4, 64, x.get(), nullptr).ok());
  expect_no_cuda_error();
}
