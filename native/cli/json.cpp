#include "json.h"

#include <cstdio>
#include <sstream>

namespace attune {

namespace {

// A JSON string literal: quotes, backslashes and control characters escaped.
std::string quote(const std::string& text) {
  std::string out = "\"";
  for (const char ch : text) {
    const auto byte = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (byte < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", byte);
      out += escaped;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string cuda_json(const CudaInfo& cuda) {
  std::ostringstream out;
  out << "{\"usable\": " << (cuda.usable ? "true" : "false") << ", \"compiled\": " << (cuda.compiled ? "true" : "false");
  if (!cuda.reason.empty()) out << ", \"reason\": " << quote(cuda.reason);
  if (!cuda.driver_version.empty()) out << ", \"driverVersion\": " << quote(cuda.driver_version);
  if (!cuda.runtime_version.empty()) out << ", \"runtimeVersion\": " << quote(cuda.runtime_version);
  out << ", \"devices\": [";
  for (size_t i = 0; i < cuda.devices.size(); ++i) {
    const CudaDevice& device = cuda.devices[i];
    out << (i ? ", " : "") << "{\"index\": " << device.index << ", \"name\": " << quote(device.name)
        << ", \"memoryBytes\": " << device.memory_bytes << ", \"computeCapability\": \"" << device.compute_major << "."
        << device.compute_minor << "\"}";
  }
  out << "]}";
  return out.str();
}

}  // namespace

std::string to_json(const SystemInfo& info) {
  std::ostringstream out;
  out << "{\n  \"cpu\": {\"model\": " << quote(info.cpu_model) << ", \"threads\": " << info.cpu_threads << "},\n"
      << "  \"memory\": {\"totalBytes\": " << info.memory_total_bytes
      << ", \"availableBytes\": " << info.memory_available_bytes << "},\n"
      << "  \"os\": {\"platform\": " << quote(info.os_platform) << ", \"arch\": " << quote(info.os_arch) << "},\n"
      << "  \"engine\": {\"version\": " << quote(info.engine_version) << ", \"backends\": [";
  for (size_t i = 0; i < info.backends.size(); ++i) out << (i ? ", " : "") << quote(info.backends[i]);
  out << "]},\n  \"cuda\": " << cuda_json(info.cuda) << "\n}";
  return out.str();
}

std::string to_json(const CpuBenchmarkResult& result) {
  std::ostringstream out;
  out << "{\"gflops\": " << result.gflops << ", \"iterations\": " << result.iterations
      << ", \"seconds\": " << result.seconds << "}";
  return out.str();
}

}  // namespace attune
