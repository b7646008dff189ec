// attune-engine: the engine without Node, for benchmarks and golden checks on machines (like the
// GPU test machines) that have a compiler but no Node. Prints JSON on stdout, errors on stderr.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "attune/cpu_benchmark.h"
#include "attune/system_info.h"
#include "bench_inference.h"
#include "bench_decode.h"
#include "bench_train.h"
#include "json.h"

namespace {

constexpr const char* kUsage =
    "usage: attune-engine <command>\n"
    "  info                     system info as JSON (CPU, memory, CUDA devices and why not usable)\n"
    "  cpu-benchmark [seconds]  fp32 matmul throughput of the cpu backend as JSON (default 3 s)\n"
    "  bench-inference --model DIR [--threads N] [--prompt-tokens 512] [--decode-tokens 64]\n"
    "                           prefill tokens/s and decode ms/token of a model folder as JSON\n"
    "  bench-train --model DIR --method lora|dora|qlora|qdora [--seq 512] [--batch 1] [--checkpointing on|off]\n"
    "              [--rank 16] [--warmup 3] [--steps 10] [--device auto|cuda|cpu] [--precision bf16|f32] [--threads N]\n"
    "                           training tokens/s and peak memory of an adapter method as JSON\n"
    "  bench-decode --model DIR [--device auto|cuda|cpu] [--precision bf16|f32] [--prompt 512] [--new-tokens 128]\n"
    "               [--adapter none|lora] [--rank 16] [--warmup 1] [--repeats 3]\n"
    "                           greedy decode tokens/s and time to first token as JSON, one line per run\n";

int run_cpu_benchmark(int argc, char** argv) {
  double seconds = 3;
  if (argc > 2) {
    char* end = nullptr;
    seconds = std::strtod(argv[2], &end);
    if (end == argv[2] || *end != '\0') {
      std::fprintf(stderr, "attune-engine: '%s' is not a number of seconds\n", argv[2]);
      return 2;
    }
  }
  attune::CancelToken never_cancelled;
  attune::CpuBenchmarkResult result;
  const attune::Status status = attune::cpu_benchmark(
      seconds, never_cancelled,
      [](const attune::CpuBenchmarkProgress& p) {
        std::fprintf(stderr, "\r%3.0f%%  %.1f GFLOP/s", p.fraction * 100, p.gflops);
      },
      &result);
  std::fprintf(stderr, "\n");
  if (!status.ok()) {
    std::fprintf(stderr, "attune-engine: %s: %s\n", attune::status_code_name(status.code()), status.message().c_str());
    return 1;
  }
  std::printf("%s\n", attune::to_json(result).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "info") {
    std::printf("%s\n", attune::to_json(attune::query_system_info()).c_str());
    return 0;
  }
  if (command == "cpu-benchmark") return run_cpu_benchmark(argc, argv);
  if (command == "bench-inference") return attune::run_bench_inference(argc, argv);
  if (command == "bench-decode") return attune::run_bench_decode(argc, argv);
  if (command == "bench-train") return attune::run_bench_train(argc, argv);
  const bool asked = command == "help" || command == "--help" || command == "-h";
  std::fputs(kUsage, asked ? stdout : stderr);
  return asked ? 0 : 2;
}
