// Rotary position embedding on the GPU, in place: the same semantics as cpu::rope_forward
// (cpu/ops.h) and cpu::rope_backward (cpu/ops_backward.h) on T = float or bf16 activations, with
// fp32 cos/sin tables (as model/rope_table.h builds them). Each pair is rotated in fp32 and rounded once on store.
//
// All pointers are device pointers. A negative size, an odd or zero dim with work to do, or a
// null pointer with work to do is Status::invalid_argument; tokens == 0 or heads == 0 launches
// nothing. As on the CPU, positions are checked against the tables' max_positions by the caller:
// the kernel does not know it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "attune/status.h"

namespace attune::cuda {

// x: T[tokens, heads, dim] rotated in place, rotate-half convention: for i < dim/2,
// (a, b) = (x[i], x[i + dim/2]) → (a·cos − b·sin, b·cos + a·sin), with cos/sin from the fp32
// tables [max_positions, dim/2] at row positions[t] (positions: int32 [tokens]).
template <typename T>
Status rope_forward(T* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t dim,
                    const float* cos_table, const float* sin_table, cudaStream_t stream);

// dx: T[tokens, heads, dim] in place, the inverse rotation (the backward of rope_forward):
// (a, b) = (dx[i], dx[i + dim/2]) → (a·cos + b·sin, b·cos − a·sin). Same tables and positions.
template <typename T>
Status rope_backward(T* dx, const int32_t* positions, int64_t tokens, int64_t heads, int64_t dim,
                     const float* cos_table, const float* sin_table, cudaStream_t stream);

}  // namespace attune::cuda
