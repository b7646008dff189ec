#define WIN32_LEAN_AND_MEAN
#include <windows.h>

#include <string>

#include "host_os.h"

namespace attune {

std::string host_cpu_model() {
  char name[256] = {};
  DWORD size = sizeof(name);
  if (RegGetValueA(HKEY_LOCAL_MACHINE, "HARDWARE\\DESCRIPTION\\System\\CentralProcessor\\0", "ProcessorNameString",
                   RRF_RT_REG_SZ, nullptr, name, &size) != ERROR_SUCCESS) {
    return "";
  }
  std::string model(name);
  // The registry pads some names with leading spaces.
  const auto start = model.find_first_not_of(' ');
  return start == std::string::npos ? "" : model.substr(start);
}

unsigned host_affinity_threads() {
  // Counts across all processor groups, which the process may use on Windows 11 and later.
  return static_cast<unsigned>(GetActiveProcessorCount(ALL_PROCESSOR_GROUPS));
}

HostMemory host_memory() {
  HostMemory memory;
  MEMORYSTATUSEX status{};
  status.dwLength = sizeof(status);
  if (GlobalMemoryStatusEx(&status)) {
    memory.total_bytes = status.ullTotalPhys;
    memory.available_bytes = status.ullAvailPhys;
  }
  return memory;
}

}  // namespace attune
