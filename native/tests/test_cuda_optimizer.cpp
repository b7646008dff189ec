// The CUDA optimizer ops (cuda/ops_optimizer.h) against the CPU's train::adamw_step and
// train::clip_grad_norm: AdamW bit for bit over several steps (both lerp branches, with and
// without weight decay, gradients down to subnormal squares); the gradient norm within the CPU
// fp32 summation's error (and against an exact double norm); the clip coefficient and the
// scaling bit for bit given the same norm.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cuda/ops_optimizer.h"
#include "cuda_test.h"
#include "status_matchers.h"
#include "train/adamw.h"
#include "train/grad_clip.h"

namespace {

using attune::train::AdamWOptions;
using attune::train::AdamWState;
using attune::train::GradSpan;
using attune_test::succeeds;
using namespace attune_test::gpu;

// Device memory for a few doubles (DeviceArray holds float, bf16, int32 and uint8 only).
class DeviceDoubles {
 public:
  explicit DeviceDoubles(size_t n) {
    void* raw = nullptr;
    if (cudaMalloc(&raw, (n > 0 ? n : 1) * sizeof(double)) == cudaSuccess) ptr_ = static_cast<double*>(raw);
    CHECK(ptr_ != nullptr);
  }
  ~DeviceDoubles() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceDoubles(const DeviceDoubles&) = delete;
  DeviceDoubles& operator=(const DeviceDoubles&) = delete;
  double* get() { return ptr_; }
  double value() const {
    double v = NAN;
    if (ptr_) cudaMemcpy(&v, ptr_, sizeof v, cudaMemcpyDeviceToHost);
    return v;
  }
  void set(double v) {
    if (ptr_) cudaMemcpy(ptr_, &v, sizeof v, cudaMemcpyHostToDevice);
  }

 private:
  double* ptr_ = nullptr;
};

// Gradients of very different magnitudes: element i is scaled by 10^−(i mod 45), so g² spans the
// normal range, the subnormals (below 1.2e-38) and underflows to 0, and v takes subnormal values.
std::vector<float> make_grad(int64_t n, uint64_t seed) {
  std::vector<float> g = random_values(static_cast<size_t>(n), seed);
  for (int64_t i = 0; i < n; ++i) {
    const double scale = std::pow(10.0, static_cast<double>(-(i % 45)));
    g[static_cast<size_t>(i)] = static_cast<float>(static_cast<double>(g[static_cast<size_t>(i)]) * scale);
  }
  if (n > 3) g[3] = 0.0f;
  return g;
}

void check_adamw(const AdamWOptions& options, const char* label, int64_t n, uint64_t seed) {
  std::vector<float> cpu_param = random_values(static_cast<size_t>(n), seed);
  AdamWState state;
  DeviceArray<float> param(cpu_param);
  DeviceArray<float> m(std::vector<float>(static_cast<size_t>(n), 0.0f));
  DeviceArray<float> v(std::vector<float>(static_cast<size_t>(n), 0.0f));
  double worst = 0;
  const int kSteps = 6;
  for (int step = 1; step <= kSteps; ++step) {
    const double lr = 1e-3 * (1.0 + 0.37 * step);  // a scheduler changes it between steps
    const std::vector<float> grad = make_grad(n, seed * 100 + static_cast<uint64_t>(step));
    CHECK(succeeds(attune::train::adamw_step(options, lr, cpu_param.data(), grad.data(), n, &state)));
    DeviceArray<float> d_grad(grad);
    CHECK(succeeds(attune::cuda::adamw_step(options, lr, state.step, param.get(), d_grad.get(), m.get(), v.get(), n,
                                            nullptr)));
    expect_no_cuda_error();
    // Every step, so that a difference is seen where it starts.
    worst = std::max(worst, bitwise_error(param.download(), cpu_param, "param"));
    worst = std::max(worst, bitwise_error(m.download(), state.exp_avg, "exp_avg"));
    worst = std::max(worst, bitwise_error(v.download(), state.exp_avg_sq, "exp_avg_sq"));
    if (worst != 0) {
      std::printf("  (at step %d)\n", step);
      break;
    }
  }
  expect_close("adamw_step bitwise", "f32", std::string(label) + " n=" + std::to_string(n) + " " +
               std::to_string(kSteps) + " steps", worst, 0.0,
               param.guards_intact() && m.guards_intact() && v.guards_intact());
}

// The gradient tensors of one clipping test: host copies and device arrays.
struct Grads {
  std::vector<std::vector<float>> host;
  std::vector<std::unique_ptr<DeviceArray<float>>> device;

  explicit Grads(const std::vector<int64_t>& sizes, uint64_t seed) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      host.push_back(random_values(static_cast<size_t>(sizes[i]), seed + i));
      device.push_back(std::make_unique<DeviceArray<float>>(host.back()));
    }
  }
  std::vector<attune::cuda::DeviceGrad> descriptors() {
    std::vector<attune::cuda::DeviceGrad> d;
    for (auto& a : device) d.push_back({a->get(), static_cast<int64_t>(a->size())});
    return d;
  }
  std::vector<GradSpan> spans() {
    std::vector<GradSpan> s;
    for (auto& h : host) s.push_back({h.data(), static_cast<int64_t>(h.size())});
    return s;
  }
  bool guards_intact() const {
    for (const auto& a : device) {
      if (!a->guards_intact()) return false;
    }
    return true;
  }
};

// train::clip_grad_norm's coefficient for a total norm, as it computes it.
float cpu_coef(float total, double max_norm) {
  const float shifted = total + static_cast<float>(1e-6);
  const float reciprocal = 1.0f / shifted;
  const float clip = reciprocal * static_cast<float>(max_norm);
  return std::min(clip, 1.0f);
}

float download_float(const DeviceArray<float>& a) { return a.download()[0]; }

void check_clipping(const std::vector<int64_t>& sizes, const std::string& label, double max_norm, uint64_t seed) {
  Grads grads(sizes, seed);
  const std::vector<attune::cuda::DeviceGrad> desc = grads.descriptors();
  const int64_t count = static_cast<int64_t>(desc.size());
  const float cpu_total = attune::train::total_grad_norm(grads.spans());
  double exact_sq = 0;
  for (const auto& h : grads.host) {
    for (float x : h) exact_sq += static_cast<double>(x) * x;
  }
  const double exact = std::sqrt(exact_sq);

  DeviceDoubles workspace(static_cast<size_t>(attune::cuda::grad_sum_squares_workspace(count)));
  DeviceDoubles sum_sq(1);
  DeviceArray<float> total(1), coef(1);
  CHECK(succeeds(attune::cuda::grad_sum_squares(desc.data(), count, workspace.get(), sum_sq.get(), nullptr)));
  const double first_sum = sum_sq.value();
  // Deterministic: the same bits again.
  CHECK(succeeds(attune::cuda::grad_sum_squares(desc.data(), count, workspace.get(), sum_sq.get(), nullptr)));
  const double second_sum = sum_sq.value();
  CHECK(std::memcmp(&first_sum, &second_sum, sizeof(double)) == 0);
  CHECK(succeeds(attune::cuda::grad_clip_coef(sum_sq.get(), max_norm, total.get(), coef.get(), nullptr)));
  expect_no_cuda_error();
  const float gpu_total = download_float(total);
  const std::string shape = label + " max_norm=" + std::to_string(max_norm);
  // Against torch's fp32 summation (the CPU op): its rounding error, ~1e-7 at these sizes.
  expect_close("grad norm vs CPU", "f32", shape, std::fabs(gpu_total - cpu_total) / cpu_total, 1e-6,
               total.guards_intact());
  // Against the exact norm: within fp32's last bit (the double sum is practically exact).
  expect_close("grad norm vs exact", "f32", shape, std::fabs(gpu_total - exact) / exact, 1.2e-7);
  expect_close("clip coef vs CPU", "f32", shape,
               std::fabs(download_float(coef) - cpu_coef(cpu_total, max_norm)) / cpu_coef(cpu_total, max_norm), 1e-6,
               coef.guards_intact());

  // Given the CPU's norm (t² is exact in double, and its square root is t again), the coefficient
  // must be the CPU's bit for bit.
  sum_sq.set(static_cast<double>(cpu_total) * static_cast<double>(cpu_total));
  CHECK(succeeds(attune::cuda::grad_clip_coef(sum_sq.get(), max_norm, total.get(), coef.get(), nullptr)));
  expect_no_cuda_error();
  const float want_coef = cpu_coef(cpu_total, max_norm);
  expect_close("clip coef (CPU norm) bitwise", "f32", shape,
               std::max(bitwise_error(total.download(), {cpu_total}, "total"),
                        bitwise_error(coef.download(), {want_coef}, "coef")),
               0.0);

  // The scaling with that coefficient, against the CPU's clip_grad_norm (which scales by the same).
  CHECK(succeeds(attune::cuda::grad_scale(desc.data(), count, coef.get(), nullptr)));
  expect_no_cuda_error();
  std::vector<GradSpan> spans = grads.spans();
  const float returned = attune::train::clip_grad_norm(spans, max_norm);
  CHECK(returned == cpu_total);
  double worst = 0;
  for (size_t i = 0; i < grads.host.size(); ++i) {
    worst = std::max(worst, bitwise_error(grads.device[i]->download(), grads.host[i], "scaled gradient"));
  }
  expect_close("grad_scale bitwise", "f32", shape, worst, 0.0, grads.guards_intact());
}

}  // namespace

TEST(adamw_matches_the_cpu_bit_for_bit) {
  AdamWOptions defaults;  // β1 0.9 (lerp weight 0.1: the small-weight branch), weight decay 0.01
  AdamWOptions other;
  other.beta1 = 0.4;  // lerp weight 0.6: the other branch of torch's lerp
  other.beta2 = 0.99;
  other.eps = 1e-6;
  other.weight_decay = 0;
  uint64_t seed = 1;
  for (int64_t n : {1, 63, 1000, 4097, 100003}) {
    check_adamw(defaults, "defaults", n, seed++);
    check_adamw(other, "β1=0.4 β2=0.99 eps=1e-6 wd=0", n, seed++);
  }
}

TEST(adamw_refuses_bad_arguments) {
  AdamWOptions o;
  DeviceArray<float> a(4);
  CHECK(!attune::cuda::adamw_step(o, 1e-3, 1, a.get(), a.get(), a.get(), a.get(), -1, nullptr).ok());
  CHECK(!attune::cuda::adamw_step(o, 1e-3, 0, a.get(), a.get(), a.get(), a.get(), 4, nullptr).ok());
  CHECK(!attune::cuda::adamw_step(o, 1e-3, 1, nullptr, a.get(), a.get(), a.get(), 4, nullptr).ok());
  CHECK(attune::cuda::adamw_step(o, 1e-3, 1, nullptr, nullptr, nullptr, nullptr, 0, nullptr).ok());
  expect_no_cuda_error();
}

TEST(gradient_clipping_matches_the_cpu) {
  const std::vector<int64_t> mixed = {1, 7, 0, 1000, 4097, 65536, 100003};
  check_clipping(mixed, "7 tensors", 0.5, 100);   // clips: the norm is ~300
  check_clipping(mixed, "7 tensors", 1e6, 200);   // does not: the coefficient is 1
  // More tensors than one launch takes (32), as LoRA's many small A and B matrices.
  std::vector<int64_t> many;
  for (int64_t i = 0; i < 70; ++i) many.push_back(37 * i + 1);
  check_clipping(many, "70 tensors", 1.0, 300);
  check_clipping({5}, "1 tensor", 0.1, 400);
}

TEST(gradient_norm_of_no_tensors_is_zero) {
  DeviceDoubles sum_sq(1);
  sum_sq.set(5.0);
  CHECK(succeeds(attune::cuda::grad_sum_squares(nullptr, 0, nullptr, sum_sq.get(), nullptr)));
  CHECK(succeeds(attune::cuda::grad_scale(nullptr, 0, nullptr, nullptr)));
  expect_no_cuda_error();
  CHECK(sum_sq.value() == 0.0);
}
