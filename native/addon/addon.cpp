// attune_engine.node: a thin N-API layer over the engine library. Validation and defaults live in
// JS (src-main/engine); this layer converts values, runs work off the JS thread, and turns
// Statuses into errors with codes.
#include <napi.h>

#include "addon_data.h"
#include "bindings.h"
#include "cancel_token.h"
#include "model_js.h"
#include "quantize_js.h"
#include "trainer_js.h"

namespace {

// NODE_API_MODULE pastes the name into an identifier, so init cannot be namespace-qualified.
Napi::Object init(Napi::Env env, Napi::Object exports) {
  using namespace attune_addon;
  Napi::Function cancel_token_class = CancelTokenJs::define_class(env);
  Napi::Function model_class = ModelJs::define_class(env);
  Napi::Function trainer_class = TrainerJs::define_class(env);
  env.SetInstanceData(
      new AddonData{Napi::Persistent(cancel_token_class), Napi::Persistent(model_class), Napi::Persistent(trainer_class)});
  exports.Set("CancelToken", cancel_token_class);
  exports.Set("loadModel", Napi::Function::New(env, load_model_js, "loadModel"));
  exports.Set("createTrainer", Napi::Function::New(env, create_trainer_js, "createTrainer"));
  exports.Set("systemInfo", Napi::Function::New(env, system_info_js, "systemInfo"));
  exports.Set("cpuBenchmark", Napi::Function::New(env, cpu_benchmark_js, "cpuBenchmark"));
  exports.Set("quantizeModel", Napi::Function::New(env, quantize_model_js, "quantizeModel"));
  return exports;
}

}  // namespace

NODE_API_MODULE(attune_engine, init)
