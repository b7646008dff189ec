// The addon's functions; each validates its arguments, runs off the JS thread and returns a Promise.
#pragma once

#include <napi.h>

namespace attune_addon {

// systemInfo(): Promise<SystemInfo>
Napi::Value system_info_js(const Napi::CallbackInfo& info);

// cpuBenchmark(seconds, onProgress({fraction, gflops}), cancelToken): Promise<{gflops, iterations, seconds}>
Napi::Value cpu_benchmark_js(const Napi::CallbackInfo& info);

}  // namespace attune_addon
