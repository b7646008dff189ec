#include "cuda_test.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <type_traits>

namespace attune_test::gpu {

namespace {

constexpr unsigned char kGuardByte = 0xA5;

struct Row {
  std::string op, dtype, shape;
  double error, limit;
  bool ok;
};

std::vector<Row>& rows() {
  static std::vector<Row> table;
  return table;
}

template <typename T>
T from_float(float v);
template <>
float from_float<float>(float v) {
  return v;
}
template <>
bf16 from_float<bf16>(float v) {
  return __float2bfloat16_rn(v);
}

float to_float(float v) { return v; }
float to_float(bf16 v) { return __bfloat162float(v); }

}  // namespace

template <>
const char* dtype_name<float>() {
  return "f32";
}
template <>
const char* dtype_name<bf16>() {
  return "bf16";
}
template <>
const char* dtype_name<int32_t>() {
  return "i32";
}
template <>
const char* dtype_name<uint8_t>() {
  return "u8";
}

template <typename T>
DeviceArray<T>::DeviceArray(size_t n) : n_(n) {
  const size_t total = (n + 2 * kGuard) * sizeof(T);
  if (cudaMalloc(reinterpret_cast<void**>(&base_), total) != cudaSuccess) {
    base_ = nullptr;
    CHECK(!"cudaMalloc failed in a test");
    return;
  }
  cudaMemset(base_, kGuardByte, kGuard * sizeof(T));
  cudaMemset(base_ + kGuard, 0xFF, n * sizeof(T));
  cudaMemset(base_ + kGuard + n, kGuardByte, kGuard * sizeof(T));
}

template <typename T>
DeviceArray<T>::DeviceArray(const std::vector<float>& host) : DeviceArray(host.size()) {
  if (!base_) return;
  std::vector<T> converted(host.size());
  if constexpr (std::is_same_v<T, int32_t> || std::is_same_v<T, uint8_t>) {
    for (size_t i = 0; i < host.size(); ++i) converted[i] = static_cast<T>(host[i]);
  } else {
    for (size_t i = 0; i < host.size(); ++i) converted[i] = from_float<T>(host[i]);
  }
  cudaMemcpy(get(), converted.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
}

template <typename T>
DeviceArray<T>::~DeviceArray() {
  if (base_) cudaFree(base_);
}

template <typename T>
std::vector<float> DeviceArray<T>::download() const {
  std::vector<T> raw(n_);
  std::vector<float> out(n_);
  if (!base_) return out;
  cudaMemcpy(raw.data(), get(), n_ * sizeof(T), cudaMemcpyDeviceToHost);
  if constexpr (std::is_same_v<T, int32_t> || std::is_same_v<T, uint8_t>) {
    for (size_t i = 0; i < n_; ++i) out[i] = static_cast<float>(raw[i]);
  } else {
    for (size_t i = 0; i < n_; ++i) out[i] = to_float(raw[i]);
  }
  return out;
}

template <typename T>
bool DeviceArray<T>::guards_intact() const {
  if (!base_) return false;
  std::vector<unsigned char> before(kGuard * sizeof(T)), after(kGuard * sizeof(T));
  cudaMemcpy(before.data(), base_, before.size(), cudaMemcpyDeviceToHost);
  cudaMemcpy(after.data(), base_ + kGuard + n_, after.size(), cudaMemcpyDeviceToHost);
  for (unsigned char b : before) {
    if (b != kGuardByte) return false;
  }
  for (unsigned char b : after) {
    if (b != kGuardByte) return false;
  }
  return true;
}

template class DeviceArray<float>;
template class DeviceArray<bf16>;
template class DeviceArray<int32_t>;
template class DeviceArray<uint8_t>;

std::vector<float> random_values(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(n);
  for (float& v : out) v = dist(rng);
  return out;
}

template <>
std::vector<float> rounded<float>(std::vector<float> values) {
  return values;
}
template <>
std::vector<float> rounded<bf16>(std::vector<float> values) {
  for (float& v : values) v = __bfloat162float(__float2bfloat16_rn(v));
  return values;
}

double normalized_error(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    const double d = static_cast<double>(got[i]) - want[i];
    diff += d * d;
    norm += static_cast<double>(want[i]) * want[i];
  }
  if (norm == 0) return std::sqrt(diff);
  return std::sqrt(diff / norm);
}

double bitwise_error(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  if (got.size() != want.size()) {
    std::printf("  %s: %zu values, want %zu\n", what, got.size(), want.size());
    return 1;
  }
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      if (mismatches++ == 0) first = i;
    }
  }
  if (mismatches == 0) return 0;
  std::printf("  %s: %zu of %zu values differ; first at %zu: got %.9g, want %.9g\n", what, mismatches, got.size(), first,
              static_cast<double>(got[first]), static_cast<double>(want[first]));
  return 1;
}

template <>
double error_limit<float>() {
  return 1e-5;
}
template <>
double error_limit<bf16>() {
  return 1e-2;
}

void expect_close(const std::string& op, const char* dtype, const std::string& shape, double error, double limit,
                  bool guards_ok) {
  const bool ok = std::isfinite(error) && error <= limit && guards_ok;
  rows().push_back({op, dtype, shape + (guards_ok ? "" : " (wrote outside its output)"), error, limit, ok});
  CHECK(std::isfinite(error));
  CHECK(error <= limit);
  CHECK(guards_ok);
}

void expect_no_cuda_error() {
  const cudaError_t error = cudaDeviceSynchronize();
  if (error != cudaSuccess) std::printf("  CUDA error %d: %s\n", static_cast<int>(error), cudaGetErrorString(error));
  CHECK(error == cudaSuccess);
}

void expect_ok(const attune::Status& status) {
  if (!status.ok()) std::printf("  %s\n", status.message().c_str());
  CHECK(status.ok());
}

attune::cpu::ThreadPool& cpu_pool() {
  static attune::cpu::ThreadPool pool(1);
  return pool;
}

void print_table() {
  if (rows().empty()) return;
  std::printf("\n| op | dtype | shape | error | limit | result |\n|---|---|---|---|---|---|\n");
  for (const Row& r : rows()) {
    std::printf("| %s | %s | %s | %.2e | %.0e | %s |\n", r.op.c_str(), r.dtype.c_str(), r.shape.c_str(), r.error, r.limit,
                r.ok ? "ok" : "FAIL");
  }
}

}  // namespace attune_test::gpu
