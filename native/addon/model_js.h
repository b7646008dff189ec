// JS class Model: a loaded language model. Made by `loadModel(dir, threads)`, never with `new`.
// Every method runs off the JS thread; one operation at a time per model (the model's scratch
// buffers are shared), so a second concurrent call is refused rather than queued invisibly.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

#include "model/llama.h"

namespace attune_addon {

// What a running operation holds: the model stays alive (and busy) until the work is done, even
// if the JS object is collected or closed meanwhile.
struct LoadedModel {
  std::unique_ptr<attune::LlamaModel> model;
  std::atomic<bool> busy{false};
};

// Marks `loaded` busy for one operation; throws if it was closed (null) or is busy already.
std::shared_ptr<LoadedModel> mark_busy(Napi::Env env, const std::shared_ptr<LoadedModel>& loaded, const char* operation);

// Marks the model idle again however the operation ends.
struct BusyRelease {
  std::shared_ptr<LoadedModel> loaded;
  ~BusyRelease() {
    if (loaded) loaded->busy.store(false);
  }
};

class ModelJs : public Napi::ObjectWrap<ModelJs> {
 public:
  static Napi::Function define_class(Napi::Env env);
  // Wraps a freshly loaded model in a JS Model object.
  static Napi::Object wrap(Napi::Env env, std::shared_ptr<LoadedModel> loaded);

  explicit ModelJs(const Napi::CallbackInfo& info);
  // The model behind a JS Model object; throws INVALID_ARGUMENT for anything else or a closed model.
  static std::shared_ptr<LoadedModel> unwrap(Napi::Env env, Napi::Value value);

 private:
  Napi::Value info(const Napi::CallbackInfo& info);
  Napi::Value generate(const Napi::CallbackInfo& info);
  Napi::Value sequence_loss(const Napi::CallbackInfo& info);
  void set_adapter(const Napi::CallbackInfo& info);
  void clear_adapter(const Napi::CallbackInfo& info);
  void close(const Napi::CallbackInfo& info);

  std::shared_ptr<LoadedModel> loaded_;
};

// loadModel(dir: string, threads: number, options?: {quantizeNf4}): Promise<Model>
Napi::Value load_model_js(const Napi::CallbackInfo& info);

}  // namespace attune_addon
