// Per-environment state (Node main thread, each worker_thread, each Electron utility process):
// stored with napi_set_instance_data instead of globals, so environments never share it.
#pragma once

#include <napi.h>

namespace attune_addon {

struct AddonData {
  Napi::FunctionReference cancel_token_class;  // to check that an argument really is a CancelToken
  Napi::FunctionReference model_class;         // to wrap loaded models
  Napi::FunctionReference trainer_class;       // createTrainer() makes these
};

}  // namespace attune_addon
