// The emulator's own test (run first by scripts/cuda-emulate.sh): CUDA semantics it must keep
// (barriers, warp collectives, shared memory, graph replay), and bugs it must report: a write past
// a buffer, a bad launch, a host pointer given to a kernel, a missing __syncthreads, a warp
// collective with an exited lane, a deadlock. Translated and built like the engine's kernels.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

extern "C" int emu_take_errors();
extern "C" void emu_expect_errors(int expected);

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  failures += !ok;
}

// `bad` must be reported as an error (and the report is then taken back, so the run can pass).
void expect_error(const char* what, const std::function<void()>& bad) {
  emu_take_errors();
  emu_expect_errors(1);
  bad();
  emu_expect_errors(0);
  expect(emu_take_errors() > 0, what);
}

// `bad` must stop the process with "EMU FATAL" (run in a child process).
void expect_fatal(const char* what, const std::function<void()>& bad) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return expect(false, what);
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    dup2(pipe_fds[1], 2);  // (the message is read back below, not shown)
    bad();
    _exit(0);
  }
  close(pipe_fds[1]);
  std::string text;
  char buffer[512];
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<size_t>(n));
  close(pipe_fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  expect(WIFSIGNALED(status) && text.find("EMU FATAL") != std::string::npos, what);
}

template <typename T>
T* device(size_t n) {
  T* p = nullptr;
  cudaMalloc(&p, n * sizeof(T));
  return p;
}

// --- Semantics.

// Block sum: shared memory, __syncthreads, then warp shuffles.
__global__ void block_sum_kernel(const int* x, int* out) {
  __shared__ int partial[32];
  int v = x[blockIdx.x * blockDim.x + threadIdx.x];
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0;
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (threadIdx.x == 0) out[blockIdx.x] = v;
  }
}

// Lane 5's value to all, a ballot of odd lanes, and dynamic shared memory read back reversed.
__global__ void warp_kernel(int* out) {
  extern __shared__ int reversed[];
  const int lane = static_cast<int>(threadIdx.x);
  const int from5 = __shfl_sync(0xffffffffu, lane * 10, 5);
  const unsigned odd = __ballot_sync(0xffffffffu, lane % 2);
  reversed[31 - lane] = lane;
  __syncwarp();
  out[lane] = from5 + (odd == 0xaaaaaaaau ? 1000 : 0) + 100000 * reversed[lane];
}

__global__ void add_one_kernel(int* x, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) x[i] += 1;
}

__global__ void copy_kernel(const float* x, float* y) { y[threadIdx.x] = x[threadIdx.x]; }

// --- Bugs.

__global__ void write_past_end_kernel(float* x, int n) { x[n + threadIdx.x] = 1.0f; }

// Each thread writes its slot and reads its neighbour's without a __syncthreads in between.
__global__ void missing_sync_kernel(int* out) {
  __shared__ int slots[256];
  slots[threadIdx.x] = static_cast<int>(threadIdx.x) + 1;
  out[threadIdx.x] = slots[(threadIdx.x + 1) % 256];
}

__global__ void exited_lane_kernel(float* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

__global__ void deadlock_kernel() {
  if (threadIdx.x == 1) __syncthreads();
  else if (threadIdx.x == 0) __syncwarp(0x3u);
}

}  // namespace

int main() {
  int* x = device<int>(1024);
  int* sums = device<int>(4);
  int host[1024];
  for (int i = 0; i < 1024; ++i) host[i] = i;
  cudaMemcpy(x, host, sizeof host, cudaMemcpyHostToDevice);
  block_sum_kernel<<<4, 256>>>(x, sums);
  int got[32];
  cudaMemcpy(got, sums, 4 * sizeof(int), cudaMemcpyDeviceToHost);
  expect(got[0] == 32640 && got[3] == 229248, "block sums through shared memory, __syncthreads and shuffles");

  int* lanes = device<int>(32);
  warp_kernel<<<1, 32, 32 * sizeof(int)>>>(lanes);
  cudaMemcpy(got, lanes, sizeof got, cudaMemcpyDeviceToHost);
  expect(got[0] == 50 + 1000 + 100000 * 31 && got[31] == 50 + 1000, "__shfl_sync, __ballot_sync, dynamic shared memory");

  float* never_written = device<float>(4);
  float* copied = device<float>(4);
  copy_kernel<<<1, 4>>>(never_written, copied);
  float f[4];
  cudaMemcpy(f, copied, sizeof f, cudaMemcpyDeviceToHost);
  expect(std::isnan(f[0]) && std::isnan(f[3]), "memory never written reads as NaN");

  // A graph records the kernel (and its arguments) and the memset, and replays them.
  cudaStream_t stream;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  cudaMemset(x, 0, 1024 * sizeof(int));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
  add_one_kernel<<<4, 256, 0, stream>>>(x, 1000);
  cudaMemsetAsync(x + 1000, 0, 24 * sizeof(int), stream);
  cudaStreamEndCapture(stream, &graph);
  cudaGraphInstantiate(&exec, graph, 0);
  cudaMemcpy(host, x, sizeof host, cudaMemcpyDeviceToHost);
  const bool captured_only = host[0] == 0;
  cudaGraphLaunch(exec, stream);
  cudaGraphLaunch(exec, stream);
  cudaStreamSynchronize(stream);
  cudaMemcpy(host, x, sizeof host, cudaMemcpyDeviceToHost);
  expect(captured_only && host[0] == 2 && host[999] == 2 && host[1000] == 0, "a CUDA graph records work and replays it");
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  expect(emu_take_errors() == 0, "none of the above is reported as an error");

  float* small = device<float>(100);
  expect_error("a kernel writing past the end of its buffer", [&] { write_past_end_kernel<<<1, 2>>>(small, 100); });
  expect_error("a block of 2048 threads", [&] {
    add_one_kernel<<<1, 2048>>>(x, 1);
    expect(cudaGetLastError() == cudaErrorInvalidConfiguration, "... and the launch reports an error");
  });
  expect_error("64 KB of dynamic shared memory without opting in",
               [&] { add_one_kernel<<<1, 32, 64 * 1024>>>(x, 1); });
  expect_error("a host pointer given to a kernel", [&] { add_one_kernel<<<1, 32>>>(host, 32); });
  expect_error("a copy past the end of a buffer", [&] { cudaMemcpy(small, host, 101 * sizeof(float), cudaMemcpyHostToDevice); });
  expect_error("cudaMalloc while a stream is captured", [&] {
    cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
    void* p = nullptr;
    cudaMalloc(&p, 16);
    cudaStreamEndCapture(stream, &graph);
    cudaGraphDestroy(graph);
  });

  // A cudaMemset on the legacy stream, then a kernel on a non-blocking stream: unordered.
  expect_error("legacy-stream work, then a non-blocking stream using the same buffer unsynchronised", [&] {
    cudaMemset(x, 0, 1024 * sizeof(int));
    add_one_kernel<<<4, 256, 0, stream>>>(x, 1024);
  });
  cudaStreamSynchronize(stream);
  emu_take_errors();
  cudaMemsetAsync(x, 0, 1024 * sizeof(int), stream);
  add_one_kernel<<<4, 256, 0, stream>>>(x, 1024);
  cudaStreamSynchronize(stream);
  cudaMemcpy(host, x, sizeof host, cudaMemcpyDeviceToHost);
  expect(emu_take_errors() == 0 && host[5] == 1, "... but not when one stream orders them, or after waiting for it");

  int* read = device<int>(256);
  missing_sync_kernel<<<1, 256>>>(read);
  cudaMemcpy(host, read, 256 * sizeof(int), cudaMemcpyDeviceToHost);
  int stale = 0;
  for (int i = 0; i < 256; ++i) stale += host[i] != (i + 1) % 256 + 1;
  expect(stale > 0, "a missing __syncthreads shows as wrong values (threads run in a random order)");

  float* out = device<float>(32);
  expect_fatal("a warp collective whose mask names a lane that exited", [&] { exited_lane_kernel<<<1, 32>>>(out); });
  expect_fatal("a deadlock between __syncthreads and __syncwarp", [&] { deadlock_kernel<<<1, 32>>>(); });

  std::printf("%s\n", failures == 0 ? "the emulator's self-test passed" : "the emulator's self-test FAILED");
  return failures == 0 ? 0 : 1;
}
