// The CUDA cross-entropy (cuda/ops_loss.h) against cpu::cross_entropy_forward_backward on the same
// (dtype-rounded) logits: per-row losses, the gradient, in place and not, fp32 and bf16, with
// ignored rows, odd vocabulary sizes and logits large enough to overflow exp without the max.
// sum_floats against a host sum in double.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "cpu/ops_backward.h"
#include "cpu/thread_pool.h"
#include "cuda/ops_loss.h"
#include "cuda_test.h"
#include "status_matchers.h"

namespace {

using attune::cpu::ThreadPool;
using attune_test::succeeds;
using namespace attune_test::gpu;

// A device double for sum_floats (DeviceArray holds float, bf16, int32 and uint8 only).
class DeviceDouble {
 public:
  DeviceDouble() {
    void* raw = nullptr;
    if (cudaMalloc(&raw, sizeof(double)) == cudaSuccess) ptr_ = static_cast<double*>(raw);
    CHECK(ptr_ != nullptr);
  }
  ~DeviceDouble() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceDouble(const DeviceDouble&) = delete;
  DeviceDouble& operator=(const DeviceDouble&) = delete;
  double* get() { return ptr_; }
  void set(double v) {
    if (ptr_) cudaMemcpy(ptr_, &v, sizeof v, cudaMemcpyHostToDevice);
  }
  double value() const {
    double v = NAN;
    if (ptr_) cudaMemcpy(&v, ptr_, sizeof v, cudaMemcpyDeviceToHost);
    return v;
  }

 private:
  double* ptr_ = nullptr;
};

// Targets for `rows` rows of a V-word vocabulary: every fourth row from the third on is ignored
// (−100), the others uniform in [0, V) (from the same seeded generator as the logits).
std::vector<float> make_targets(int64_t rows, int64_t V, uint64_t seed) {
  const std::vector<float> u = random_values(static_cast<size_t>(rows), seed, 0.0f, 1.0f);
  std::vector<float> targets(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    int64_t t = static_cast<int64_t>(u[static_cast<size_t>(r)] * static_cast<float>(V));
    if (t >= V) t = V - 1;
    targets[static_cast<size_t>(r)] = r % 4 == 2 ? -100.0f : static_cast<float>(t);
  }
  return targets;
}

template <typename T>
void check_loss(int64_t rows, int64_t V, float range, bool in_place, uint64_t seed) {
  ThreadPool pool(2);
  const std::vector<float> logits = rounded<T>(random_values(static_cast<size_t>(rows * V), seed, -range, range));
  const std::vector<float> targets_f = make_targets(rows, V, seed + 1000);
  std::vector<int32_t> targets(targets_f.begin(), targets_f.end());
  int64_t counted = 0;
  for (int32_t t : targets) counted += t >= 0 ? 1 : 0;
  const float scale = counted > 0 ? 1.0f / static_cast<float>(counted) : 1.0f;

  // The CPU op row by row, for the per-row losses.
  std::vector<float> want_d(static_cast<size_t>(rows * V));
  std::vector<float> want_loss(static_cast<size_t>(rows));
  double want_total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t count = 0;
    const double loss = attune::cpu::cross_entropy_forward_backward(pool, logits.data() + r * V, targets.data() + r, 1,
                                                                    V, scale, want_d.data() + r * V, &count);
    want_loss[static_cast<size_t>(r)] = static_cast<float>(loss);
    want_total += loss;
  }

  DeviceArray<T> d_logits(logits);
  DeviceArray<int32_t> d_targets(targets_f);
  DeviceArray<float> d_loss(static_cast<size_t>(rows));
  DeviceArray<T> d_grad(in_place ? 0 : static_cast<size_t>(rows * V));
  T* grad = in_place ? d_logits.get() : d_grad.get();
  CHECK(succeeds(attune::cuda::cross_entropy_forward_backward<T>(d_logits.get(), d_targets.get(), rows, V, scale, grad,
                                                                 d_loss.get(), nullptr)));
  DeviceDouble total;
  CHECK(succeeds(attune::cuda::sum_floats(d_loss.get(), rows, total.get(), false, nullptr)));
  expect_no_cuda_error();

  const std::string shape = std::to_string(rows) + "x" + std::to_string(V) + " ±" +
                            std::to_string(static_cast<int>(range)) + (in_place ? " in place" : "");
  const DeviceArray<T>& grad_array = in_place ? d_logits : d_grad;
  expect_close("cross_entropy dlogits", dtype_name<T>(), shape, normalized_error(grad_array.download(), want_d),
               error_limit<T>(), grad_array.guards_intact());
  // The losses are computed in fp32/double whatever T is: fp32's limit.
  expect_close("cross_entropy row_loss", dtype_name<T>(), shape, normalized_error(d_loss.download(), want_loss),
               error_limit<float>(), d_loss.guards_intact());
  // The sum of the (fp32) row losses, against the CPU's double total.
  const double got_total = total.value();
  const double total_error = want_total != 0 ? std::fabs(got_total - want_total) / std::fabs(want_total)
                                             : std::fabs(got_total);
  expect_close("cross_entropy Σ row_loss", dtype_name<T>(), shape, std::isfinite(got_total) ? total_error : INFINITY,
               error_limit<float>());
}

template <typename T>
void check_all_shapes() {
  uint64_t seed = 11;
  for (int64_t rows : {1, 3, 17}) {
    for (int64_t V : {5, 1000, 32003}) {
      check_loss<T>(rows, V, 4.0f, false, seed++);
      check_loss<T>(rows, V, 4.0f, true, seed++);
    }
  }
  // Logits up to ±100: exp(100) overflows fp32, so this holds only with the max subtracted.
  check_loss<T>(5, 1000, 100.0f, false, seed++);
  check_loss<T>(5, 1000, 100.0f, true, seed++);
}

}  // namespace

TEST(cross_entropy_fp32_matches_the_cpu) { check_all_shapes<float>(); }

TEST(cross_entropy_bf16_matches_the_cpu) { check_all_shapes<bf16>(); }

TEST(cross_entropy_of_only_ignored_rows_is_zero) {
  const int64_t rows = 3, V = 7;
  DeviceArray<float> logits(random_values(static_cast<size_t>(rows * V), 5));
  DeviceArray<int32_t> targets(std::vector<float>(static_cast<size_t>(rows), -100.0f));
  DeviceArray<float> loss(static_cast<size_t>(rows));
  CHECK(succeeds(attune::cuda::cross_entropy_forward_backward<float>(logits.get(), targets.get(), rows, V, 0.5f,
                                                                     logits.get(), loss.get(), nullptr)));
  expect_no_cuda_error();
  expect_close("cross_entropy ignored rows", "f32", "3x7 in place", normalized_error(logits.download(),
               std::vector<float>(static_cast<size_t>(rows * V), 0.0f)), 0.0, logits.guards_intact());
  expect_close("cross_entropy ignored rows loss", "f32", "3", normalized_error(loss.download(),
               std::vector<float>(static_cast<size_t>(rows), 0.0f)), 0.0, loss.guards_intact());
}

TEST(sum_floats_sums_in_double_and_accumulates) {
  for (int64_t n : {0, 1, 17, 5000}) {
    const std::vector<float> x = random_values(static_cast<size_t>(n), 77 + static_cast<uint64_t>(n), -3.0f, 5.0f);
    double want = 0;
    for (float v : x) want += v;
    DeviceArray<float> dx(x);
    DeviceDouble out;
    out.set(123.0);
    CHECK(succeeds(attune::cuda::sum_floats(dx.get(), n, out.get(), false, nullptr)));
    const double got = out.value();
    CHECK(succeeds(attune::cuda::sum_floats(dx.get(), n, out.get(), true, nullptr)));
    const double got_twice = out.value();
    expect_no_cuda_error();
    const double scale = std::fabs(want) > 0 ? std::fabs(want) : 1.0;
    expect_close("sum_floats", "f32", std::to_string(n), std::fabs(got - want) / scale, 1e-12);
    expect_close("sum_floats accumulate", "f32", std::to_string(n), std::fabs(got_twice - 2 * want) / scale, 1e-12);
  }
}

TEST(cross_entropy_refuses_bad_arguments) {
  using attune::cuda::cross_entropy_forward_backward;
  DeviceArray<float> x(10);
  DeviceArray<int32_t> t(std::vector<float>{0.0f, 1.0f});
  DeviceArray<float> loss(2);
  CHECK(!cross_entropy_forward_backward<float>(x.get(), t.get(), -1, 5, 1.0f, x.get(), loss.get(), nullptr).ok());
  CHECK(!cross_entropy_forward_backward<float>(x.get(), t.get(), 2, 0, 1.0f, x.get(), loss.get(), nullptr).ok());
  CHECK(!cross_entropy_forward_backward<float>(nullptr, t.get(), 2, 5, 1.0f, x.get(), loss.get(), nullptr).ok());
  CHECK(!cross_entropy_forward_backward<float>(x.get(), t.get(), 2, 5, 1.0f, x.get(), nullptr, nullptr).ok());
  CHECK(cross_entropy_forward_backward<float>(x.get(), t.get(), 0, 5, 1.0f, x.get(), loss.get(), nullptr).ok());
  CHECK(!attune::cuda::sum_floats(x.get(), 3, nullptr, false, nullptr).ok());
  CHECK(!attune::cuda::sum_floats(nullptr, 3, nullptr, false, nullptr).ok());
  expect_no_cuda_error();
}
