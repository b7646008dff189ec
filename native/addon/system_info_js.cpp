#include "attune/system_info.h"
#include "bindings.h"
#include "errors.h"

namespace attune_addon {

namespace {

// Same shape as SystemInfo in src-main/contract/system.ts; optional strings are left out when empty.
Napi::Object to_js(Napi::Env env, const attune::SystemInfo& info) {
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("model", info.cpu_model);
  cpu.Set("threads", info.cpu_threads);

  Napi::Object memory = Napi::Object::New(env);
  memory.Set("totalBytes", static_cast<double>(info.memory_total_bytes));
  memory.Set("availableBytes", static_cast<double>(info.memory_available_bytes));

  Napi::Object os = Napi::Object::New(env);
  os.Set("platform", info.os_platform);
  os.Set("arch", info.os_arch);

  Napi::Array backends = Napi::Array::New(env, info.backends.size());
  for (uint32_t i = 0; i < info.backends.size(); ++i) backends.Set(i, info.backends[i]);
  Napi::Object engine = Napi::Object::New(env);
  engine.Set("version", info.engine_version);
  engine.Set("backends", backends);

  Napi::Array devices = Napi::Array::New(env, info.cuda.devices.size());
  for (uint32_t i = 0; i < info.cuda.devices.size(); ++i) {
    const attune::CudaDevice& d = info.cuda.devices[i];
    Napi::Object device = Napi::Object::New(env);
    device.Set("index", d.index);
    device.Set("name", d.name);
    device.Set("memoryBytes", static_cast<double>(d.memory_bytes));
    device.Set("computeCapability", std::to_string(d.compute_major) + "." + std::to_string(d.compute_minor));
    devices.Set(i, device);
  }
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("usable", info.cuda.usable);
  if (!info.cuda.reason.empty()) cuda.Set("reason", info.cuda.reason);
  cuda.Set("compiled", info.cuda.compiled);
  if (!info.cuda.driver_version.empty()) cuda.Set("driverVersion", info.cuda.driver_version);
  if (!info.cuda.runtime_version.empty()) cuda.Set("runtimeVersion", info.cuda.runtime_version);
  cuda.Set("devices", devices);

  Napi::Object out = Napi::Object::New(env);
  out.Set("cpu", cpu);
  out.Set("memory", memory);
  out.Set("os", os);
  out.Set("engine", engine);
  out.Set("cuda", cuda);
  return out;
}

// Runs on libuv's thread pool: probing CUDA initialises the driver, which can take a second.
class SystemInfoWorker : public Napi::AsyncWorker {
 public:
  explicit SystemInfoWorker(Napi::Env env)
      : Napi::AsyncWorker(env, "attune:systemInfo"), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override { info_ = attune::query_system_info(); }
  void OnOK() override { deferred_.Resolve(to_js(Env(), info_)); }
  // Only reached if Execute threw (e.g. out of memory).
  void OnError(const Napi::Error& error) override {
    deferred_.Reject(status_error(Env(), attune::Status::internal(error.Message())).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  attune::SystemInfo info_;
};

}  // namespace

Napi::Value system_info_js(const Napi::CallbackInfo& info) {
  auto* worker = new SystemInfoWorker(info.Env());  // deletes itself after OnOK / OnError
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace attune_addon
