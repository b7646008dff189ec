// The CUDA-on-CPU emulator's device side: included first by every kernel file that translate.py
// rewrote (see scripts/cuda-emulate.sh for why this exists and what it can and cannot tell).
//
// With this header a .cu file compiles as plain C++: __global__ and __device__ functions become
// host functions, the built-in variables (threadIdx, blockIdx, ...) read the emulated thread's
// coordinates, `__shared__` variables become statics (one per kernel, shared by the block's
// threads, which run one block at a time), and each launch, rewritten by translate.py into
// emu::launch(), runs the grid in emu.cpp. There every CUDA thread of a block is a fiber on one OS
// thread; __syncthreads and the warp collectives are the only points where a thread gives way,
// and the scheduler checks what CUDA requires of them (every lane named in a mask arrives, no lane
// waits for one that exited, no deadlock).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// --- The qualifiers, for a host compiler.
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __constant__
#define __shared__ static  // one instance per kernel (per template instance), shared by its block
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)  // not checked: a launch above a kernel's bound fails only on a GPU

namespace emu {

// The running thread's coordinates, set by the scheduler whenever it resumes a thread.
extern uint3 thread_idx, block_idx;
extern dim3 block_dim, grid_dim;

// __syncthreads: waits until every thread of the block that has not exited arrives.
void syncthreads();
// The warp collectives' common step: this lane offers `value`, waits until every lane of `mask`
// (all in the same collective, `what`) has offered one, and gets the 32 lanes' values back
// (the entries of lanes outside the mask are meaningless).
const uint64_t* warp_exchange(unsigned mask, uint64_t value, const char* what);
// A warp collective read lane `source`; it must be in `mask` (else the value is undefined).
void check_source_lane(unsigned mask, unsigned source, const char* what);
unsigned lane();
// The block's dynamic shared memory (the launch's third parameter), poisoned before each block.
void* dynamic_shared();

struct Config {
  dim3 grid, block;
  size_t shared;
  cudaStream_t stream;
  Config(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) : grid(g), block(b), shared(s), stream(st) {}
};

// Runs `work` now, or records it while `stream` is being captured into a CUDA graph.
void submit(cudaStream_t stream, std::function<void()> work);
// Whether a GPU would run this launch; if not, says why and sets the launch error.
bool launch_is_valid(const char* name, const Config& config);
// Runs `thread` once per thread of the grid.
void run_grid(const char* name, const Config& config, const std::function<void()>& thread);

// kernel<<<config>>>(args...): the arguments are copied when launched, as CUDA copies kernel
// parameters, and every thread gets its own copy of them.
// A kernel's pointer argument must point into device memory (or be null): the host's memory has
// the same addresses here, so a host pointer given to a kernel is caught at the launch.
void check_argument(const char* kernel, int index, const void* pointer);
// The kernel, running on `stream`, uses the allocations its pointer arguments point into (for the
// stream-order check in emu.cpp).
void use_arguments(const char* kernel, cudaStream_t stream, const std::vector<const void*>& pointers);

template <class Kernel, class... Args>
void launch(const char* name, const Config& config, Kernel kernel, Args&&... args) {
  std::tuple<std::decay_t<Args>...> params(std::forward<Args>(args)...);
  std::vector<const void*> pointers;
  std::apply(
      [&](const auto&... p) {
        int index = 0;
        auto check = [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_pointer_v<V> && !std::is_function_v<std::remove_pointer_t<V>>) {
            check_argument(name, index, static_cast<const void*>(v));
            pointers.push_back(static_cast<const void*>(v));
          }
          ++index;
        };
        (check(p), ...);
        (void)check;  // (a kernel without parameters)
      },
      params);
  if (!launch_is_valid(name, config)) return;
  submit(config.stream, [=] {
    use_arguments(name, config.stream, pointers);
    run_grid(name, config, [&] {
      auto copy = params;
      std::apply(kernel, copy);
    });
  });
}

template <class T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "warp collectives move at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof v);
  return bits;
}
template <class T>
T from_bits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

}  // namespace emu

#define threadIdx emu::thread_idx
#define blockIdx emu::block_idx
#define blockDim emu::block_dim
#define gridDim emu::grid_dim
constexpr int warpSize = 32;

// The runtime's C++ API for kernels (cuda_runtime.h declares it for nvcc only).
template <class T>
cudaError_t cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attribute, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attribute, value);
}

// --- Synchronisation and warp collectives.
inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::warp_exchange(mask, 0, "__syncwarp"); }
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
T __shfl_sync(unsigned mask, T v, int source, int width = 32) {
  const uint64_t* all = emu::warp_exchange(mask, emu::to_bits(v), "__shfl_sync");
  const unsigned from = (emu::lane() & ~unsigned(width - 1)) + (unsigned(source) & unsigned(width - 1));
  emu::check_source_lane(mask, from, "__shfl_sync");
  return emu::from_bits<T>(all[from]);
}
// Lanes whose source falls outside their group of `width` get their own value back (CUDA's rule).
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const uint64_t* all = emu::warp_exchange(mask, emu::to_bits(v), "__shfl_xor_sync");
  const unsigned me = emu::lane(), from = me ^ unsigned(lane_mask);
  if (from >= (me & ~unsigned(width - 1)) + unsigned(width)) return v;
  emu::check_source_lane(mask, from, "__shfl_xor_sync");
  return emu::from_bits<T>(all[from]);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const uint64_t* all = emu::warp_exchange(mask, emu::to_bits(v), "__shfl_down_sync");
  const unsigned me = emu::lane(), from = me + delta;
  if (from >= (me & ~unsigned(width - 1)) + unsigned(width)) return v;
  emu::check_source_lane(mask, from, "__shfl_down_sync");
  return emu::from_bits<T>(all[from]);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const uint64_t* all = emu::warp_exchange(mask, emu::to_bits(v), "__shfl_up_sync");
  const unsigned me = emu::lane();
  if (me < (me & ~unsigned(width - 1)) + delta) return v;
  emu::check_source_lane(mask, me - delta, "__shfl_up_sync");
  return emu::from_bits<T>(all[me - delta]);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  const uint64_t* all = emu::warp_exchange(mask, predicate != 0, "__ballot_sync");
  unsigned bits = 0;
  for (unsigned k = 0; k < 32; ++k) bits |= (mask >> k & 1u) && all[k] ? 1u << k : 0u;
  return bits;
}
inline int __all_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) == mask; }
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }

// --- Atomics: a thread gives way only at the synchronisation points above, so a plain
// read-modify-write is atomic here.
template <class T>
T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}
template <class T>
T atomicSub(T* p, T v) {
  const T old = *p;
  *p = old - v;
  return old;
}
template <class T>
T atomicMax(T* p, T v) {
  const T old = *p;
  *p = old < v ? v : old;
  return old;
}
template <class T>
T atomicMin(T* p, T v) {
  const T old = *p;
  *p = v < old ? v : old;
  return old;
}
template <class T>
T atomicOr(T* p, T v) {
  const T old = *p;
  *p = old | v;
  return old;
}
template <class T>
T atomicAnd(T* p, T v) {
  const T old = *p;
  *p = old & v;
  return old;
}
template <class T>
T atomicExch(T* p, T v) {
  const T old = *p;
  *p = v;
  return old;
}
template <class T>
T atomicCAS(T* p, T compare, T v) {
  const T old = *p;
  if (old == compare) *p = v;
  return old;
}

// --- Device intrinsics, as the host computes them. The _rn operations round once, exactly as
// CUDA's; the fast-math ones (__expf, ...) are the exact functions here, not CUDA's approximations.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __double2float_rn(double d) { return static_cast<float>(d); }
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline float __expf(float a) { return std::exp(a); }
inline float __logf(float a) { return std::log(a); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float a) { return a < 0.0f ? 0.0f : a > 1.0f ? 1.0f : a; }
inline float __uint_as_float(unsigned u) { return emu::from_bits<float>(u); }
inline unsigned __float_as_uint(float f) { return static_cast<unsigned>(emu::to_bits(f)); }
inline float __int_as_float(int i) { return emu::from_bits<float>(static_cast<unsigned>(i)); }
inline int __float_as_int(float f) { return static_cast<int>(emu::to_bits(f)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
template <class T>
T __ldg(const T* p) {
  return *p;
}
// CUDA's min/max for mixed integer and floating types.
template <class A, class B>
auto min(A a, B b) -> std::common_type_t<A, B> {
  return b < a ? b : a;
}
template <class A, class B>
auto max(A a, B b) -> std::common_type_t<A, B> {
  return a < b ? b : a;
}
using std::isfinite;
using std::isinf;
using std::isnan;
