// Picking the next token on the GPU, so a decode step never copies its logits to the host: the
// same rule as the CPU's Sampler (generate/sampler.h), step for step — repetition penalty, then
// greedy (temperature 0) or temperature, top-k, top-p and a draw with one uniform number.
//
// GPU and CPU pick the same token for the same uniform: the host draws u from the Rng the CPU
// Sampler would use (Rng(seed).uniform(), once per non-greedy sample, in order) and uploads them;
// a device step counter says which one the next sample uses, so a CUDA graph can replay many
// decode steps with no host work between them. The arithmetic is the CPU's: the probabilities are
// the same fp32 values (exp rounded once to fp32, see ops_sampling.cu) and the sums double; where
// the candidate set is small (top-k ≤ 2048, or after top-p) the cut and the draw are the CPU's
// sequential loops over the sorted candidates, operation for operation. Larger sets are cut by a
// radix selection whose double sums are grouped differently from the CPU's running sum (relative
// differences ~1e-15), so a different token needs u within about that of a boundary.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "attune/status.h"

namespace attune::cuda {

// attune::SamplingParams without the seed (the seed stays on the host, in the Rng that draws the
// uniforms).
struct DecodeSamplingParams {
  float temperature = 0.0f;         // ≤ 0: greedy (argmax, first index among equal maxima)
  float top_p = 1.0f;               // < 1: keep the smallest sorted prefix whose probability reaches top_p
  int64_t top_k = 0;                // > 0: keep the top_k largest logits (ties: lower id first)
  float repetition_penalty = 1.0f;  // ≠ 1: each distinct context id once: l < 0 ? l·p : l/p
};

// token[0] = the id the CPU's Sampler::sample(logits, vocab, context) returns, for one row of
// logits[vocab] fp32, which is modified in place as the CPU modifies it (the penalty; the
// temperature is applied to copies). All pointers are device memory:
//   context[context_len[0]]  the ids so far (only read when the penalty is not 1; ids outside
//                            [0, vocab) are skipped, as on the CPU); context may be null then;
//   uniforms, step           u = uniforms[step[0]], and step[0] is incremented, when
//                            temperature > 0 (a greedy pick draws nothing, as on the CPU); step
//                            may be null: u = uniforms[0], nothing incremented; uniforms may be
//                            null when temperature ≤ 0;
//   token                    int32, written.
// Runs as one block on one SM (correctness first; not timed yet): a few full passes over the
// logits when the kept set is small, up to ~10 more (each with an exp per candidate token) when
// top-p or the draw must cut a set of more than 2048 tokens; expect tens of µs for 152k logits. NaN logits: the greedy pick skips them as
// std::max_element does (but index 0 wins when it is NaN); with temperature > 0 the CPU's sort is
// undefined for them, and so is this.
Status sample_token(float* logits, int64_t vocab, const int32_t* context, const int32_t* context_len,
                    const DecodeSamplingParams& params, const float* uniforms, int32_t* step, int32_t* token,
                    cudaStream_t stream);

}  // namespace attune::cuda
