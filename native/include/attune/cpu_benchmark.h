// "CPU speed" in the System panel: sustained fp32 matrix-multiply throughput of the cpu backend.
#pragma once

#include <cstdint>
#include <functional>

#include "attune/cancel.h"
#include "attune/status.h"

namespace attune {

struct CpuBenchmarkProgress {
  double fraction = 0;  // of the requested duration, 0..1
  double gflops = 0;    // average so far
};

struct CpuBenchmarkResult {
  double gflops = 0;
  std::uint64_t iterations = 0;
  double seconds = 0;  // measured, at least the requested duration unless cancelled
};

using CpuBenchmarkProgressFn = std::function<void(const CpuBenchmarkProgress&)>;

// Multiplies two 512x512 fp32 matrices on all available threads, repeatedly, for about `seconds`
// (0 < seconds <= 600). Calls on_progress at most every 100 ms, from the calling thread, and
// checks `cancel` between multiplications.
Status cpu_benchmark(double seconds, const CancelToken& cancel, const CpuBenchmarkProgressFn& on_progress,
                     CpuBenchmarkResult* result);

}  // namespace attune
