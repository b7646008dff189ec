#pragma once

namespace attune {

// attune-engine bench-decode --model DIR [--device auto|cuda|cpu] [--precision bf16|f32] [--prompt 512]
//   [--new-tokens 128] [--adapter none|lora] [--rank 16] [--warmup 1] [--repeats 3] [--threads N] [--seed 0]
// Greedy batch-1 decode of a random prompt: one JSON line per timed run in bench/gpu's format.
int run_bench_decode(int argc, char** argv);

}  // namespace attune
