// Engine failures as JS errors: `message` says what happened in plain words, `code` is the
// Status's stable name ("CANCELLED", "INVALID_ARGUMENT", "INTERNAL") for callers to branch on.
#pragma once

#include <napi.h>

#include <string>

#include "attune/status.h"

namespace attune_addon {

Napi::Error status_error(Napi::Env env, const attune::Status& status);

// For arguments the JS caller should have validated: a TypeError with code INVALID_ARGUMENT.
Napi::Error argument_error(Napi::Env env, const std::string& message);

}  // namespace attune_addon
