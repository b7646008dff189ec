#include "cancel_token.h"

#include "addon_data.h"
#include "errors.h"

namespace attune_addon {

Napi::Function CancelTokenJs::define_class(Napi::Env env) {
  return DefineClass(env, "CancelToken",
                     {
                         InstanceMethod<&CancelTokenJs::cancel>("cancel"),
                         InstanceAccessor<&CancelTokenJs::cancelled>("cancelled"),
                     });
}

std::shared_ptr<attune::CancelToken> CancelTokenJs::unwrap(Napi::Env env, Napi::Value value) {
  const AddonData* data = env.GetInstanceData<AddonData>();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(data->cancel_token_class.Value())) {
    throw argument_error(env, "expected a CancelToken");
  }
  return Unwrap(value.As<Napi::Object>())->token_;
}

CancelTokenJs::CancelTokenJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CancelTokenJs>(info) {}

void CancelTokenJs::cancel(const Napi::CallbackInfo&) { token_->cancel(); }

Napi::Value CancelTokenJs::cancelled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), token_->cancelled());
}

}  // namespace attune_addon
