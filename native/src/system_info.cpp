#include "attune/system_info.h"

#include <thread>

#include "cuda/cuda_probe.h"
#include "host_os.h"

namespace attune {

namespace {

// Node's names for the platform and architecture, so the engine and process.platform/arch agree.
const char* os_platform() {
#if defined(_WIN32)
  return "win32";
#elif defined(__APPLE__)
  return "darwin";
#elif defined(__linux__)
  return "linux";
#else
  return "unknown";
#endif
}

const char* os_arch() {
#if defined(__x86_64__) || defined(_M_X64)
  return "x64";
#elif defined(__aarch64__) || defined(_M_ARM64)
  return "arm64";
#else
  return "unknown";
#endif
}

}  // namespace

unsigned available_cpu_threads() {
  unsigned threads = host_affinity_threads();
  if (threads == 0) threads = std::thread::hardware_concurrency();
  return threads == 0 ? 1 : threads;
}

SystemInfo query_system_info() {
  SystemInfo info;
  info.cpu_model = host_cpu_model();
  if (info.cpu_model.empty()) info.cpu_model = std::string("Unknown ") + os_arch() + " CPU";
  info.cpu_threads = available_cpu_threads();
  const HostMemory memory = host_memory();
  info.memory_total_bytes = memory.total_bytes;
  info.memory_available_bytes = memory.available_bytes;
  info.os_platform = os_platform();
  info.os_arch = os_arch();
  info.engine_version = ATTUNE_ENGINE_VERSION;
  info.cuda = probe_cuda();
  info.backends.push_back("cpu");
  if (info.cuda.usable) info.backends.push_back("cuda");
  return info;
}

}  // namespace attune
