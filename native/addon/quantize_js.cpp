#include "quantize_js.h"

#include <cmath>
#include <memory>
#include <string>
#include <utility>

#include "cancel_token.h"
#include "errors.h"
#include "quant/nf4_weight.h"
#include "quant/quantize_model.h"

namespace attune_addon {

namespace {

// Runs on libuv's thread pool. Progress crosses to the JS thread through the worker's thread-safe
// function, which keeps only the latest value when JS falls behind (a progress bar needs no more).
class QuantizeWorker : public Napi::AsyncProgressWorker<attune::quant::QuantizeModelProgress> {
 public:
  QuantizeWorker(Napi::Env env, std::string src, std::string dest, attune::quant::QuantizeModelOptions options,
                 Napi::Function on_progress, std::shared_ptr<attune::CancelToken> cancel)
      : Napi::AsyncProgressWorker<attune::quant::QuantizeModelProgress>(env, "attune:quantizeModel"),
        deferred_(Napi::Promise::Deferred::New(env)),
        src_(std::move(src)),
        dest_(std::move(dest)),
        options_(options),
        on_progress_(Napi::Persistent(on_progress)),
        cancel_(std::move(cancel)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    status_ = attune::quant::quantize_model(
        src_, dest_, options_, *cancel_,
        [&progress](const attune::quant::QuantizeModelProgress& p) { progress.Send(&p, 1); }, &result_);
    if (!status_.ok()) SetError(status_.message());
  }

  void OnProgress(const attune::quant::QuantizeModelProgress* data, size_t count) override {
    if (data == nullptr || count == 0 || !callback_error_.IsEmpty()) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    const attune::quant::QuantizeModelProgress& last = data[count - 1];
    Napi::Object progress = Napi::Object::New(env);
    progress.Set("done", static_cast<double>(last.done));
    progress.Set("total", static_cast<double>(last.total));
    progress.Set("tensor", last.tensor);
    try {
      on_progress_.Call({progress});
    } catch (const Napi::Error& error) {
      // A throwing callback stops the work, and its error becomes the call's error.
      callback_error_ = Napi::Persistent(error.Value());
      cancel_->cancel();
    }
  }

  void OnOK() override {
    if (!callback_error_.IsEmpty()) return deferred_.Reject(callback_error_.Value());
    Napi::Env env = Env();
    Napi::Object result = Napi::Object::New(env);
    Napi::Array files = Napi::Array::New(env, result_.files.size());
    for (size_t i = 0; i < result_.files.size(); ++i) files.Set(static_cast<uint32_t>(i), result_.files[i]);
    result.Set("files", files);
    result.Set("sourceTensors", static_cast<double>(result_.source_tensors));
    result.Set("quantizedWeights", static_cast<double>(result_.quantized_weights));
    result.Set("tensorsWritten", static_cast<double>(result_.tensors_written));
    result.Set("totalSize", static_cast<double>(result_.total_size));
    result.Set("weightDtype", attune::quant::quant_state_dtype_name(result_.weight_dtype));
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& error) override {
    if (!callback_error_.IsEmpty()) return deferred_.Reject(callback_error_.Value());
    // status_ is ok only if Execute threw before quantize_model returned (e.g. out of memory).
    const attune::Status status = status_.ok() ? attune::Status::internal(error.Message()) : status_;
    deferred_.Reject(status_error(Env(), status).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string src_;
  std::string dest_;
  attune::quant::QuantizeModelOptions options_;
  Napi::FunctionReference on_progress_;
  std::shared_ptr<attune::CancelToken> cancel_;
  attune::Status status_;
  attune::quant::QuantizeModelResult result_;
  Napi::ObjectReference callback_error_;
};

// A whole number option within [min, max], or `fallback` when absent.
double integer_option(Napi::Env env, Napi::Object options, const char* name, double fallback, double min, double max) {
  Napi::Value value = options.Get(name);
  if (value.IsUndefined()) return fallback;
  const double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : NAN;
  if (!(number >= min && number <= max) || std::floor(number) != number) {
    throw argument_error(env, std::string("quantizeModel: options.") + name + " must be a whole number from " +
                                  std::to_string(static_cast<long long>(min)) + " to " +
                                  std::to_string(static_cast<long long>(max)));
  }
  return number;
}

}  // namespace

Napi::Value quantize_model_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsString() || !info[1].IsString() || !info[2].IsObject() || !info[3].IsFunction()) {
    throw argument_error(env, "quantizeModel(srcDir, destDir, options, onProgress, cancelToken): wrong arguments");
  }
  Napi::Object options = info[2].As<Napi::Object>();
  attune::quant::QuantizeModelOptions parsed;
  parsed.blocksize = static_cast<int64_t>(integer_option(env, options, "blocksize", 64, 1, 1 << 20));
  Napi::Value double_quant = options.Get("doubleQuant");
  if (!double_quant.IsUndefined() && !double_quant.IsBoolean()) {
    throw argument_error(env, "quantizeModel: options.doubleQuant must be a boolean");
  }
  parsed.double_quant = double_quant.IsUndefined() || double_quant.As<Napi::Boolean>().Value();
  parsed.max_shard_bytes = static_cast<uint64_t>(integer_option(env, options, "maxShardBytes",
                                                                static_cast<double>(attune::quant::kDefaultMaxShardBytes),
                                                                1, 9007199254740991.0));
  parsed.threads = static_cast<unsigned>(integer_option(env, options, "threads", 0, 0, 1024));
  std::shared_ptr<attune::CancelToken> cancel = CancelTokenJs::unwrap(env, info[4]);
  auto* worker = new QuantizeWorker(env, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value(),
                                    parsed, info[3].As<Napi::Function>(), std::move(cancel));  // deletes itself
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace attune_addon
