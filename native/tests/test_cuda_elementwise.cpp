// The elementwise CUDA ops (cuda/ops_elementwise.h) against the CPU ops of the same name, in fp32
// and bf16, at odd sizes, out of place and in place: swiglu forward and backward, add_inplace, and
// embedding_forward from F32, BF16 and F16 tables. add_bias, scale_inplace and convert have no CPU
// op; they are compared with a plain loop over the same rounded inputs (convert bit for bit with
// the engine's torch-exact conversions in tensor/convert.h).
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <iterator>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu/ops.h"
#include "cpu/ops_backward.h"
#include "cpu/thread_pool.h"
#include "cuda/ops_elementwise.h"
#include "cuda_test.h"
#include "tensor/convert.h"

namespace {

namespace cpu = attune::cpu;
namespace cuda = attune::cuda;
using namespace attune_test::gpu;

// Element counts: one element, less than a warp, a few blocks with a ragged end, and an odd size
// of many blocks.
const int64_t kCounts[] = {1, 7, 33 * 17, 4099 * 3 + 1};

template <typename T>
void check_swiglu() {
  uint64_t seed = 100;
  for (int64_t n : kCounts) {
    const std::string shape = "count=" + std::to_string(n);
    // gate over [-8, 8): both tails of the sigmoid.
    const std::vector<float> gate = rounded<T>(random_values(n, seed++, -8.0f, 8.0f));
    const std::vector<float> up = rounded<T>(random_values(n, seed++));
    const std::vector<float> dout = rounded<T>(random_values(n, seed++));

    std::vector<float> want(n);
    cpu::swiglu_forward(cpu_pool(), gate.data(), up.data(), n, want.data());
    {
      DeviceArray<T> dgate(gate), dup(up), out(n);
      expect_ok(cuda::swiglu_forward<T>(dgate.get(), dup.get(), n, out.get(), nullptr));
      expect_no_cuda_error();
      expect_close("swiglu_forward", dtype_name<T>(), shape, normalized_error(out.download(), want), error_limit<T>(),
                   out.guards_intact());
    }
    {
      // In place: out = gate.
      DeviceArray<T> dgate(gate), dup(up);
      expect_ok(cuda::swiglu_forward<T>(dgate.get(), dup.get(), n, dgate.get(), nullptr));
      expect_no_cuda_error();
      expect_close("swiglu_forward", dtype_name<T>(), shape + " in place", normalized_error(dgate.download(), want),
                   error_limit<T>(), dgate.guards_intact());
    }

    std::vector<float> want_dgate(n), want_dup(n);
    cpu::swiglu_backward(cpu_pool(), dout.data(), gate.data(), up.data(), n, want_dgate.data(), want_dup.data());
    {
      DeviceArray<T> ddout(dout), dgate(gate), dup(up), grad_gate(n), grad_up(n);
      expect_ok(
          cuda::swiglu_backward<T>(ddout.get(), dgate.get(), dup.get(), n, grad_gate.get(), grad_up.get(), nullptr));
      expect_no_cuda_error();
      expect_close("swiglu_backward dgate", dtype_name<T>(), shape, normalized_error(grad_gate.download(), want_dgate),
                   error_limit<T>(), grad_gate.guards_intact());
      expect_close("swiglu_backward dup", dtype_name<T>(), shape, normalized_error(grad_up.download(), want_dup),
                   error_limit<T>(), grad_up.guards_intact());
    }
    {
      // In place, as the trainer uses it: dgate over gate, dup over up.
      DeviceArray<T> ddout(dout), dgate(gate), dup(up);
      expect_ok(cuda::swiglu_backward<T>(ddout.get(), dgate.get(), dup.get(), n, dgate.get(), dup.get(), nullptr));
      expect_no_cuda_error();
      expect_close("swiglu_backward dgate", dtype_name<T>(), shape + " in place",
                   normalized_error(dgate.download(), want_dgate), error_limit<T>(), dgate.guards_intact());
      expect_close("swiglu_backward dup", dtype_name<T>(), shape + " in place",
                   normalized_error(dup.download(), want_dup), error_limit<T>(), dup.guards_intact());
    }
  }
}

template <typename T>
void check_add_and_scale() {
  uint64_t seed = 200;
  // Plus one count over 65536 blocks of 256 threads: the grid-stride loop goes round more than once.
  std::vector<int64_t> counts(std::begin(kCounts), std::end(kCounts));
  counts.push_back((int64_t{1} << 24) + 5);
  for (int64_t n : counts) {
    const std::string shape = "n=" + std::to_string(n);
    const std::vector<float> x = rounded<T>(random_values(n, seed++));
    const std::vector<float> y = rounded<T>(random_values(n, seed++));
    {
      std::vector<float> want = x;
      cpu::add_inplace(cpu_pool(), want.data(), y.data(), n);
      DeviceArray<T> dx(x), dy(y);
      expect_ok(cuda::add_inplace<T>(dx.get(), dy.get(), n, nullptr));
      expect_no_cuda_error();
      expect_close("add_inplace", dtype_name<T>(), shape, normalized_error(dx.download(), want), error_limit<T>(),
                   dx.guards_intact());
    }
    {
      const float scale = -0.37f;
      std::vector<float> want = x;
      for (float& v : want) v *= scale;
      DeviceArray<T> dx(x);
      expect_ok(cuda::scale_inplace<T>(dx.get(), scale, n, nullptr));
      expect_no_cuda_error();
      expect_close("scale_inplace", dtype_name<T>(), shape, normalized_error(dx.download(), want), error_limit<T>(),
                   dx.guards_intact());
    }
  }
  const int64_t shapes[][2] = {{1, 1}, {7, 17}, {33, 96}, {5, 4099}, {300, 33}};
  for (const auto& s : shapes) {
    const int64_t rows = s[0], cols = s[1];
    const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
    const std::vector<float> y = rounded<T>(random_values(rows * cols, seed++));
    const std::vector<float> bias = random_values(cols, seed++);  // fp32: not rounded
    std::vector<float> want = y;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) want[r * cols + c] += bias[c];
    }
    DeviceArray<T> dy(y);
    DeviceArray<float> dbias(bias);
    expect_ok(cuda::add_bias<T>(dy.get(), dbias.get(), rows, cols, nullptr));
    expect_no_cuda_error();
    expect_close("add_bias", dtype_name<T>(), shape, normalized_error(dy.download(), want), error_limit<T>(),
                 dy.guards_intact());
  }
}

// The value a float becomes in To, by the CPU's conversions (tensor/convert.h).
template <typename To>
float reference_round(float v) {
  if constexpr (std::is_same_v<To, float>) {
    return v;
  } else {
    return attune::bf16_to_f32(attune::f32_to_bf16(v));
  }
}

// Exact: both directions are a rounding to nearest even (or no rounding), the same on both sides,
// so the limit is 0.
template <typename From, typename To>
void check_convert() {
  uint64_t seed = 300;
  for (int64_t n : kCounts) {
    std::vector<float> values = random_values(n, seed++, -3.0f, 3.0f);
    // Some magnitudes far from 1, exact ties of bf16 rounding and a subnormal, where they fit.
    const float specials[] = {0.0f, -0.0f, 1.0e30f, -2.5e-30f, 1.00390625f, 1.01171875f, 1.0e-39f};
    for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]) && i < values.size(); ++i) values[i] = specials[i];
    values = rounded<From>(values);
    std::vector<float> want(values.size());
    for (size_t i = 0; i < values.size(); ++i) want[i] = reference_round<To>(values[i]);
    DeviceArray<From> src(values);
    DeviceArray<To> dst(values.size());
    expect_ok(cuda::convert<From, To>(src.get(), dst.get(), n, nullptr));
    expect_no_cuda_error();
    const std::vector<float> got = dst.download();
    size_t mismatches = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (!(got[i] == want[i])) ++mismatches;
    }
    CHECK(mismatches == 0);
    expect_close(std::string("convert→") + dtype_name<To>(), dtype_name<From>(), "n=" + std::to_string(n),
                 normalized_error(got, want), 0.0, dst.guards_intact());
  }
}

// A device buffer of raw bytes: the embedding table in its file dtype.
class DeviceBytes {
 public:
  explicit DeviceBytes(const void* host, size_t bytes) {
    if (cudaMalloc(&ptr_, bytes) != cudaSuccess) {
      ptr_ = nullptr;
      CHECK(!"cudaMalloc failed in a test");
      return;
    }
    cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice);
  }
  ~DeviceBytes() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  const void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
};

template <typename T>
void check_embedding() {
  const int64_t V = 50;
  const int64_t shapes[][2] = {{1, 4099}, {7, 17}, {33, 96}, {33, 1}, {7, 4099}};
  const cpu::WeightType types[] = {cpu::WeightType::F32, cpu::WeightType::BF16, cpu::WeightType::F16};
  const char* type_names[] = {"F32", "BF16", "F16"};
  uint64_t seed = 400;
  for (const auto& s : shapes) {
    const int64_t tokens = s[0], H = s[1];
    // ids over the whole table, the last row included, with repeats.
    std::vector<float> ids_f = random_values(tokens, seed++, 0.0f, static_cast<float>(V));
    for (float& id : ids_f) id = static_cast<float>(static_cast<int32_t>(id));
    ids_f[0] = static_cast<float>(V - 1);
    std::vector<int32_t> ids(tokens);
    for (int64_t t = 0; t < tokens; ++t) ids[t] = static_cast<int32_t>(ids_f[t]);
    DeviceArray<int32_t> dids(ids_f);
    const std::vector<float> values = random_values(V * H, seed++, -2.0f, 2.0f);
    for (int k = 0; k < 3; ++k) {
      // The table's bytes as the file holds them, for the CPU op and the GPU alike.
      std::vector<float> f32_table;
      std::vector<uint16_t> half_table;
      const void* host_table = nullptr;
      size_t bytes = 0;
      if (types[k] == cpu::WeightType::F32) {
        f32_table = values;
        host_table = f32_table.data();
        bytes = f32_table.size() * sizeof(float);
      } else {
        half_table.resize(values.size());
        for (size_t i = 0; i < values.size(); ++i) {
          half_table[i] =
              types[k] == cpu::WeightType::BF16 ? attune::f32_to_bf16(values[i]) : attune::f32_to_f16(values[i]);
        }
        host_table = half_table.data();
        bytes = half_table.size() * sizeof(uint16_t);
      }
      std::vector<float> want(tokens * H);
      cpu::embedding_forward(cpu_pool(), ids.data(), tokens, host_table, types[k], H, want.data());
      want = rounded<T>(want);  // the GPU op stores T: the table value rounded once
      DeviceBytes table(host_table, bytes);
      DeviceArray<T> out(tokens * H);
      expect_ok(cuda::embedding_forward<T>(dids.get(), tokens, table.get(), types[k], H, out.get(), nullptr));
      expect_no_cuda_error();
      // Exact: a table value rounded once to T on both sides.
      expect_close("embedding_forward", dtype_name<T>(),
                   std::string(type_names[k]) + " T=" + std::to_string(tokens) + " H=" + std::to_string(H),
                   normalized_error(out.download(), want), 0.0, out.guards_intact());
    }
  }
}

}  // namespace

TEST(swiglu_matches_cpu) {
  check_swiglu<float>();
  check_swiglu<bf16>();
}

TEST(add_bias_and_scale_match_cpu) {
  check_add_and_scale<float>();
  check_add_and_scale<bf16>();
}

TEST(convert_rounds_as_cpu) {
  check_convert<float, bf16>();
  check_convert<bf16, float>();
  check_convert<float, float>();
  check_convert<bf16, bf16>();
}

TEST(embedding_matches_cpu) {
  check_embedding<float>();
  check_embedding<bf16>();
}

TEST(elementwise_sizes_are_checked) {
  // Refused or a no-op before any launch: no device memory is touched (null pointers are fine).
  CHECK(cuda::swiglu_forward<float>(nullptr, nullptr, -1, nullptr, nullptr).code() ==
        attune::StatusCode::kInvalidArgument);
  CHECK(cuda::swiglu_forward<bf16>(nullptr, nullptr, 0, nullptr, nullptr).ok());
  CHECK(cuda::swiglu_backward<float>(nullptr, nullptr, nullptr, -3, nullptr, nullptr, nullptr).code() ==
        attune::StatusCode::kInvalidArgument);
  CHECK(cuda::add_inplace<float>(nullptr, nullptr, 0, nullptr).ok());
  CHECK(cuda::add_inplace<bf16>(nullptr, nullptr, 5, nullptr).code() == attune::StatusCode::kInvalidArgument);
  CHECK(cuda::add_bias<float>(nullptr, nullptr, -1, 4, nullptr).code() == attune::StatusCode::kInvalidArgument);
  CHECK(cuda::add_bias<bf16>(nullptr, nullptr, 3, 0, nullptr).ok());
  CHECK(cuda::scale_inplace<float>(nullptr, 2.0f, -1, nullptr).code() == attune::StatusCode::kInvalidArgument);
  CHECK((cuda::convert<float, bf16>(nullptr, nullptr, -1, nullptr).code() == attune::StatusCode::kInvalidArgument));
  CHECK((cuda::convert<bf16, float>(nullptr, nullptr, 0, nullptr).ok()));
  CHECK(cuda::embedding_forward<float>(nullptr, -1, nullptr, cpu::WeightType::F32, 8, nullptr, nullptr).code() ==
        attune::StatusCode::kInvalidArgument);
  CHECK(cuda::embedding_forward<bf16>(nullptr, 0, nullptr, cpu::WeightType::BF16, 8, nullptr, nullptr).ok());
  expect_no_cuda_error();
}
