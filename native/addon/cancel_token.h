// JS class CancelToken: `new CancelToken()`, `token.cancel()`, `token.cancelled`. One per call:
// pass it to a long operation, cancel it from JS, and the operation stops between steps with a
// CANCELLED error. The engine token is shared with the operation's thread, so the JS object may
// be garbage-collected while the operation still runs.
#pragma once

#include <napi.h>

#include <memory>

#include "attune/cancel.h"

namespace attune_addon {

class CancelTokenJs : public Napi::ObjectWrap<CancelTokenJs> {
 public:
  static Napi::Function define_class(Napi::Env env);
  // The engine token behind `value`; throws INVALID_ARGUMENT unless `value` is a CancelToken.
  static std::shared_ptr<attune::CancelToken> unwrap(Napi::Env env, Napi::Value value);

  explicit CancelTokenJs(const Napi::CallbackInfo& info);

 private:
  void cancel(const Napi::CallbackInfo& info);
  Napi::Value cancelled(const Napi::CallbackInfo& info);

  std::shared_ptr<attune::CancelToken> token_ = std::make_shared<attune::CancelToken>();
};

}  // namespace attune_addon
