#pragma once

namespace attune {

// attune-engine bench-inference --model DIR [--threads N] [--prompt-tokens 512] [--decode-tokens 64]
// Prints one JSON line: prefill tokens/s and decode ms/token (medians after a warm-up run).
int run_bench_inference(int argc, char** argv);

}  // namespace attune
