#include <sched.h>
#include <sys/sysinfo.h>

#include <fstream>
#include <string>

#include "host_os.h"

namespace attune {

namespace {

// "model name\t: Intel(R) Core(TM) i7" -> "Intel(R) Core(TM) i7" when the line's key is `key`.
bool read_field(const std::string& line, const std::string& key, std::string* value) {
  const auto colon = line.find(':');
  if (colon == std::string::npos) return false;
  std::string name = line.substr(0, colon);
  name.erase(name.find_last_not_of(" \t") + 1);
  const auto start = line.find_first_not_of(" \t", colon + 1);
  if (name != key || start == std::string::npos) return false;
  *value = line.substr(start);
  return true;
}

}  // namespace

std::string host_cpu_model() {
  // x86 says "model name"; many ARM kernels say only "Hardware" or (Raspberry Pi) "Model".
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, value, fallback;
  while (std::getline(cpuinfo, line)) {
    if (read_field(line, "model name", &value)) return value;
    if (fallback.empty() && (read_field(line, "Hardware", &value) || read_field(line, "Model", &value))) fallback = value;
  }
  return fallback;
}

unsigned host_affinity_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
  return static_cast<unsigned>(CPU_COUNT(&set));
}

HostMemory host_memory() {
  // /proc/meminfo's MemAvailable is the kernel's own estimate (free + reclaimable caches);
  // sysinfo() is the fallback for old kernels and restricted /proc.
  HostMemory memory;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib) {
    std::getline(meminfo, unit);
    if (key == "MemTotal:") memory.total_bytes = kib * 1024;
    if (key == "MemAvailable:") memory.available_bytes = kib * 1024;
  }
  if (memory.total_bytes == 0) {
    struct sysinfo si {};
    if (sysinfo(&si) == 0) {
      memory.total_bytes = static_cast<std::uint64_t>(si.totalram) * si.mem_unit;
      memory.available_bytes = static_cast<std::uint64_t>(si.freeram + si.bufferram) * si.mem_unit;
    }
  }
  return memory;
}

}  // namespace attune
