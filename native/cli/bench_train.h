#pragma once

namespace attune {

// attune-engine bench-train --model DIR --method lora|dora|qlora|qdora [--seq 512] [--batch 1]
//   [--checkpointing on|off] [--rank 16] [--warmup 3] [--steps 10] [--device auto|cuda|cpu]
//   [--precision bf16|f32] [--threads N]
// Trains an adapter on seeded random tokens and prints one JSON line in bench/gpu's format:
// tokens/s and the median step time, peak memory, first and last loss.
int run_bench_train(int argc, char** argv);

}  // namespace attune
