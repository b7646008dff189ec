#include <cuda_runtime.h>

#include <atomic>
#include <string>

#include "cuda/cublaslt.h"
#include "cuda/cuda_probe.h"

namespace attune {

namespace {

// Turing: the oldest architecture with the bf16/fp16 tensor-core paths the engine's kernels use.
constexpr int kMinComputeMajor = 7;
constexpr int kMinComputeMinor = 5;

// 13000 -> "13.0"
std::string cuda_version_string(int version) {
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

// "CUDA error 35: cudaErrorInsufficientDriver, CUDA driver version is insufficient for ..."
std::string describe(cudaError_t error) {
  return "CUDA error " + std::to_string(static_cast<int>(error)) + ": " + cudaGetErrorName(error) + ", " +
         cudaGetErrorString(error);
}

std::string reason_no_devices(cudaError_t error, int driver_version, int runtime_version) {
  if (error == cudaErrorInsufficientDriver) {
    if (driver_version == 0) return "No NVIDIA driver was found (" + describe(error) + ")";
    return "The NVIDIA driver is too old: it supports CUDA " + cuda_version_string(driver_version) +
           " and this build of Attune needs CUDA " + cuda_version_string(runtime_version) +
           ". Update the NVIDIA driver (" + describe(error) + ")";
  }
  if (error == cudaErrorNoDevice) return "No NVIDIA GPU was found (" + describe(error) + ")";
  return "The NVIDIA GPU could not be used (" + describe(error) + ")";
}

std::atomic<int> gpu_users{0};

__global__ void write_marker(int* out) { *out = 0x5afe; }

// Runs one tiny kernel on `device`: proves this build holds code the device can run (a matching
// cubin, or PTX the driver can compile) before the device is called usable. Returns "" on
// success, else the reason. Resets the device afterwards so that the probe leaves no context
// (hundreds of MB of GPU memory) behind.
std::string run_smoke_kernel(int device) {
  cudaError_t error = cudaSetDevice(device);
  int* marker = nullptr;
  int value = 0;
  if (error == cudaSuccess) error = cudaMalloc(&marker, sizeof(int));
  if (error == cudaSuccess) {
    write_marker<<<1, 1>>>(marker);
    error = cudaGetLastError();
  }
  if (error == cudaSuccess) error = cudaMemcpy(&value, marker, sizeof(int), cudaMemcpyDeviceToHost);
  if (marker != nullptr) cudaFree(marker);
  cudaDeviceReset();
  if (error != cudaSuccess) return "could not run this build's kernels (" + describe(error) + ")";
  if (value != 0x5afe) return "ran this build's test kernel but got a wrong result";
  return "";
}

}  // namespace

CudaInfo probe_cuda() {
  CudaInfo info;
  info.compiled = true;
  int runtime_version = 0;
  if (cudaRuntimeGetVersion(&runtime_version) == cudaSuccess) info.runtime_version = cuda_version_string(runtime_version);
  // Reports 0 (and success) when no driver is installed.
  int driver_version = 0;
  if (cudaDriverGetVersion(&driver_version) == cudaSuccess && driver_version > 0) {
    info.driver_version = cuda_version_string(driver_version);
  }

  int count = 0;
  cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess || count == 0) {
    info.reason = reason_no_devices(error == cudaSuccess ? cudaErrorNoDevice : error, driver_version, runtime_version);
    cudaGetLastError();  // clear the error so later CUDA calls in this process start clean
    return info;
  }

  std::string unusable;  // one clause per device that cannot be used
  for (int index = 0; index < count; ++index) {
    cudaDeviceProp props{};
    error = cudaGetDeviceProperties(&props, index);
    if (error != cudaSuccess) {
      unusable += (unusable.empty() ? "" : "; ") + ("GPU " + std::to_string(index) + " could not be queried (" + describe(error) + ")");
      continue;
    }
    info.devices.push_back({index, props.name, static_cast<std::uint64_t>(props.totalGlobalMem), props.major, props.minor});
    const std::string label = "GPU " + std::to_string(index) + " (" + props.name + ")";
    const bool too_old =
        props.major < kMinComputeMajor || (props.major == kMinComputeMajor && props.minor < kMinComputeMinor);
    std::string problem;
    if (too_old) {
      problem = label + " has compute capability " + std::to_string(props.major) + "." + std::to_string(props.minor) +
                " and needs compute capability 7.5 or newer";
    } else if (std::string failure = gpu_users.load() > 0 ? std::string() : run_smoke_kernel(index); !failure.empty()) {
      // (With GPU work alive in this process the device already runs this build's kernels.)
      problem = label + " " + failure;
    }
    if (problem.empty()) {
      info.usable = true;
    } else {
      unusable += (unusable.empty() ? "" : "; ") + problem;
    }
  }
  if (!info.usable) {
    info.reason = unusable;
    return info;
  }
  // Every matrix product goes through cuBLASLt: without it a GPU is of no use to the engine.
  std::string missing;
  if (cuda::load_cublaslt(&missing) == nullptr) {
    info.usable = false;
    info.reason = missing;
  }
  return info;
}

GpuInUse::GpuInUse() { ++gpu_users; }
GpuInUse::~GpuInUse() { --gpu_users; }

std::string cuda_device_problem(int device) {
  int driver_version = 0, runtime_version = 0;
  cudaDriverGetVersion(&driver_version);
  cudaRuntimeGetVersion(&runtime_version);
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess || count == 0) {
    cudaGetLastError();
    return reason_no_devices(error == cudaSuccess ? cudaErrorNoDevice : error, driver_version, runtime_version);
  }
  if (device < 0 || device >= count) {
    return "there is no GPU " + std::to_string(device) + " (this machine has " + std::to_string(count) + ")";
  }
  cudaDeviceProp props{};
  if (const cudaError_t e = cudaGetDeviceProperties(&props, device); e != cudaSuccess) {
    return "GPU " + std::to_string(device) + " could not be queried (" + describe(e) + ")";
  }
  if (props.major < kMinComputeMajor || (props.major == kMinComputeMajor && props.minor < kMinComputeMinor)) {
    return std::string("GPU ") + std::to_string(device) + " (" + props.name + ") has compute capability " +
           std::to_string(props.major) + "." + std::to_string(props.minor) + " and needs compute capability 7.5 or newer";
  }
  std::string missing;
  if (cuda::load_cublaslt(&missing) == nullptr) return missing;
  return "";
}

}  // namespace attune
