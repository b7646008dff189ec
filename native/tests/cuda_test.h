// Support for the CUDA op tests, in the style of ggml's test-backend-ops: every CUDA op runs on
// random inputs next to the CPU op of the same name, and is judged by the normalized error
// ‖cuda − cpu‖ / ‖cpu‖ against a limit per dtype, with NaN checks and guard zones around every
// output that catch writes out of bounds. Outputs start poisoned (all bits set: NaN for float and
// bf16), so an element the kernel forgot to write fails the NaN check.
//
// Tests built with attune_cuda_test() run through cuda_check_main.cpp, which exits 77 (ctest's
// "skipped") when this machine has no usable GPU.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "attune/status.h"
#include "check.h"
#include "cpu/thread_pool.h"

namespace attune_test::gpu {

using bf16 = __nv_bfloat16;

// Elements of guard on each side of a DeviceArray.
constexpr size_t kGuard = 64;

template <typename T>
const char* dtype_name();

// n elements of T in device memory between two guard zones of a fixed byte pattern.
template <typename T>
class DeviceArray {
 public:
  // Poisoned: every byte 0xFF.
  explicit DeviceArray(size_t n);
  // The values of `host`, rounded to T.
  explicit DeviceArray(const std::vector<float>& host);
  ~DeviceArray();
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() { return base_ + kGuard; }
  const T* get() const { return base_ + kGuard; }
  size_t size() const { return n_; }
  std::vector<float> download() const;  // as fp32
  // Whether both guard zones still hold their pattern.
  bool guards_intact() const;

 private:
  T* base_ = nullptr;
  size_t n_ = 0;
};

// Uniform values in [lo, hi), from a fixed seed: the same inputs on every run.
std::vector<float> random_values(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f);
// The values T can hold nearest to `values` (round to nearest even for bf16): what the CPU
// reference gets as input, so both sides see the same numbers.
template <typename T>
std::vector<float> rounded(std::vector<float> values);

// ‖got − want‖ / ‖want‖ in double; +inf when got has a NaN or an infinity, or sizes differ.
double normalized_error(const std::vector<float>& got, const std::vector<float>& want);

// The normalized-error limit of an op's output in T: fp32 arithmetic lands far under 1e-5 for
// these ops; bf16 storage rounds every element by up to 2⁻⁹ relative.
template <typename T>
double error_limit();

// 0 when got and want hold the same bits everywhere, else 1 (and the first difference, or the
// sizes, printed with `what`): the error of the ops that must equal the CPU's bit for bit.
double bitwise_error(const std::vector<float>& got, const std::vector<float>& want, const char* what);

// Records one comparison as a row of the table cuda_check_main.cpp prints at the end and CHECKs
// it: the error is within `limit` and finite, and `guards_ok`.
void expect_close(const std::string& op, const char* dtype, const std::string& shape, double error, double limit,
                  bool guards_ok = true);

// Synchronizes the device and CHECKs that no kernel failed.
void expect_no_cuda_error();

// CHECKs that a launcher (or any engine call) succeeded, printing its message when not.
void expect_ok(const attune::Status& status);

// A one-thread pool for the CPU reference ops.
attune::cpu::ThreadPool& cpu_pool();

}  // namespace attune_test::gpu
