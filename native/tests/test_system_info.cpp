#include <string>
#include <thread>

#include "attune/system_info.h"
#include "check.h"

TEST(reports_cpu_memory_os_and_engine) {
  const attune::SystemInfo info = attune::query_system_info();
  CHECK(!info.cpu_model.empty());
  CHECK(info.cpu_threads >= 1);
  CHECK(info.cpu_threads <= std::thread::hardware_concurrency() || std::thread::hardware_concurrency() == 0);
  CHECK(info.memory_total_bytes > 0);
  CHECK(info.memory_available_bytes <= info.memory_total_bytes);
  CHECK(info.os_platform == "linux" || info.os_platform == "darwin" || info.os_platform == "win32");
  CHECK(!info.engine_version.empty());
  CHECK(!info.backends.empty() && info.backends[0] == "cpu");
}

TEST(cuda_is_either_usable_or_says_why_not) {
  const attune::SystemInfo info = attune::query_system_info();
  const attune::CudaInfo& cuda = info.cuda;
  CHECK(cuda.usable == (info.backends.size() == 2 && info.backends[1] == "cuda"));
  CHECK(cuda.usable == cuda.reason.empty());
  CHECK(!cuda.usable || cuda.compiled);
  CHECK(cuda.compiled == !cuda.runtime_version.empty());
  for (const auto& device : cuda.devices) {
    CHECK(!device.name.empty());
    CHECK(device.memory_bytes > 0);
  }
}
