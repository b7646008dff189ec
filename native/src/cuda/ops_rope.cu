// RoPE kernels (ops_rope.h). One block per token (grid-stride over tokens): the token's position,
// and so its cos/sin row, is the same for all of its heads. The block's threads take the
// (head, i) pairs of that token, each thread one pair at a time: it reads x[i] and x[i + dim/2],
// rotates them in fp32 and writes both back. No pair shares an element with another, so the
// rotation in place needs no synchronization.
#include "cuda/ops_rope.h"

#include <algorithm>
#include <climits>
#include <string>

#include "cuda/cuda_status.h"
#include "cuda/dtype.cuh"

namespace attune::cuda {

namespace {

constexpr long long kMaxBlocks = 1 << 16;  // grid-stride over tokens beyond this
constexpr unsigned kMaxThreads = 256;

// sign = +1: the forward rotation by the position's angle; −1: by minus that angle (the inverse,
// which is the backward, as cpu's rotate()). pairs = heads · half fits in 32 bits (checked by the
// launcher), so the (head, i) split of a pair index is a 32-bit division.
template <typename T>
__global__ void __launch_bounds__(kMaxThreads)
    rope_kernel(T* x, const int32_t* positions, int64_t tokens, unsigned half, unsigned pairs, const float* cos_table,
                const float* sin_table, float sign) {
  const int64_t dim = 2 * static_cast<int64_t>(half);
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    const int64_t table_row = static_cast<int64_t>(positions[t]) * half;
    const float* c = cos_table + table_row;
    const float* s = sin_table + table_row;
    T* token = x + t * static_cast<int64_t>(pairs) * 2;  // heads · dim elements a token
    for (unsigned p = threadIdx.x; p < pairs; p += blockDim.x) {
      const unsigned h = p / half;
      const unsigned i = p - h * half;
      T* row = token + h * dim;
      const float a = to_float(row[i]);
      const float b = to_float(row[i + half]);
      const float cos_v = c[i];
      const float sin_v = sign * s[i];
      row[i] = from_float<T>(a * cos_v - b * sin_v);
      row[i + half] = from_float<T>(b * cos_v + a * sin_v);
    }
  }
}

template <typename T>
Status rope(const char* op, T* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t dim,
            const float* cos_table, const float* sin_table, float sign, cudaStream_t stream) {
  auto invalid = [op](const char* why) { return Status::invalid_argument(std::string(op) + ": " + why); };
  if (tokens < 0 || heads < 0 || dim < 0) return invalid("negative size");
  if (tokens == 0 || heads == 0) return Status();
  // The CPU op would leave the last element of an odd dim unrotated; no model has one, so an odd
  // dim is taken as the caller's mistake.
  if (dim == 0 || dim % 2 != 0) return invalid("the head dim must be even and positive");
  const int64_t half = dim / 2;
  if (heads > INT_MAX / half) return invalid("heads · dim/2 does not fit in 32 bits");
  if (!x || !positions || !cos_table || !sin_table) return invalid("null device pointer");
  const int64_t pairs = heads * half;
  const unsigned threads = static_cast<unsigned>(std::min<int64_t>((pairs + 31) / 32 * 32, kMaxThreads));
  const unsigned blocks = static_cast<unsigned>(std::min<long long>(tokens, kMaxBlocks));
  rope_kernel<T><<<blocks, threads, 0, stream>>>(x, positions, tokens, static_cast<unsigned>(half),
                                                 static_cast<unsigned>(pairs), cos_table, sin_table, sign);
  return check_launch(op);
}

}  // namespace

template <typename T>
Status rope_forward(T* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t dim,
                    const float* cos_table, const float* sin_table, cudaStream_t stream) {
  return rope("rope_forward", x, positions, tokens, heads, dim, cos_table, sin_table, 1.0f, stream);
}

template <typename T>
Status rope_backward(T* dx, const int32_t* positions, int64_t tokens, int64_t heads, int64_t dim,
                     const float* cos_table, const float* sin_table, cudaStream_t stream) {
  return rope("rope_backward", dx, positions, tokens, heads, dim, cos_table, sin_table, -1.0f, stream);
}

template Status rope_forward<float>(float*, const int32_t*, int64_t, int64_t, int64_t, const float*, const float*,
                                    cudaStream_t);
template Status rope_forward<bf16>(bf16*, const int32_t*, int64_t, int64_t, int64_t, const float*, const float*,
                                   cudaStream_t);
template Status rope_backward<float>(float*, const int32_t*, int64_t, int64_t, int64_t, const float*, const float*,
                                     cudaStream_t);
template Status rope_backward<bf16>(bf16*, const int32_t*, int64_t, int64_t, int64_t, const float*, const float*,
                                    cudaStream_t);

}  // namespace attune::cuda
