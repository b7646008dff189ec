#include <chrono>
#include <cmath>
#include <thread>
#include <vector>

#include "attune/cpu_benchmark.h"
#include "check.h"

using attune::CancelToken;
using attune::CpuBenchmarkProgress;
using attune::CpuBenchmarkResult;

TEST(reports_throttled_progress_and_a_positive_rate) {
  CancelToken cancel;
  std::vector<CpuBenchmarkProgress> progress;
  CpuBenchmarkResult result;
  const auto status =
      attune::cpu_benchmark(0.5, cancel, [&](const CpuBenchmarkProgress& p) { progress.push_back(p); }, &result);
  CHECK(status.ok());
  CHECK(result.gflops > 0);
  CHECK(result.iterations > 0);
  CHECK(result.seconds >= 0.5);
  CHECK(!progress.empty());
  CHECK(progress.size() <= 6);  // at most one per 100 ms over ~0.5 s
  for (size_t i = 0; i < progress.size(); ++i) {
    CHECK(progress[i].fraction > 0 && progress[i].fraction < 1);
    CHECK(progress[i].gflops > 0);
    if (i > 0) CHECK(progress[i].fraction > progress[i - 1].fraction);
  }
}

TEST(stops_soon_after_cancel) {
  CancelToken cancel;
  CpuBenchmarkResult result;
  const auto start = std::chrono::steady_clock::now();
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel.cancel();
  });
  const auto status = attune::cpu_benchmark(30, cancel, nullptr, &result);
  canceller.join();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(status.code() == attune::StatusCode::kCancelled);
  CHECK(elapsed < 5);
}

TEST(rejects_bad_durations) {
  CancelToken cancel;
  CpuBenchmarkResult result;
  CHECK(attune::cpu_benchmark(0, cancel, nullptr, &result).code() == attune::StatusCode::kInvalidArgument);
  CHECK(attune::cpu_benchmark(-1, cancel, nullptr, &result).code() == attune::StatusCode::kInvalidArgument);
  CHECK(attune::cpu_benchmark(601, cancel, nullptr, &result).code() == attune::StatusCode::kInvalidArgument);
  CHECK(attune::cpu_benchmark(std::nan(""), cancel, nullptr, &result).code() == attune::StatusCode::kInvalidArgument);
}
