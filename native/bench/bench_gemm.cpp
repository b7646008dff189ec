// Micro-benchmark of attune::cpu::linear on a small Llama's shapes: prefill (T = 512) in GFLOP/s and
// decode (T = 1) in ms per call, fp32 and bf16 weights, 1 and 2 threads. One tab-separated row per
// case, the format bench/torch_gemm.py reads to put PyTorch's numbers beside these.
//
//   bench_gemm [seconds per case (default 1)] [generic|avx2|avx512]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu/gemm.h"

namespace {

using attune::cpu::WeightType;

// Median seconds per call of fn: one warm-up call, then calls until `seconds` have passed (at least
// 5). The median, not the mean: on a shared machine it shrugs off calls another process slowed.
template <typename Fn>
double time_per_call(double seconds, const Fn& fn) {
  using Clock = std::chrono::steady_clock;
  fn();
  std::vector<double> times;
  const auto start = Clock::now();
  while (times.size() < 5 || std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
    const auto t0 = Clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

void bench(double seconds, unsigned threads, WeightType type, int64_t T, int64_t in, int64_t out) {
  // x: [T, in], w: [out, in] in `type`, y: [T, out]; small values keep everything finite.
  std::vector<float> x(static_cast<size_t>(T * in)), y(static_cast<size_t>(T * out));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 13) * 0.01f - 0.06f;
  const size_t weights = static_cast<size_t>(out * in);
  std::vector<float> w32(type == WeightType::F32 ? weights : 0);
  std::vector<uint16_t> w16(type == WeightType::F32 ? 0 : weights);
  for (size_t i = 0; i < w32.size(); ++i) w32[i] = static_cast<float>(i % 7) * 0.01f - 0.03f;
  for (size_t i = 0; i < w16.size(); ++i) w16[i] = static_cast<uint16_t>(0x3c00 + i % 64);  // ~1 in bf16
  const void* w = type == WeightType::F32 ? static_cast<const void*>(w32.data()) : w16.data();

  attune::cpu::ThreadPool pool(threads);
  const double t = time_per_call(seconds, [&] {
    attune::cpu::linear(pool, x.data(), w, type, nullptr, y.data(), T, in, out);
  });
  const char* type_name = type == WeightType::F32 ? "f32" : "bf16";
  if (T == 1) {
    std::printf("decode\t%lld\t%lld\t%lld\t%s\t%u\t%.4f\tms\n", static_cast<long long>(T), static_cast<long long>(in),
                static_cast<long long>(out), type_name, threads, t * 1e3);
  } else {
    std::printf("prefill\t%lld\t%lld\t%lld\t%s\t%u\t%.1f\tGFLOP/s\n", static_cast<long long>(T),
                static_cast<long long>(in), static_cast<long long>(out), type_name, threads,
                2.0 * T * in * out / t / 1e9);
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  if (argc > 2) {
    const char* name = argv[2];
    const auto path = std::strcmp(name, "generic") == 0 ? attune::cpu::SimdPath::kGeneric
                      : std::strcmp(name, "avx2") == 0  ? attune::cpu::SimdPath::kAvx2
                      : std::strcmp(name, "avx512") == 0 ? attune::cpu::SimdPath::kAvx512
                                                         : attune::cpu::SimdPath::kAuto;
    if (!attune::cpu::force_simd_path(path)) {
      std::fprintf(stderr, "bench_gemm: this CPU or build cannot run the %s kernels\n", name);
      return 1;
    }
  }
  std::printf("# attune kernels: %s\n# case\tT\tin\tout\tweights\tthreads\tvalue\tunit\n", attune::cpu::simd_path_name());
  for (unsigned threads : {1u, 2u})
    for (WeightType type : {WeightType::F32, WeightType::BF16}) {
      for (int64_t out : {768, 2048, 32000}) bench(seconds, threads, type, 512, 768, out);
      for (int64_t out : {768, 2048, 32000}) bench(seconds, threads, type, 1, 768, out);
    }
  return 0;
}
