#include "errors.h"

namespace attune_addon {

Napi::Error status_error(Napi::Env env, const attune::Status& status) {
  Napi::Error error = Napi::Error::New(env, status.message());
  error.Set("code", attune::status_code_name(status.code()));
  return error;
}

Napi::Error argument_error(Napi::Env env, const std::string& message) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Set("code", attune::status_code_name(attune::StatusCode::kInvalidArgument));
  return error;
}

}  // namespace attune_addon
