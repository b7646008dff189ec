// The causal-LM loss and its gradient on the GPU: the loss part of the chunked fused lm_head +
// cross-entropy. The caller computes the logits of a chunk of rows (a GEMM into a reused
// [chunk, V] buffer), turns them into dlogits in place with cross_entropy_forward_backward, and
// multiplies dlogits back through lm_head before the next chunk, so the logits of the whole batch
// never exist at once. Same semantics as cpu::cross_entropy_forward_backward (cpu/ops_backward.h),
// except that the loss comes back per row, on the device (row_loss), instead of as a host sum:
// sum_floats reduces those rows without a round trip to the host.
//
// All pointers are device pointers. A negative size, V < 1 or a null pointer with work to do is
// Status::invalid_argument; rows == 0 launches nothing. Each launcher only enqueues work on
// `stream`; a launch failure is reported by check_launch(), a failure while the kernel runs by
// the next synchronizing CUDA call.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "attune/status.h"

namespace attune::cuda {

// logits, dlogits: T[rows, V]; targets: int32 [rows], negative (−100) = ignored; row_loss: fp32
// [rows]. One block per row, which:
//   - finds max = max_i logits[i] and sum = Σ_i exp(logits[i] − max) (the sum in double, as the
//     CPU op), reading the whole row before anything is written;
//   - row_loss[r] = log(sum) + max − logits[target] (computed in double, stored as fp32), or 0 for
//     an ignored row;
//   - dlogits[r, i] = scale·softmax_i − (i == target ? scale : 0), computed in fp32 as
//     fl(exp(x_i − max) · fl(scale / sum)) then minus scale, rounded once to T; all zeros for an
//     ignored row.
// dlogits may be logits itself (in place). scale is typically 1/(number of counted targets in the
// whole batch, over all chunks). Targets ≥ V are the caller's mistake (checked on the host, as
// for the CPU op); the kernel never reads outside the row for them: it writes a NaN row_loss (so
// the bug shows in the loss) and the gradient without its one-hot term.
// Precision against the CPU op: expf on the GPU is within 2 ulp (the CPU's std::exp within ~1),
// and the double sum runs in another order, so both outputs agree to ~1e-7 relative, not bitwise.
template <typename T>
Status cross_entropy_forward_backward(const T* logits, const int32_t* targets, int64_t rows, int64_t V, float scale,
                                      T* dlogits, float* row_loss, cudaStream_t stream);

// *out = Σ x[i] (or *out += Σ x[i] when accumulate), summed in double by one block in a fixed order:
// deterministic, run after run. Made for row_loss (at most a few thousand values per chunk);
// accumulate lets the chunks of a batch add into one device double. n == 0 writes 0 (or adds
// nothing); out must not be null.
Status sum_floats(const float* x, int64_t n, double* out, bool accumulate, cudaStream_t stream);

}  // namespace attune::cuda
