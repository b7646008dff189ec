#include "model/modules.h"

namespace attune {

namespace {
constexpr const char* kNames[kModuleCount] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
constexpr const char* kPaths[kModuleCount] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                              "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
}  // namespace

const char* module_name(Module module) { return kNames[static_cast<int>(module)]; }
const char* module_path(Module module) { return kPaths[static_cast<int>(module)]; }

bool module_from_name(const std::string& name, Module* out) {
  for (int i = 0; i < kModuleCount; ++i) {
    if (name == kNames[i]) {
      *out = static_cast<Module>(i);
      return true;
    }
  }
  return false;
}

}  // namespace attune
