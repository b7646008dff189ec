#include <memory>

#include "attune/cpu_benchmark.h"
#include "bindings.h"
#include "cancel_token.h"
#include "errors.h"

namespace attune_addon {

namespace {

// Runs the benchmark on libuv's thread pool. Progress crosses to the JS thread through the
// worker's thread-safe function, which keeps only the latest value when JS falls behind.
class CpuBenchmarkWorker : public Napi::AsyncProgressWorker<attune::CpuBenchmarkProgress> {
 public:
  CpuBenchmarkWorker(Napi::Env env, double seconds, Napi::Function on_progress,
                     std::shared_ptr<attune::CancelToken> cancel)
      : Napi::AsyncProgressWorker<attune::CpuBenchmarkProgress>(env, "attune:cpuBenchmark"),
        deferred_(Napi::Promise::Deferred::New(env)),
        seconds_(seconds),
        on_progress_(Napi::Persistent(on_progress)),
        cancel_(std::move(cancel)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    status_ = attune::cpu_benchmark(
        seconds_, *cancel_, [&progress](const attune::CpuBenchmarkProgress& p) { progress.Send(&p, 1); }, &result_);
    if (!status_.ok()) SetError(status_.message());
  }

  void OnProgress(const attune::CpuBenchmarkProgress* data, size_t count) override {
    if (data == nullptr || count == 0 || !callback_error_.IsEmpty()) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Object progress = Napi::Object::New(env);
    progress.Set("fraction", data[count - 1].fraction);
    progress.Set("gflops", data[count - 1].gflops);
    try {
      on_progress_.Call({progress});
    } catch (const Napi::Error& error) {
      // A throwing callback stops the benchmark, and its error becomes the call's error.
      callback_error_ = Napi::Persistent(error.Value());
      cancel_->cancel();
    }
  }

  void OnOK() override {
    if (!callback_error_.IsEmpty()) return deferred_.Reject(callback_error_.Value());
    Napi::Object result = Napi::Object::New(Env());
    result.Set("gflops", result_.gflops);
    result.Set("iterations", static_cast<double>(result_.iterations));
    result.Set("seconds", result_.seconds);
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& error) override {
    if (!callback_error_.IsEmpty()) return deferred_.Reject(callback_error_.Value());
    // status_ is ok only if Execute threw before the benchmark returned (e.g. out of memory).
    const attune::Status status = status_.ok() ? attune::Status::internal(error.Message()) : status_;
    deferred_.Reject(status_error(Env(), status).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  double seconds_;
  Napi::FunctionReference on_progress_;
  std::shared_ptr<attune::CancelToken> cancel_;
  attune::Status status_;
  attune::CpuBenchmarkResult result_;
  Napi::ObjectReference callback_error_;
};

}  // namespace

Napi::Value cpu_benchmark_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsFunction()) {
    throw argument_error(env, "cpuBenchmark(seconds, onProgress, cancelToken): expected a number, a function and a CancelToken");
  }
  std::shared_ptr<attune::CancelToken> cancel = CancelTokenJs::unwrap(env, info[2]);
  auto* worker = new CpuBenchmarkWorker(env, info[0].As<Napi::Number>().DoubleValue(), info[1].As<Napi::Function>(),
                                        std::move(cancel));  // deletes itself after OnOK / OnError
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace attune_addon
