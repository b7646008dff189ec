// The shape of most addon calls: work on libuv's thread pool that returns a Status, then a
// Promise resolved with a JS value built on the JS thread, or rejected with the Status's code.
#pragma once

#include <napi.h>

#include "attune/status.h"
#include "errors.h"

namespace attune_addon {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name) : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}

  // Queues `worker` (which deletes itself when done) and returns its promise.
  static Napi::Value start(PromiseWorker* worker) {
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 protected:
  virtual attune::Status run() = 0;                 // on a worker thread
  virtual Napi::Value result(Napi::Env env) = 0;  // on the JS thread, after run() succeeded

 private:
  void Execute() final {
    status_ = run();
    if (!status_.ok()) SetError(status_.message());
  }
  void OnOK() final { deferred_.Resolve(result(Env())); }
  void OnError(const Napi::Error& error) final {
    // status_ is ok only if run() threw (e.g. out of memory) instead of returning a Status.
    deferred_.Reject(status_error(Env(), status_.ok() ? attune::Status::internal(error.Message()) : status_).Value());
  }

  Napi::Promise::Deferred deferred_;
  attune::Status status_;
};

}  // namespace attune_addon
