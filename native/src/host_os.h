// The few facts about the host that each OS exposes its own way (host_os_*.cpp, one per OS).
#pragma once

#include <cstdint>
#include <string>

namespace attune {

// The CPU's marketing name ("AMD Ryzen 9 7950X 16-Core Processor"); "" when the OS does not say.
std::string host_cpu_model();

// Logical processors in this process's affinity mask; 0 when the OS has no such notion.
unsigned host_affinity_threads();

struct HostMemory {
  std::uint64_t total_bytes = 0;
  std::uint64_t available_bytes = 0;  // what new allocations can get without swapping; 0 if unknown
};
HostMemory host_memory();

}  // namespace attune
