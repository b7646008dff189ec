// Token sampling on the GPU (ops_sampling.h), reproducing generate/sampler.cpp.
//
// The CPU sorts the logits (descending, lower id first among equal values), keeps the first top_k,
// takes p_i = exp((l_i − max)/T) in fp32, sums them in double, cuts the sorted list where the
// running sum of p_i/total first reaches top_p, and walks the kept prefix until the running sum
// exceeds u·kept_total. Everything here is one block of 512 threads:
//
//   1. penalty: the distinct context ids marked in a shared-memory bitmask (one bit per id), then
//      each marked logit divided or multiplied once, in place (as the CPU's unordered_set).
//   2. greedy: argmax as std::max_element (first maximum; NaN skipped, except at index 0).
//   3. every token gets a 64-bit key: the logit mapped to an order-preserving uint32 (−0 as +0, so
//      they tie as the CPU's `==` says) in the high half, 0xffffffff − id in the low half. The keys
//      are distinct and descending key order IS the CPU's sort order, so "the first j of the sorted
//      list" is "the j largest keys", and no sort of the whole row is needed.
//   4. a boundary in that order ("the first sorted token where a running sum of weights reaches a
//      threshold": the top_k-th token, the top-p cut, the drawn token) is found by radix selection
//      over the keys, 4 bits at a time from the top: one pass over the row sums the weight and
//      count of the remaining candidates per digit, thread 0 picks the digit where the threshold is
//      crossed, and once that digit holds ≤ 2048 tokens they are gathered into shared memory,
//      sorted (bitonic) and walked one by one exactly as the CPU walks them.
//   5. when the kept set is ≤ 2048 tokens (any top_k ≤ 2048, or what top-p keeps), it is gathered
//      and sorted whole and thread 0 runs the CPU's loops on it verbatim: the same fp32
//      probabilities summed in double in the same order, the same comparisons.
//
// Determinism: every sum is per thread in a fixed order, then over the warp and the block in a
// fixed tree (no floating-point atomics), so the same logits and u give the same token every run.
//
// The faster path (not needed for correctness): the passes over the row run on one SM; a
// multi-block histogram pass per digit (8-bit digits, probabilities cached in a workspace) would
// cut the large-set case from ~100 µs to a few µs.
//
// Registers (ptxas -v, CUDA 13.0): sample_kernel 113 at sm_90 and sm_75, no spills (the limit at
// 512 threads is 128). Not yet run on a GPU when written: the first run is
// tests/test_cuda_sampling.cpp. The selection logic (digits, thresholds, the rounding fallbacks)
// was checked against a transcription of Sampler::sample on random rows, off the GPU.
#include "cuda/ops_sampling.h"

#include <string>

#include "cuda/cuda_status.h"

namespace attune::cuda {

namespace {

constexpr int kThreads = 512;
constexpr int kWarpSize = 32;
constexpr int kWarps = kThreads / kWarpSize;
// Candidates gathered and sorted in shared memory: 2048 keys (16 KiB) + their probabilities.
constexpr int kCap = 2048;
constexpr int kDigitBits = 4;
constexpr int kBuckets = 1 << kDigitBits;
constexpr unsigned kFullMask = 0xffffffffu;

struct SampleShared {
  double warp_weight[kWarps][kBuckets];
  unsigned warp_count[kWarps][kBuckets];
  double weight[kBuckets];
  unsigned count[kBuckets];
  double reduce_d[kWarps];
  unsigned long long reduce_u[kWarps];
  // Broadcasts from thread 0.
  unsigned long long prefix;
  unsigned long long result;
  double above;
  int state;
  unsigned gathered;
};

// --- Keys and probabilities.

// A uint32 whose unsigned order is the float order (−0 mapped to +0 first: equal on the CPU).
__device__ __forceinline__ uint32_t ordered(float l) {
  const uint32_t bits = __float_as_uint(l == 0.0f ? 0.0f : l);
  return (bits & 0x80000000u) != 0 ? ~bits : (bits | 0x80000000u);
}

// Larger key = earlier in the CPU's order: larger logit first, then smaller id.
__device__ __forceinline__ uint64_t make_key(float l, int id) {
  return (static_cast<uint64_t>(ordered(l)) << 32) | (0xffffffffu - static_cast<uint32_t>(id));
}

__device__ __forceinline__ int key_id(uint64_t key) {
  return static_cast<int>(0xffffffffu - static_cast<uint32_t>(key));
}

struct Softmax {
  float max;
  float temperature;
};

// The CPU's probs_[i] = std::exp((l − max) / T) in fp32: the subtraction and division rounded as
// fp32 (the _rn intrinsics cannot be fused or approximated), the exponential computed in double
// and rounded once to fp32. That is the correctly rounded expf except when the double result lies
// within 2^-29 ulp of a rounding midpoint, and it is what glibc's expf returns (≤ 0.502 ulp, i.e.
// correctly rounded all but very rarely); CUDA's own expf is up to 2 ulp off.
__device__ __forceinline__ float probability(float l, const Softmax& s) {
  const float z = __fdiv_rn(__fsub_rn(l, s.max), s.temperature);
  return __double2float_rn(exp(static_cast<double>(z)));
}

// --- Block reductions: a fixed butterfly per warp, then the warps' results in warp order. Every
// thread returns the total. Each call ends with a barrier, so the scratch can be reused at once.

__device__ __forceinline__ double block_sum(double v, SampleShared& sh) {
  for (int o = kWarpSize / 2; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  if (threadIdx.x % kWarpSize == 0) sh.reduce_d[threadIdx.x / kWarpSize] = v;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < kWarps; ++w) total += sh.reduce_d[w];
  __syncthreads();
  return total;
}

enum class Combine { kSum, kMax, kMin };

template <Combine kOp>
__device__ __forceinline__ unsigned long long combine(unsigned long long a, unsigned long long b) {
  if constexpr (kOp == Combine::kSum) return a + b;
  if constexpr (kOp == Combine::kMax) return a > b ? a : b;
  return a < b ? a : b;
}

template <Combine kOp>
__device__ __forceinline__ unsigned long long block_reduce(unsigned long long v, SampleShared& sh) {
  for (int o = kWarpSize / 2; o > 0; o >>= 1) v = combine<kOp>(v, __shfl_xor_sync(kFullMask, v, o));
  if (threadIdx.x % kWarpSize == 0) sh.reduce_u[threadIdx.x / kWarpSize] = v;
  __syncthreads();
  unsigned long long total = sh.reduce_u[0];
  for (int w = 1; w < kWarps; ++w) total = combine<kOp>(total, sh.reduce_u[w]);
  __syncthreads();
  return total;
}

// --- Gather and sort.

// keys[0, n) = the keys ≥ lo with (key & mask) == prefix, sorted descending (the CPU's order);
// returns n. The callers know n ≤ kCap from an exact count.
__device__ int gather_sorted(const float* logits, int V, uint64_t lo, uint64_t mask, uint64_t prefix, uint64_t* keys,
                             SampleShared& sh) {
  if (threadIdx.x == 0) sh.gathered = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < V; i += kThreads) {
    const uint64_t key = make_key(logits[i], i);
    if (key >= lo && (key & mask) == prefix) {
      const unsigned slot = atomicAdd(&sh.gathered, 1u);  // any slot: the sort below fixes the order
      if (slot < kCap) keys[slot] = key;
    }
  }
  __syncthreads();
  const int n = sh.gathered < kCap ? static_cast<int>(sh.gathered) : kCap;
  int padded = 1;
  while (padded < n) padded <<= 1;
  // Padding keys are 0, below every real key (a real key's low half is ≥ 0xffffffff − id > 0).
  for (int j = n + threadIdx.x; j < padded; j += kThreads) keys[j] = 0;
  __syncthreads();
  // Bitonic sort, descending: runs of `size` alternate direction until the last merge.
  for (int size = 2; size <= padded; size <<= 1) {
    for (int stride = size / 2; stride > 0; stride >>= 1) {
      for (int p = threadIdx.x; p < padded / 2; p += kThreads) {
        const int a = 2 * p - (p & (stride - 1));  // the lower index of pair p at this stride
        const int b = a + stride;
        const bool descending = (a & size) == 0;
        const uint64_t ka = keys[a];
        const uint64_t kb = keys[b];
        if ((ka < kb) == descending) {
          keys[a] = kb;
          keys[b] = ka;
        }
      }
      __syncthreads();
    }
  }
  __syncthreads();  // (also when nothing was sorted) sh.gathered and keys are settled for everyone
  return n;
}

// --- Radix selection.

// The weight each sorted token adds to a running sum.
enum class Weight {
  kCount,           // 1: the top_k-th token
  kProbability,     // p: the draw, against u · kept_total
  kNormalized,      // p / total (double division, as the CPU's probs_[i] / total): the top-p cut
};

template <Weight kW>
__device__ __forceinline__ double weight_of(float l, const Softmax& s, double total) {
  if constexpr (kW == Weight::kCount) {
    return 1.0;
  } else if constexpr (kW == Weight::kProbability) {
    return static_cast<double>(probability(l, s));
  } else {
    return static_cast<double>(probability(l, s)) / total;
  }
}

__device__ __forceinline__ bool reaches(double sum, double threshold, bool strict) {
  return strict ? sum > threshold : sum >= threshold;
}

// Walks the tokens with key ≥ lo in the CPU's order, summing their weights, and returns in
// *result the first key where the sum reaches the threshold (sum > threshold when strict, else
// sum ≥ threshold). Returns false when even the whole set does not reach it. All threads call it
// and get the same answer.
template <Weight kW>
__device__ bool select_boundary(const float* logits, int V, uint64_t lo, double threshold, bool strict,
                                const Softmax& softmax, double total, uint64_t* keys, SampleShared& sh,
                                uint64_t* result) {
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  uint64_t prefix = 0;  // the digits fixed so far (bits above `shift`)
  double above = 0.0;   // weight of the candidates before the current range in the CPU's order
  int shift = 64;
  for (;;) {
    shift -= kDigitBits;
    // The current range: keys whose bits above shift + 4 equal prefix's.
    const uint64_t range_mask = shift + kDigitBits >= 64 ? 0 : ~0ull << (shift + kDigitBits);
    double weight[kBuckets];
    unsigned count[kBuckets];
#pragma unroll
    for (int b = 0; b < kBuckets; ++b) {
      weight[b] = 0.0;
      count[b] = 0;
    }
    for (int i = threadIdx.x; i < V; i += kThreads) {
      const float l = logits[i];
      const uint64_t key = make_key(l, i);
      if (key < lo || (key & range_mask) != prefix) continue;
      const unsigned digit = static_cast<unsigned>(key >> shift) & (kBuckets - 1);
      const double w = weight_of<kW>(l, softmax, total);
      // Registers cannot be indexed at run time: a compare per bucket keeps them registers.
#pragma unroll
      for (int b = 0; b < kBuckets; ++b) {
        if (digit == static_cast<unsigned>(b)) {
          weight[b] += w;
          count[b] += 1;
        }
      }
    }
#pragma unroll
    for (int b = 0; b < kBuckets; ++b) {
      for (int o = kWarpSize / 2; o > 0; o >>= 1) {
        weight[b] += __shfl_xor_sync(kFullMask, weight[b], o);
        count[b] += __shfl_xor_sync(kFullMask, count[b], o);
      }
    }
    if (lane == 0) {
#pragma unroll
      for (int b = 0; b < kBuckets; ++b) {
        sh.warp_weight[warp][b] = weight[b];
        sh.warp_count[warp][b] = count[b];
      }
    }
    __syncthreads();
    if (threadIdx.x < kBuckets) {
      double w = 0.0;
      unsigned c = 0;
      for (int x = 0; x < kWarps; ++x) {
        w += sh.warp_weight[x][threadIdx.x];
        c += sh.warp_count[x][threadIdx.x];
      }
      sh.weight[threadIdx.x] = w;
      sh.count[threadIdx.x] = c;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      // Digits from the largest (earliest in the CPU's order) down; empty digits hold no token.
      int chosen = -1;
      int lowest = -1;
      double above_lowest = 0.0;
      double sum = above;
      for (int d = kBuckets - 1; d >= 0; --d) {
        if (sh.count[d] == 0) continue;
        const double reach = sum + sh.weight[d];
        if (reaches(reach, threshold, strict)) {
          chosen = d;
          break;
        }
        lowest = d;
        above_lowest = sum;
        sum = reach;
      }
      if (chosen < 0 && shift == 64 - kDigitBits) {
        sh.state = 2;  // the whole set does not reach the threshold
      } else {
        if (chosen < 0) {
          // A later pass regrouped the same sums and fell a rounding short of the previous pass's
          // decision: the crossing is then at the end of this range.
          chosen = lowest;
          sum = above_lowest;
        }
        sh.prefix = prefix | (static_cast<uint64_t>(chosen) << shift);
        sh.above = sum;
        sh.state = (sh.count[chosen] <= kCap || shift == 0) ? 1 : 0;
      }
    }
    __syncthreads();
    const int state = sh.state;
    prefix = sh.prefix;
    above = sh.above;
    __syncthreads();  // thread 0 rewrites sh.* only after everyone has read it
    if (state == 2) return false;
    if (state == 1) break;
  }
  // The range now holds ≤ kCap candidates: sort them and walk them one by one, as the CPU does.
  const int n = gather_sorted(logits, V, lo, ~0ull << shift, prefix, keys, sh);
  if (threadIdx.x == 0) {
    double sum = above;
    uint64_t pick = keys[n - 1];  // a rounding short at the very end: the range's last token
    for (int j = 0; j < n; ++j) {
      sum += weight_of<kW>(logits[key_id(keys[j])], softmax, total);
      if (reaches(sum, threshold, strict)) {
        pick = keys[j];
        break;
      }
    }
    sh.result = pick;
  }
  __syncthreads();
  *result = sh.result;
  __syncthreads();
  return true;
}

// Σ p over the tokens with key ≥ lo (double; per thread in index order, then the fixed tree).
__device__ double kept_sum(const float* logits, int V, uint64_t lo, const Softmax& softmax, SampleShared& sh) {
  double s = 0.0;
  for (int i = threadIdx.x; i < V; i += kThreads) {
    const float l = logits[i];
    if (make_key(l, i) >= lo) s += static_cast<double>(probability(l, softmax));
  }
  return block_sum(s, sh);
}

__device__ unsigned long long kept_count(const float* logits, int V, uint64_t lo, SampleShared& sh) {
  unsigned long long c = 0;
  for (int i = threadIdx.x; i < V; i += kThreads) c += make_key(logits[i], i) >= lo ? 1 : 0;
  return block_reduce<Combine::kSum>(c, sh);
}

// One block of kThreads. Dynamic shared memory: max(kCap keys + kCap floats, the penalty bitmask).
// logits is read and written with plain loads/stores (no __ldg): the penalty writes it, and other
// threads read it back after a barrier.
__global__ void __launch_bounds__(kThreads)
    sample_kernel(float* logits, int V, const int32_t* context, const int32_t* context_len,
                  DecodeSamplingParams params, const float* uniforms, int32_t* step, int32_t* token) {
  extern __shared__ unsigned long long sample_dyn[];
  __shared__ SampleShared sh;
  uint64_t* keys = reinterpret_cast<uint64_t*>(sample_dyn);          // [kCap]
  float* probs = reinterpret_cast<float*>(sample_dyn + kCap);        // [kCap]

  // 1. Repetition penalty, once per distinct id.
  if (params.repetition_penalty != 1.0f) {
    uint32_t* seen = reinterpret_cast<uint32_t*>(sample_dyn);  // [ceil(V/32)] bits
    const int words = (V + 31) / 32;
    for (int w = threadIdx.x; w < words; w += kThreads) seen[w] = 0;
    __syncthreads();
    const int n = *context_len;
    for (int i = threadIdx.x; i < n; i += kThreads) {
      const int32_t id = context[i];
      if (id >= 0 && id < V) atomicOr(&seen[id >> 5], 1u << (id & 31));
    }
    __syncthreads();
    const float penalty = params.repetition_penalty;
    for (int w = threadIdx.x; w < words; w += kThreads) {
      uint32_t bits = seen[w];
      while (bits != 0) {
        const int id = w * 32 + (__ffs(static_cast<int>(bits)) - 1);
        bits &= bits - 1;
        const float l = logits[id];
        logits[id] = l < 0.0f ? __fmul_rn(l, penalty) : __fdiv_rn(l, penalty);
      }
    }
    __syncthreads();  // the new logits are visible to the whole block; the bitmask is free
  }

  // 2. Greedy: std::max_element keeps the first element unless a later one compares greater, so
  // NaNs never win, except a NaN at index 0, which nothing compares greater than.
  if (params.temperature <= 0.0f) {
    unsigned long long best = 0;
    for (int i = threadIdx.x; i < V; i += kThreads) {
      const float l = logits[i];
      if (!isnan(l)) best = combine<Combine::kMax>(best, make_key(l, i));
    }
    best = block_reduce<Combine::kMax>(best, sh);
    if (threadIdx.x == 0) *token = (isnan(logits[0]) || best == 0) ? 0 : key_id(best);
    return;
  }

  // The uniform of this draw, read before anyone can advance the counter (thread 0, at the end).
  const float u = uniforms[step != nullptr ? *step : 0];

  // 3. The softmax's max: the first token of the sorted order.
  unsigned long long first = 0;
  for (int i = threadIdx.x; i < V; i += kThreads) first = combine<Combine::kMax>(first, make_key(logits[i], i));
  first = block_reduce<Combine::kMax>(first, sh);
  const Softmax softmax{logits[key_id(first)], params.temperature};

  // 4. Top-k: the kept set is the keys ≥ the k-th largest.
  uint64_t lo = 0;
  long long kept = V;
  if (params.top_k > 0 && params.top_k < V) {
    uint64_t kth = 0;
    select_boundary<Weight::kCount>(logits, V, 0, static_cast<double>(params.top_k), false, softmax, 1.0, keys, sh,
                                    &kth);
    lo = kth;
    kept = params.top_k;
  }

  // 5. Top-p over a large kept set: the cut by radix selection.
  bool top_p_pending = params.top_p < 1.0f;
  if (kept > kCap && top_p_pending) {
    const double total = kept_sum(logits, V, lo, softmax, sh);
    uint64_t cut = 0;
    if (select_boundary<Weight::kNormalized>(logits, V, lo, static_cast<double>(params.top_p), false, softmax, total,
                                             keys, sh, &cut)) {
      lo = cut;
      kept = static_cast<long long>(kept_count(logits, V, lo, sh));
    }
    top_p_pending = false;
  }

  // 6a. A small kept set: gathered, sorted, and the CPU's loops run on it verbatim.
  if (kept <= kCap) {
    const int n = gather_sorted(logits, V, lo, 0, 0, keys, sh);
    for (int j = threadIdx.x; j < n; j += kThreads) probs[j] = probability(logits[key_id(keys[j])], softmax);
    __syncthreads();
    if (threadIdx.x == 0) {
      double total = 0;
      for (int j = 0; j < n; ++j) total += probs[j];
      int cut = n;
      if (top_p_pending) {
        double cumulative = 0;
        for (int j = 0; j < n; ++j) {
          cumulative += probs[j] / total;
          if (cumulative >= params.top_p) {
            cut = j + 1;
            break;
          }
        }
      }
      double kept_total = 0;
      for (int j = 0; j < cut; ++j) kept_total += probs[j];
      const double target = static_cast<double>(u) * kept_total;
      double cumulative = 0;
      int pick = cut - 1;
      for (int j = 0; j < cut; ++j) {
        cumulative += probs[j];
        if (target < cumulative) {
          pick = j;
          break;
        }
      }
      *token = key_id(keys[pick]);
      if (step != nullptr) *step += 1;
    }
    return;
  }

  // 6b. A large kept set: the draw by radix selection; the first token whose running sum exceeds
  // u · kept_total, else (rounding) the last kept token.
  const double kept_total = kept_sum(logits, V, lo, softmax, sh);
  const double target = static_cast<double>(u) * kept_total;
  uint64_t pick = 0;
  if (!select_boundary<Weight::kProbability>(logits, V, lo, target, true, softmax, 1.0, keys, sh, &pick)) {
    unsigned long long last = ~0ull;
    for (int i = threadIdx.x; i < V; i += kThreads) {
      const uint64_t key = make_key(logits[i], i);
      if (key >= lo) last = combine<Combine::kMin>(last, key);
    }
    pick = block_reduce<Combine::kMin>(last, sh);
  }
  if (threadIdx.x == 0) {
    *token = key_id(pick);
    if (step != nullptr) *step += 1;
  }
}

}  // namespace

Status sample_token(float* logits, int64_t vocab, const int32_t* context, const int32_t* context_len,
                    const DecodeSamplingParams& params, const float* uniforms, int32_t* step, int32_t* token,
                    cudaStream_t stream) {
  if (vocab < 1 || vocab > 0x7fffffff) {
    return Status::invalid_argument("sample_token: vocab = " + std::to_string(vocab) + "; 1..2^31−1 are supported");
  }
  if (logits == nullptr || token == nullptr) return Status::invalid_argument("sample_token: null logits or token");
  if (params.repetition_penalty != 1.0f && (context == nullptr || context_len == nullptr)) {
    return Status::invalid_argument("sample_token: a repetition penalty needs the context ids and their count");
  }
  if (params.temperature > 0.0f && uniforms == nullptr) {
    return Status::invalid_argument("sample_token: sampling at temperature > 0 needs the uniforms");
  }
  const size_t candidates = static_cast<size_t>(kCap) * (sizeof(uint64_t) + sizeof(float));
  const size_t bitmask = static_cast<size_t>((vocab + 31) / 32) * sizeof(uint32_t);
  const size_t smem = candidates > bitmask ? candidates : bitmask;
  if (smem > 48 * 1024) {
    // Past the default limit (vocabularies over ~390k ids with a penalty): opt in to more.
    ATTUNE_CUDA_TRY(check(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(smem)),
                          "sample_token: shared memory for the penalty bitmask"));
  }
  sample_kernel<<<1, kThreads, smem, stream>>>(logits, static_cast<int>(vocab), context, context_len, params, uniforms,
                                              step, token);
  return check_launch("sample_token");
}

}  // namespace attune::cuda
