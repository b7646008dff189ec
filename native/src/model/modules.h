// The linear layers of a decoder layer, in PEFT's names: the places an adapter can attach.
#pragma once

#include <string>

namespace attune {

enum class Module { kQ, kK, kV, kO, kGate, kUp, kDown };
constexpr int kModuleCount = 7;
const char* module_name(Module module);  // "q_proj", …
const char* module_path(Module module);  // "self_attn.q_proj", "mlp.gate_proj", …
bool module_from_name(const std::string& name, Module* out);

}  // namespace attune
