// What the machine offers the engine. Field names follow SystemInfo in src-main/contract/system.ts,
// which the addon and `attune-engine info` both produce.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attune {

struct CudaDevice {
  int index = 0;
  std::string name;
  std::uint64_t memory_bytes = 0;
  int compute_major = 0;
  int compute_minor = 0;
};

struct CudaInfo {
  bool compiled = false;  // this build contains the CUDA backend
  bool usable = false;    // at least one device can run this build's kernels
  std::string reason;     // why no GPU can be used, in plain words; empty when usable
  std::string driver_version;   // "13.0"; empty when no driver was found
  std::string runtime_version;  // "13.0"; empty when CUDA was not compiled in
  std::vector<CudaDevice> devices;  // every device found, usable or not
};

struct SystemInfo {
  std::string cpu_model;
  unsigned cpu_threads = 1;
  std::uint64_t memory_total_bytes = 0;
  std::uint64_t memory_available_bytes = 0;
  std::string os_platform;  // Node's names: "linux", "darwin", "win32"
  std::string os_arch;      // Node's names: "x64", "arm64"
  std::string engine_version;
  std::vector<std::string> backends;  // backends that can run on this machine now: "cpu", "cuda"
  CudaInfo cuda;
};

// Never fails: every field has a fallback and CUDA problems become CudaInfo::reason.
// Probing CUDA initialises the driver, which can take a second: call it off the UI thread.
SystemInfo query_system_info();

// Logical processors this process may run on (its affinity mask where the OS has one).
unsigned available_cpu_threads();

}  // namespace attune
