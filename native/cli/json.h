// JSON for the CLI's output, in the same shape as the addon's objects (src-main/contract).
#pragma once

#include <string>

#include "attune/cpu_benchmark.h"
#include "attune/system_info.h"

namespace attune {

std::string to_json(const SystemInfo& info);
std::string to_json(const CpuBenchmarkResult& result);

}  // namespace attune
