#include "attune/cpu_benchmark.h"

#include <chrono>
#include <vector>

#include "attune/system_info.h"
#include "backend.h"

namespace attune {

namespace {
constexpr int kSize = 512;  // big enough to be compute-bound, small enough to cancel within ms
constexpr double kMaxSeconds = 600;
constexpr std::chrono::milliseconds kProgressInterval{100};
}  // namespace

Status cpu_benchmark(double seconds, const CancelToken& cancel, const CpuBenchmarkProgressFn& on_progress,
                     CpuBenchmarkResult* result) {
  // a, b, c: [kSize, kSize] fp32; c = a · b once per iteration.
  if (!(seconds > 0 && seconds <= kMaxSeconds)) {
    return Status::invalid_argument("The benchmark duration must be more than 0 and at most 600 seconds");
  }
  const size_t elements = static_cast<size_t>(kSize) * kSize;
  std::vector<float> a(elements), b(elements), c(elements);
  for (size_t i = 0; i < elements; ++i) {
    // Small non-trivial values keep the products finite and away from denormals.
    a[i] = static_cast<float>(i % 7) * 0.25f - 0.75f;
    b[i] = static_cast<float>(i % 5) * 0.5f - 1.0f;
  }
  const double flops_per_iteration = 2.0 * kSize * kSize * kSize;
  auto backend = make_cpu_backend(available_cpu_threads());

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto last_progress = start;
  std::uint64_t iterations = 0;
  double elapsed = 0;
  while (elapsed < seconds) {
    if (cancel.cancelled()) return Status::cancelled();
    Status status = backend->matmul_f32(a.data(), b.data(), c.data(), kSize, kSize, kSize);
    if (!status.ok()) return status;
    ++iterations;
    const auto now = Clock::now();
    elapsed = std::chrono::duration<double>(now - start).count();
    if (on_progress && now - last_progress >= kProgressInterval && elapsed < seconds) {
      last_progress = now;
      on_progress({elapsed / seconds, iterations * flops_per_iteration / elapsed / 1e9});
    }
  }
  result->gflops = iterations * flops_per_iteration / elapsed / 1e9;
  result->iterations = iterations;
  result->seconds = elapsed;
  return {};
}

}  // namespace attune
