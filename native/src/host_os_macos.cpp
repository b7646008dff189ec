#include <mach/mach.h>
#include <sys/sysctl.h>

#include <string>

#include "host_os.h"

namespace attune {

std::string host_cpu_model() {
  char name[256] = {};
  size_t size = sizeof(name);
  if (sysctlbyname("machdep.cpu.brand_string", name, &size, nullptr, 0) != 0) return "";
  return name;
}

unsigned host_affinity_threads() { return 0; }  // macOS has no affinity masks

HostMemory host_memory() {
  HostMemory memory;
  std::uint64_t total = 0;
  size_t size = sizeof(total);
  if (sysctlbyname("hw.memsize", &total, &size, nullptr, 0) == 0) memory.total_bytes = total;
  // Free, inactive and purgeable pages can all be handed to a new allocation without swapping.
  vm_statistics64_data_t vm{};
  mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
  vm_size_t page_size = 0;
  if (host_page_size(mach_host_self(), &page_size) == KERN_SUCCESS &&
      host_statistics64(mach_host_self(), HOST_VM_INFO64, reinterpret_cast<host_info64_t>(&vm), &count) == KERN_SUCCESS) {
    memory.available_bytes =
        (static_cast<std::uint64_t>(vm.free_count) + vm.inactive_count + vm.purgeable_count) * page_size;
  }
  return memory;
}

}  // namespace attune
