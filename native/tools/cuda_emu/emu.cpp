// The CUDA-on-CPU emulator's scheduler and the CUDA runtime API on the host (see emu.h and
// scripts/cuda-emulate.sh). x86-64 Linux only: the fiber switch below is x86-64 assembly.
//
// Besides running kernels it checks what a GPU would only show as wrong numbers, hangs or crashes,
// and counts each such finding as an error (the process then exits 1, after the test's own report):
//  - launches: block and grid limits, dynamic shared memory above the device's limit, or above
//    48 KB when no kernel opted in that far (cudaFuncSetAttribute gets a function pointer, a
//    launch here a lambda: the two are not matched);
//  - synchronisation: deadlocks, warp collectives whose mask names lanes that exited or that the
//    block does not have, or that read a lane outside the mask;
//  - memory: every cudaMalloc'd buffer starts as 0xFF bytes (NaN in fp32 and bf16) so reads of
//    never-written memory show, and has guard zones that are checked after every kernel, copy and
//    free; copies and memsets must stay inside one allocation, and a kernel's pointer arguments
//    point into one (the host's memory has the same addresses here: a host pointer would "work");
//  - streams: using an allocation that unfinished work on another, unordered stream used (see
//    "Stream order" below); calls that a CUDA graph capture forbids fail as they would there.
// Threads run in a random order (fixed seed, EMU_SEED to vary it), and so do blocks.
#include "emu.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

// Opaque CUDA handles, defined here.
struct CUstream_st {
  unsigned flags = 0;
  int id = 0;
};
struct CUevent_st {
  cudaStream_t stream = nullptr;  // where it was last recorded, and after how much work
  uint64_t sequence = 0;
};
struct CUgraph_st {
  std::vector<std::function<void()>> work;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> work;
};

namespace emu {

uint3 thread_idx, block_idx;
dim3 block_dim, grid_dim;
cudaError_t g_last_error = cudaSuccess;  // what cudaGetLastError returns
// While a stream is captured into a CUDA graph: that stream, and the work recorded so far.
struct Capture {
  cudaStream_t stream = nullptr;
  std::vector<std::function<void()>>* work = nullptr;
};
Capture g_capture;

namespace {

// --- Findings.
int g_errors = 0;
bool g_expected = false;  // the self-test provokes these errors on purpose
const char* g_kernel = "(no kernel)";  // the kernel running, for messages

void error(const char* format, ...) {
  std::fflush(stdout);  // (so that the test's own lines stay whole around this one)
  va_list args;
  va_start(args, format);
  std::fprintf(stderr, g_expected ? "EMU error, as the self-test expects: " : "EMU ERROR: ");
  std::vfprintf(stderr, format, args);
  std::fprintf(stderr, "\n");
  va_end(args);
  ++g_errors;
}

[[noreturn]] void fatal(const char* format, ...) {
  std::fflush(stdout);
  va_list args;
  va_start(args, format);
  std::fprintf(stderr, "EMU FATAL in kernel %s, block (%u,%u,%u): ", g_kernel, block_idx.x, block_idx.y, block_idx.z);
  std::vfprintf(stderr, format, args);
  std::fprintf(stderr, "\n");
  va_end(args);
  std::fflush(nullptr);
  std::abort();
}

struct Report {
  Report() {
    std::atexit([] {
      if (g_errors == 0) return;
      std::fflush(stdout);
      std::fprintf(stderr, "EMU: %d error(s) found by the emulator (above): failing this run\n", g_errors);
      std::fflush(nullptr);
      _exit(1);
    });
  }
} g_report;

// The order of threads and blocks: a fixed seed (EMU_SEED to change it), so runs repeat.
uint64_t g_rng_state = std::getenv("EMU_SEED") ? std::strtoull(std::getenv("EMU_SEED"), nullptr, 10) : 1;

uint64_t next_random() {  // SplitMix64: fast, and good enough to shuffle with
  uint64_t z = (g_rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

template <typename T>
void shuffle(std::vector<T>& v) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<size_t>((static_cast<unsigned __int128>(next_random()) * i) >> 64)]);
}

// --- Fibers: one per CUDA thread of the running block.
extern "C" void emu_switch(void** save_sp, void* load_sp);
// Saves the callee-saved registers and the SSE/x87 control words on the current stack, stores the
// stack pointer in *save_sp, then restores all that from load_sp and returns into that context.
asm(R"(
.text
.globl emu_switch
.type emu_switch,@function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size emu_switch, .-emu_switch
)");

enum class State { kRunnable, kBarrier, kWarp, kDone };

constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kPage = 4096;

struct Fiber {
  void* sp = nullptr;     // where emu_switch resumes it; null until it first runs
  char* stack = nullptr;  // from the pool while the thread runs or waits
  uint3 idx{};
  State state = State::kRunnable;
  // At a warp collective: the mask, the collective's name and the value offered; then the values.
  unsigned mask = 0;
  const char* what = nullptr;
  uint64_t offered = 0;
  uint64_t received[32] = {};
};

std::vector<Fiber> g_fibers;
std::vector<char*> g_free_stacks;  // each: kPage of guard (no access: an overflow faults), then the stack
void* g_scheduler_sp = nullptr;
int g_current = -1;  // the running fiber
const std::function<void()>* g_thread = nullptr;

[[noreturn]] void fiber_main() {
  (*g_thread)();
  g_fibers[g_current].state = State::kDone;
  emu_switch(&g_fibers[g_current].sp, g_scheduler_sp);
  std::abort();  // a finished fiber is never resumed
}

// A thread gets its stack when it first runs and gives it back when it exits, so a block whose
// threads never wait runs them one after another on one stack.
void start_fiber(Fiber& f) {
  if (g_free_stacks.empty()) {
    void* memory = mmap(nullptr, kPage + kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) fatal("cannot map a thread's stack");
    mprotect(memory, kPage, PROT_NONE);
    g_free_stacks.push_back(static_cast<char*>(memory));
  }
  f.stack = g_free_stacks.back();
  g_free_stacks.pop_back();
  // The frame emu_switch pops: control words, six registers, then fiber_main as the return address,
  // placed so that fiber_main starts with the stack aligned as after a call.
  uint64_t* sp = reinterpret_cast<uint64_t*>(f.stack + kPage + kStackBytes);
  *--sp = 0;
  *--sp = reinterpret_cast<uint64_t>(&fiber_main);
  for (int i = 0; i < 6; ++i) *--sp = 0;
  *--sp = 0;
  uint32_t mxcsr;
  uint16_t fpu;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpu));
  std::memcpy(sp, &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(sp) + 4, &fpu, 2);
  f.sp = sp;
}

void wait(State state) {
  if (g_current < 0) fatal("__syncthreads or a warp collective outside a kernel");
  g_fibers[g_current].state = state;
  emu_switch(&g_fibers[g_current].sp, g_scheduler_sp);
}

unsigned linear(const uint3& t) { return t.x + block_dim.x * (t.y + block_dim.y * t.z); }

std::string describe_states(unsigned n) {
  unsigned barrier = 0, warp = 0, done = 0;
  std::string lanes;
  for (unsigned i = 0; i < n; ++i) {
    const Fiber& f = g_fibers[i];
    barrier += f.state == State::kBarrier;
    done += f.state == State::kDone;
    if (f.state == State::kWarp) {
      if (++warp <= 4) {
        char line[160];
        std::snprintf(line, sizeof line, "; thread %u (warp %u lane %u) waits in %s with mask 0x%08x", i, i / 32, i % 32, f.what, f.mask);
        lanes += line;
      }
    }
  }
  return std::to_string(barrier) + " threads at __syncthreads, " + std::to_string(warp) + " in warp collectives, " +
         std::to_string(done) + " exited" + lanes;
}

// Releases the warp collectives whose every lane has arrived. Lanes a mask names that exited or
// do not exist can never arrive: an error on a GPU too (undefined behaviour), so fatal here.
bool release_warps(unsigned n, std::vector<unsigned>& runnable) {
  bool released = false;
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = g_fibers[i];
    if (f.state != State::kWarp) continue;
    if (!(f.mask >> (i % 32) & 1u)) fatal("thread %u calls %s with mask 0x%08x, which leaves out its own lane", i, f.what, f.mask);
    const unsigned warp = i / 32, leader = warp * 32 + static_cast<unsigned>(__builtin_ctz(f.mask));
    // The group's lowest lane checks it for all (unless that one is not waiting in it).
    if (leader != i && leader < n && g_fibers[leader].state == State::kWarp && g_fibers[leader].mask == f.mask) continue;
    bool complete = true;
    for (unsigned k = 0; k < 32 && complete; ++k) {
      if (!(f.mask >> k & 1u)) continue;
      const unsigned other = warp * 32 + k;
      if (other >= n) {
        fatal("thread %u calls %s with mask 0x%08x, which names lane %u, but the block has only %u threads", i, f.what, f.mask,
              k, n);
      }
      const Fiber& o = g_fibers[other];
      if (o.state == State::kDone) {
        fatal("thread %u calls %s with mask 0x%08x, which names lane %u, and that thread has exited", i, f.what, f.mask, k);
      }
      complete = o.state == State::kWarp && o.mask == f.mask && std::strcmp(o.what, f.what) == 0;
    }
    if (!complete) continue;
    uint64_t values[32] = {};
    for (unsigned k = 0; k < 32; ++k) {
      if (f.mask >> k & 1u) values[k] = g_fibers[warp * 32 + k].offered;
    }
    const unsigned mask = f.mask;
    for (unsigned k = 0; k < 32; ++k) {
      if (!(mask >> k & 1u)) continue;
      Fiber& o = g_fibers[warp * 32 + k];
      std::memcpy(o.received, values, sizeof values);
      o.state = State::kRunnable;
      runnable.push_back(warp * 32 + k);
    }
    released = true;
  }
  return released;
}

std::map<std::string, bool> g_noted;

// One block: every runnable thread runs until it exits or waits, in a random order; when none is
// left, whatever all its participants have reached is released (a warp collective, or
// __syncthreads), until every thread has exited.
void run_block(unsigned n) {
  if (g_fibers.size() < n) g_fibers.resize(n);
  static std::vector<unsigned> runnable, running;
  runnable.resize(n);
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = g_fibers[i];
    f.sp = nullptr;
    f.state = State::kRunnable;
    f.idx = uint3{i % block_dim.x, (i / block_dim.x) % block_dim.y, i / (block_dim.x * block_dim.y)};
    runnable[i] = i;
  }
  for (;;) {
    if (!runnable.empty()) {
      shuffle(runnable);
      running.swap(runnable);
      runnable.clear();
      for (unsigned i : running) {
        Fiber& f = g_fibers[i];
        if (!f.sp) start_fiber(f);
        g_current = static_cast<int>(i);
        thread_idx = f.idx;
        emu_switch(&g_scheduler_sp, f.sp);
        if (f.state == State::kDone) {
          g_free_stacks.push_back(f.stack);
          f.stack = nullptr;
        }
      }
      g_current = -1;
      continue;
    }
    // Every thread waits or has exited.
    unsigned live = 0, at_barrier = 0;
    for (unsigned i = 0; i < n; ++i) {
      live += g_fibers[i].state != State::kDone;
      at_barrier += g_fibers[i].state == State::kBarrier;
    }
    if (live == 0) return;
    if (release_warps(n, runnable)) continue;
    if (at_barrier == live) {
      if (live < n && !g_noted[std::string("exit:") + g_kernel]) {
        g_noted[std::string("exit:") + g_kernel] = true;
        std::fflush(stdout);
        std::fprintf(stderr,
                     "EMU note: kernel %s: threads that exited leave others waiting at __syncthreads (fine on current GPUs; "
                     "the CUDA guide leaves it undefined)\n",
                     g_kernel);
      }
      for (unsigned i = 0; i < n; ++i) {
        if (g_fibers[i].state != State::kBarrier) continue;
        g_fibers[i].state = State::kRunnable;
        runnable.push_back(i);
      }
      continue;
    }
    fatal("deadlock: %s", describe_states(n).c_str());
  }
}

// The dynamic shared memory of the running block: as much as an H100 allows a block.
constexpr size_t kSharedOptin = 227 * 1024, kSharedDefault = 48 * 1024;
alignas(256) unsigned char g_shared[kSharedOptin];
size_t g_largest_optin = kSharedDefault;  // the largest MaxDynamicSharedMemorySize set, for any kernel

}  // namespace

// A launch a GPU refuses sets the error that cudaGetLastError then returns, and runs nothing.
bool launch_is_valid(const char* name, const Config& c) {
  const unsigned long long threads = 1ull * c.block.x * c.block.y * c.block.z;
  const char* problem = nullptr;
  if (threads == 0 || threads > 1024 || c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64) {
    problem = "a block of more than 1024 threads (x, y ≤ 1024, z ≤ 64) or of none";
  } else if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || c.grid.x > 2147483647u || c.grid.y > 65535 || c.grid.z > 65535) {
    problem = "a grid with a zero size, or over 2³¹−1 blocks in x or 65535 in y or z";
  } else if (c.shared > kSharedOptin) {
    problem = "more dynamic shared memory than a block can have (227 KB on an H100)";
  } else if (c.shared > g_largest_optin) {
    problem = "more than 48 KB of dynamic shared memory without cudaFuncSetAttribute(MaxDynamicSharedMemorySize)";
  }
  if (!problem) return true;
  error("the launch of %s <<<(%u,%u,%u), (%u,%u,%u), %zu>>> fails on a GPU: %s", name, c.grid.x, c.grid.y, c.grid.z, c.block.x,
        c.block.y, c.block.z, c.shared, problem);
  g_last_error = cudaErrorInvalidConfiguration;
  return false;
}

// --- Device memory: every allocation between two guard zones, in a registry that also keeps,
// per allocation, the last work that used it and on which stream (see "Stream order" below).
namespace {

constexpr size_t kGuardBytes = 256;
constexpr unsigned char kGuardByte = 0xA7;

struct Allocation {
  size_t bytes;
  bool host;  // cudaHostAlloc'd: host memory the device can read
  char* base;
  // The last work that used it: its stream, its name, its place in issue order, and whether it
  // may still be running (nothing has waited for it yet).
  cudaStream_t stream = nullptr;
  const char* user = nullptr;
  uint64_t sequence = 0;
  bool pending = false;
};
std::map<uintptr_t, Allocation> g_allocations;  // by the address handed out
size_t g_allocated = 0;
uint64_t g_sequence = 0;  // work issued so far

// The emulated GPU: an H100's memory.
constexpr size_t kDeviceBytes = 80ull << 30;

void check_guards(const char* after) {
  for (auto& [address, a] : g_allocations) {
    const unsigned char* before = reinterpret_cast<unsigned char*>(a.base);
    const unsigned char* past = reinterpret_cast<unsigned char*>(address) + a.bytes;
    for (const unsigned char* zone : {before, past}) {
      size_t bad = 0;
      for (size_t i = 0; i < kGuardBytes; ++i) bad += zone[i] != kGuardByte;
      if (bad == 0) continue;
      error("%zu byte(s) %s a %zu-byte device buffer were overwritten (found after %s)", bad,
            zone == before ? "just before" : "just past the end of", a.bytes, after);
      std::memset(const_cast<unsigned char*>(zone), kGuardByte, kGuardBytes);
    }
  }
}

// The allocation holding [p, p + bytes), or null.
Allocation* find_range(const void* p, size_t bytes) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocations.upper_bound(address);
  if (it == g_allocations.begin()) return nullptr;
  --it;
  if (address + bytes > it->first + it->second.bytes) return nullptr;
  return &it->second;
}

bool device_range(const void* p, size_t bytes, const char* what) {
  if (bytes == 0 || find_range(p, bytes)) return true;
  error("%s: %zu bytes at %p are not inside one device allocation", what, bytes, p);
  return false;
}

bool is_device(const void* p) {
  const Allocation* a = find_range(p, 1);
  return a && !a->host;
}

bool forbidden_while_capturing(const char* call) {
  if (!g_capture.work) return false;
  error("%s while a stream is captured into a CUDA graph (CUDA refuses it: cudaErrorStreamCaptureUnsupported)", call);
  return true;
}

// --- Stream order. Work here runs when issued, so work a GPU could run out of order shows no
// symptom: instead, every kernel, copy, memset and product notes the allocations it uses, and
// using one that work on another stream may still be using, with nothing ordering the two, is an
// error. The legacy default stream (0: cudaMemcpy, cudaMemset, launches without a stream) is
// ordered with blocking streams but not with cudaStreamNonBlocking ones. Waiting for a stream,
// an event, the device, a device-to-host cudaMemcpy (legacy work) or a cudaFree ends the wait.
bool blocking(cudaStream_t s) { return s == nullptr || !(s->flags & cudaStreamNonBlocking); }
bool ordered(cudaStream_t earlier, cudaStream_t later) {
  return earlier == later || (earlier == nullptr && blocking(later)) || (later == nullptr && blocking(earlier));
}
std::string stream_name(cudaStream_t s) {
  if (s == nullptr) return "the legacy default stream";
  return std::string(blocking(s) ? "blocking" : "non-blocking") + " stream #" + std::to_string(s->id);
}

void use(cudaStream_t stream, const void* p, const char* user) {
  Allocation* a = p ? find_range(p, 1) : nullptr;
  if (!a || a->host) return;  // (mapped host memory: the host's own accesses cannot be seen)
  if (a->pending && !ordered(a->stream, stream)) {
    const std::string key = std::string(user) + "|" + a->user;
    if (!g_noted[key]) {
      g_noted[key] = true;
      error("%s on %s uses a %zu-byte buffer that %s on %s may not have finished with: nothing orders the two (wait for "
            "that stream, or issue both on one)",
            user, stream_name(stream).c_str(), a->bytes, a->user, stream_name(a->stream).c_str());
    }
  }
  a->stream = stream;
  a->user = user;
  a->sequence = ++g_sequence;
  a->pending = true;
}

// The work issued on `stream` up to `sequence` has finished (for the legacy stream: with the
// blocking streams' work before it).
void finished(cudaStream_t stream, uint64_t sequence = UINT64_MAX) {
  for (auto& [address, a] : g_allocations) {
    if (a.pending && a.sequence <= sequence && (a.stream == stream || (stream == nullptr && blocking(a.stream)))) a.pending = false;
  }
}
void all_finished() {
  for (auto& [address, a] : g_allocations) a.pending = false;
}

cudaError_t allocate(void** p, size_t bytes, bool host) {
  *p = nullptr;
  if (bytes == 0) return cudaSuccess;
  const size_t padded = (bytes + 255) / 256 * 256;
  char* base = static_cast<char*>(std::aligned_alloc(256, padded + 2 * kGuardBytes));
  if (!base) return g_last_error = cudaErrorMemoryAllocation;
  std::memset(base, kGuardByte, padded + 2 * kGuardBytes);
  std::memset(base + kGuardBytes, 0xFF, bytes);  // NaN for fp32 and bf16, -1 for integers
  *p = base + kGuardBytes;
  g_allocations[reinterpret_cast<uintptr_t>(*p)] = Allocation{bytes, host, base};
  g_allocated += bytes;
  return cudaSuccess;
}

cudaError_t release(void* p, bool host) {
  if (!p) return cudaSuccess;
  auto it = g_allocations.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocations.end() || it->second.host != host) {
    error("%s(%p): not a pointer %s returned", host ? "cudaFreeHost" : "cudaFree", p, host ? "cudaHostAlloc" : "cudaMalloc");
    return cudaErrorInvalidValue;
  }
  check_guards(host ? "cudaFreeHost" : "cudaFree");
  all_finished();  // cudaFree waits for the device
  g_allocated -= it->second.bytes;
  std::free(it->second.base);
  g_allocations.erase(it);
  return cudaSuccess;
}

// A copy of `bytes` on `stream`; `legacy_sync`: cudaMemcpy's own synchronisation rules.
cudaError_t copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream, const char* call,
                 bool legacy_sync) {
  if (kind == cudaMemcpyDefault) {
    kind = is_device(src) ? (is_device(dst) ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost)
                          : (is_device(dst) ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
  }
  const bool from_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  const bool to_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  bool ok = (!to_device || device_range(dst, bytes, call)) && (!from_device || device_range(src, bytes, call));
  if ((!from_device && is_device(src)) || (!to_device && is_device(dst))) {
    error("%s: device memory where the copy's kind (%d) says host memory", call, static_cast<int>(kind));
    ok = false;
  }
  if (!ok) return g_last_error = cudaErrorInvalidValue;
  // cudaMemcpy from host memory first waits for the legacy stream; to the host it returns when
  // done; from pageable host memory to the device it may return before the data has landed.
  if (legacy_sync && kind == cudaMemcpyHostToDevice) finished(nullptr);
  if (from_device) use(stream, src, call);
  if (to_device) use(stream, dst, call);
  if (bytes > 0) std::memmove(dst, src, bytes);
  const Allocation* pinned = find_range(src, 1);
  if (legacy_sync && (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost || (pinned && pinned->host))) finished(nullptr);
  check_guards(call);
  return cudaSuccess;
}

}  // namespace

void syncthreads() { wait(State::kBarrier); }

const uint64_t* warp_exchange(unsigned mask, uint64_t value, const char* what) {
  if (g_current >= 0) {
    Fiber& f = g_fibers[g_current];
    f.mask = mask;
    f.what = what;
    f.offered = value;
  }
  wait(State::kWarp);
  return g_fibers[g_current].received;
}

void check_source_lane(unsigned mask, unsigned source, const char* what) {
  if (!(mask >> source & 1u)) fatal("%s reads lane %u, which its mask 0x%08x leaves out (undefined on a GPU)", what, source, mask);
}

unsigned lane() { return linear(thread_idx) % 32; }
void* dynamic_shared() { return g_shared; }

void check_argument(const char* kernel, int index, const void* pointer) {
  if (pointer == nullptr) return;
  const uintptr_t address = reinterpret_cast<uintptr_t>(pointer);
  auto it = g_allocations.upper_bound(address);
  if (it != g_allocations.begin() && address <= std::prev(it)->first + std::prev(it)->second.bytes) return;  // (one past the end too)
  error("kernel %s: argument %d (%p) is not device memory (a host pointer?)", kernel, index, pointer);
}

void use_arguments(const char* kernel, cudaStream_t stream, const std::vector<const void*>& pointers) {
  for (const void* p : pointers) use(stream, p, kernel);
}

void submit(cudaStream_t stream, std::function<void()> work) {
  if (g_capture.work != nullptr) {
    if (stream == g_capture.stream) {
      g_capture.work->push_back(std::move(work));
      return;
    }
    if (stream == nullptr) error("work on the legacy default stream while another stream is captured into a CUDA graph");
  }
  work();
}

void run_grid(const char* name, const Config& c, const std::function<void()>& thread) {
  g_kernel = name;
  block_dim = c.block;
  grid_dim = c.grid;
  g_thread = &thread;
  const unsigned n = c.block.x * c.block.y * c.block.z;
  const unsigned long long blocks = 1ull * c.grid.x * c.grid.y * c.grid.z;
  // Blocks in a random order too (up to a few million of them).
  std::vector<unsigned long long> block_order;
  if (blocks <= (1ull << 22)) {
    block_order.resize(blocks);
    for (unsigned long long b = 0; b < blocks; ++b) block_order[b] = b;
    shuffle(block_order);
  }
  for (unsigned long long b = 0; b < blocks; ++b) {
    const unsigned long long index = block_order.empty() ? b : block_order[b];
    block_idx = uint3{static_cast<unsigned>(index % c.grid.x), static_cast<unsigned>(index / c.grid.x % c.grid.y),
                      static_cast<unsigned>(index / (1ull * c.grid.x * c.grid.y))};
    if (c.shared > 0) std::memset(g_shared, 0xFF, c.shared);  // never-written shared memory reads as NaN
    run_block(n);
  }
  check_guards(name);
  g_kernel = "(no kernel)";
}

}  // namespace emu

using emu::g_last_error;

extern "C" {

// For the cuBLASLt stand-in (fake_cublaslt.cpp), which resolves them from the test executable.
void emu_submit(cudaStream_t stream, void (*run)(void*), void* context, void (*release)(void*)) {
  std::shared_ptr<void> owned(context, release);
  emu::submit(stream, [run, owned] { run(owned.get()); });
}
int emu_device_range(const void* p, size_t bytes, const char* what) { return emu::device_range(p, bytes, what); }
void emu_use(cudaStream_t stream, const void* p, const char* what) { emu::use(stream, p, what); }
// For the emulator's self-test: the errors found so far, which then no longer fail the run; and
// whether the errors to come are provoked on purpose.
int emu_take_errors() { return std::exchange(emu::g_errors, 0); }
void emu_expect_errors(int expected) { emu::g_expected = expected != 0; }
void emu_after(const char* what) { emu::check_guards(what); }

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (emu::forbidden_while_capturing("cudaMalloc")) return cudaErrorStreamCaptureUnsupported;
  return emu::allocate(p, bytes, false);
}
cudaError_t cudaFree(void* p) { return emu::release(p, false); }
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) { return emu::allocate(p, bytes, true); }
cudaError_t cudaMallocHost(void** p, size_t bytes) { return emu::allocate(p, bytes, true); }
cudaError_t cudaFreeHost(void* p) { return emu::release(p, true); }
cudaError_t cudaHostGetDevicePointer(void** device, void* host, unsigned) {
  const emu::Allocation* a = emu::find_range(host, 1);
  if (!a || !a->host) {
    emu::error("cudaHostGetDevicePointer(%p): not memory from cudaHostAlloc", host);
    return g_last_error = cudaErrorInvalidValue;
  }
  *device = host;  // unified addressing: the same pointer
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  *total = emu::kDeviceBytes;
  *free_bytes = emu::kDeviceBytes - std::min(emu::kDeviceBytes, emu::g_allocated);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (emu::forbidden_while_capturing("cudaMemcpy")) return cudaErrorStreamCaptureUnsupported;
  return emu::copy(dst, src, bytes, kind, nullptr, "cudaMemcpy", true);
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  emu::submit(stream, [=] { emu::copy(dst, src, bytes, kind, stream, "cudaMemcpyAsync", false); });
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (emu::forbidden_while_capturing("cudaMemset")) return cudaErrorStreamCaptureUnsupported;
  if (!emu::device_range(p, bytes, "cudaMemset")) return g_last_error = cudaErrorInvalidValue;
  emu::use(nullptr, p, "cudaMemset");  // on the legacy stream, and asynchronous for device memory
  std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream) {
  if (!emu::device_range(p, bytes, "cudaMemsetAsync")) return g_last_error = cudaErrorInvalidValue;
  emu::submit(stream, [=] {
    emu::use(stream, p, "cudaMemsetAsync");
    std::memset(p, value, bytes);
  });
  return cudaSuccess;
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = g_last_error;
  g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return g_last_error; }
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    default: return "cudaError (emulated)";
  }
}
const char* cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : g_last_error = cudaErrorInvalidDevice; }
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* version) {
  *version = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* version) {
  *version = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return g_last_error = cudaErrorInvalidDevice;
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "CPU emulator (an H100's limits; not a GPU)");
  p->major = 9;
  p->minor = 0;
  p->totalGlobalMem = emu::kDeviceBytes;
  p->multiProcessorCount = 132;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->sharedMemPerBlock = emu::kSharedDefault;
  p->sharedMemPerBlockOptin = emu::kSharedOptin;
  p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device) {
  if (device != 0) return g_last_error = cudaErrorInvalidDevice;
  switch (attribute) {
    case cudaDevAttrMultiProcessorCount: *value = 132; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(emu::kSharedDefault); break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(emu::kSharedOptin); break;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    default:
      emu::error("cudaDeviceGetAttribute: attribute %d is not emulated (add it to emu.cpp)", static_cast<int>(attribute));
      return g_last_error = cudaErrorInvalidValue;
  }
  return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute attribute, int value) {
  if (attribute == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<size_t>(value) > emu::kSharedOptin) return g_last_error = cudaErrorInvalidValue;
    emu::g_largest_optin = std::max(emu::g_largest_optin, static_cast<size_t>(value));
  }
  return cudaSuccess;
}

// Everything runs when it is issued: synchronising only ends waits in the stream-order bookkeeping.
cudaError_t cudaDeviceSynchronize() {
  if (emu::forbidden_while_capturing("cudaDeviceSynchronize")) return cudaErrorStreamCaptureUnsupported;
  emu::all_finished();
  return g_last_error;
}
cudaError_t cudaDeviceReset() {
  if (!emu::g_allocations.empty()) {
    emu::error("cudaDeviceReset with %zu allocations alive: on a GPU they are gone (and their pointers invalid)",
               emu::g_allocations.size());
  }
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  static int streams = 0;
  *stream = new CUstream_st{flags, ++streams};
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (stream == emu::g_capture.stream && emu::forbidden_while_capturing("cudaStreamSynchronize on the captured stream")) {
    return cudaErrorStreamCaptureUnsupported;
  }
  emu::finished(stream);
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new CUevent_st;
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) { return cudaEventCreate(event); }
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  emu::submit(stream, [=] {
    event->stream = stream;
    event->sequence = emu::g_sequence;
  });
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  emu::finished(event->stream, event->sequence);
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }

// CUDA graphs: while a stream is captured, the work issued on it (kernels, async copies and
// memsets, cuBLASLt products) is recorded, with the kernel arguments of that moment, and a graph
// launch replays it.
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  if (emu::g_capture.work || stream == nullptr) return g_last_error = cudaErrorIllegalState;
  emu::g_capture.stream = stream;
  emu::g_capture.work = new std::vector<std::function<void()>>();
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (!emu::g_capture.work || stream != emu::g_capture.stream) return g_last_error = cudaErrorIllegalState;
  *graph = new CUgraph_st{std::move(*emu::g_capture.work)};
  delete emu::g_capture.work;
  emu::g_capture = {};
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  *status = emu::g_capture.work && stream == emu::g_capture.stream ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = new CUgraphExec_st{graph->work};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  for (const std::function<void()>& work : exec->work) emu::submit(stream, work);
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}

}  // extern "C"

namespace emu {
namespace {

// A fault inside a kernel (a read far out of bounds, a fiber's stack overflowing) names the kernel.
void on_fault(int signal) {
  char text[256];
  const int n = std::snprintf(text, sizeof text, "EMU FATAL: signal %d in kernel %s, block (%u,%u,%u), thread (%u,%u,%u)\n", signal,
                              g_kernel, block_idx.x, block_idx.y, block_idx.z, thread_idx.x, thread_idx.y, thread_idx.z);
  if (n > 0) (void)!write(2, text, static_cast<size_t>(n));
  ::signal(signal, SIG_DFL);
  raise(signal);
}

struct FaultHandler {
  FaultHandler() {
    static char alternate[64 * 1024];
    stack_t ss{};
    ss.ss_sp = alternate;
    ss.ss_size = sizeof alternate;
    sigaltstack(&ss, nullptr);
    struct sigaction sa {};
    sa.sa_handler = on_fault;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
  }
} g_fault_handler;

}  // namespace
}  // namespace emu
