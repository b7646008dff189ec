#include "model_js.h"

#include <string>
#include <thread>
#include <vector>

#include "addon_data.h"
#include "cancel_token.h"
#include "errors.h"
#include "generate/generator.h"
#include "model/sequence_loss.h"
#include "promise_worker.h"

namespace attune_addon {

namespace {

std::vector<int32_t> int32_array(Napi::Env env, Napi::Value value, const char* what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw argument_error(env, std::string(what) + " must be an Int32Array");
  }
  Napi::Int32Array array = value.As<Napi::Int32Array>();
  return std::vector<int32_t>(array.Data(), array.Data() + array.ElementLength());
}

double number_option(Napi::Object options, const char* name, double fallback) {
  Napi::Value value = options.Get(name);
  return value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : fallback;
}

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, std::string dir, unsigned threads, attune::LoadOptions options)
      : PromiseWorker(env, "attune:loadModel"), dir_(std::move(dir)), threads_(threads), options_(options) {}

 protected:
  attune::Status run() override { return attune::LlamaModel::load(dir_, threads_, &model_, options_); }
  Napi::Value result(Napi::Env env) override {
    auto loaded = std::make_shared<LoadedModel>();
    loaded->model = std::move(model_);
    return ModelJs::wrap(env, std::move(loaded));
  }

 private:
  std::string dir_;
  unsigned threads_;
  attune::LoadOptions options_;
  std::unique_ptr<attune::LlamaModel> model_;
};

// Streams every token to JS in order (a queue, not "latest value wins": each token is text).
class GenerateWorker : public Napi::AsyncProgressQueueWorker<int32_t> {
 public:
  GenerateWorker(Napi::Env env, std::shared_ptr<LoadedModel> loaded, std::vector<int32_t> prompt,
                 attune::GenerationParams params, Napi::Function on_token, std::shared_ptr<attune::CancelToken> cancel)
      : Napi::AsyncProgressQueueWorker<int32_t>(env, "attune:generate"),
        deferred_(Napi::Promise::Deferred::New(env)),
        release_{std::move(loaded)},
        prompt_(std::move(prompt)),
        params_(std::move(params)),
        on_token_(Napi::Persistent(on_token)),
        cancel_(std::move(cancel)) {}
  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    status_ = attune::generate(*release_.loaded->model, prompt_, params_, *cancel_,
                               [&progress](int32_t token) { progress.Send(&token, 1); }, &result_);
    if (!status_.ok()) SetError(status_.message());
  }
  void OnProgress(const int32_t* tokens, size_t count) override {
    if (tokens == nullptr || !callback_error_.IsEmpty()) return;
    Napi::HandleScope scope(Env());
    for (size_t i = 0; i < count; ++i) {
      try {
        on_token_.Call({Napi::Number::New(Env(), tokens[i])});
      } catch (const Napi::Error& error) {
        callback_error_ = Napi::Persistent(error.Value());
        cancel_->cancel();
        return;
      }
    }
  }
  void OnOK() override {
    if (!callback_error_.IsEmpty()) return deferred_.Reject(callback_error_.Value());
    Napi::Env env = Env();
    Napi::Array tokens = Napi::Array::New(env, result_.tokens.size());
    for (size_t i = 0; i < result_.tokens.size(); ++i) tokens.Set(static_cast<uint32_t>(i), result_.tokens[i]);
    Napi::Object result = Napi::Object::New(env);
    result.Set("tokens", tokens);
    result.Set("finishReason", attune::finish_reason_name(result_.finish_reason));
    result.Set("prefillMs", result_.prefill_ms);
    result.Set("decodeMs", result_.decode_ms);
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& error) override {
    if (!callback_error_.IsEmpty()) return deferred_.Reject(callback_error_.Value());
    deferred_.Reject(status_error(Env(), status_.ok() ? attune::Status::internal(error.Message()) : status_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  BusyRelease release_;
  std::vector<int32_t> prompt_;
  attune::GenerationParams params_;
  Napi::FunctionReference on_token_;
  std::shared_ptr<attune::CancelToken> cancel_;
  attune::Status status_;
  attune::GenerationResult result_;
  Napi::ObjectReference callback_error_;
};

class LossWorker : public PromiseWorker {
 public:
  LossWorker(Napi::Env env, std::shared_ptr<LoadedModel> loaded, std::vector<int32_t> ids, std::vector<int32_t> labels,
             std::shared_ptr<attune::CancelToken> cancel)
      : PromiseWorker(env, "attune:sequenceLoss"),
        release_{std::move(loaded)},
        ids_(std::move(ids)),
        labels_(std::move(labels)),
        cancel_(std::move(cancel)) {}

 protected:
  attune::Status run() override {
    return attune::sequence_loss(*release_.loaded->model, ids_.data(), labels_.data(), static_cast<int64_t>(ids_.size()), *cancel_,
                                 &loss_);
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("sum", loss_.sum);
    out.Set("count", static_cast<double>(loss_.count));
    return out;
  }

 private:
  BusyRelease release_;
  std::vector<int32_t> ids_, labels_;
  std::shared_ptr<attune::CancelToken> cancel_;
  attune::SequenceLoss loss_;
};

}  // namespace

Napi::Function ModelJs::define_class(Napi::Env env) {
  return DefineClass(env, "Model",
                     {
                         InstanceMethod<&ModelJs::info>("info"),
                         InstanceMethod<&ModelJs::generate>("generate"),
                         InstanceMethod<&ModelJs::sequence_loss>("sequenceLoss"),
                         InstanceMethod<&ModelJs::set_adapter>("setAdapter"),
                         InstanceMethod<&ModelJs::clear_adapter>("clearAdapter"),
                         InstanceMethod<&ModelJs::close>("close"),
                     });
}

Napi::Object ModelJs::wrap(Napi::Env env, std::shared_ptr<LoadedModel> loaded) {
  auto* holder = new std::shared_ptr<LoadedModel>(std::move(loaded));
  Napi::External<std::shared_ptr<LoadedModel>> external = Napi::External<std::shared_ptr<LoadedModel>>::New(
      env, holder, [](Napi::Env, std::shared_ptr<LoadedModel>* data) { delete data; });
  return env.GetInstanceData<AddonData>()->model_class.New({external});
}

ModelJs::ModelJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelJs>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw argument_error(info.Env(), "Models are made by loadModel(dir, threads), not with new");
  }
  loaded_ = *info[0].As<Napi::External<std::shared_ptr<LoadedModel>>>().Data();
}

std::shared_ptr<LoadedModel> mark_busy(Napi::Env env, const std::shared_ptr<LoadedModel>& loaded, const char* operation) {
  if (!loaded) throw argument_error(env, std::string(operation) + ": the model was closed");
  bool expected = false;
  if (!loaded->busy.compare_exchange_strong(expected, true)) {
    throw argument_error(env, std::string(operation) + ": the model is busy with another operation");
  }
  return loaded;
}

std::shared_ptr<LoadedModel> ModelJs::unwrap(Napi::Env env, Napi::Value value) {
  const AddonData* data = env.GetInstanceData<AddonData>();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(data->model_class.Value())) {
    throw argument_error(env, "expected a Model from loadModel()");
  }
  std::shared_ptr<LoadedModel> loaded = Unwrap(value.As<Napi::Object>())->loaded_;
  if (!loaded) throw argument_error(env, "the model was closed");
  return loaded;
}

Napi::Value ModelJs::info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!loaded_) throw argument_error(env, "info: the model was closed");
  const attune::ModelConfig& c = loaded_->model->config();
  Napi::Object out = Napi::Object::New(env);
  out.Set("architecture", attune::architecture_name(c.arch));
  out.Set("vocabSize", static_cast<double>(c.vocab_size));
  out.Set("hiddenSize", static_cast<double>(c.hidden_size));
  out.Set("intermediateSize", static_cast<double>(c.intermediate_size));
  out.Set("layers", static_cast<double>(c.num_hidden_layers));
  out.Set("heads", static_cast<double>(c.num_attention_heads));
  out.Set("kvHeads", static_cast<double>(c.num_key_value_heads));
  out.Set("headDim", static_cast<double>(c.head_dim));
  out.Set("contextLength", static_cast<double>(c.max_position_embeddings));
  out.Set("tiedEmbeddings", c.tie_word_embeddings);
  out.Set("nf4Base", loaded_->model->nf4_base());
  return out;
}

Napi::Value ModelJs::generate(const Napi::CallbackInfo& info) {
  // generate(promptIds: Int32Array, options, onToken(id), cancelToken): Promise<{tokens, finishReason, prefillMs, decodeMs}>
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[1].IsObject() || !info[2].IsFunction()) {
    throw argument_error(env, "generate(promptIds, options, onToken, cancelToken): wrong arguments");
  }
  std::vector<int32_t> prompt = int32_array(env, info[0], "promptIds");
  Napi::Object options = info[1].As<Napi::Object>();
  attune::GenerationParams params;
  params.max_new_tokens = static_cast<int64_t>(number_option(options, "maxNewTokens", 128));
  params.sampling.temperature = static_cast<float>(number_option(options, "temperature", 0));
  params.sampling.top_p = static_cast<float>(number_option(options, "topP", 1));
  params.sampling.top_k = static_cast<int64_t>(number_option(options, "topK", 0));
  params.sampling.repetition_penalty = static_cast<float>(number_option(options, "repetitionPenalty", 1));
  params.sampling.seed = static_cast<uint64_t>(number_option(options, "seed", 0));
  if (options.Has("stopIds")) params.stop_ids = int32_array(env, options.Get("stopIds"), "options.stopIds");
  std::shared_ptr<attune::CancelToken> cancel = CancelTokenJs::unwrap(env, info[3]);
  auto* worker = new GenerateWorker(env, mark_busy(env, loaded_, "generate"), std::move(prompt), std::move(params),
                                    info[2].As<Napi::Function>(), std::move(cancel));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value ModelJs::sequence_loss(const Napi::CallbackInfo& info) {
  // sequenceLoss(ids: Int32Array, labels: Int32Array, cancelToken): Promise<{sum, count}>
  Napi::Env env = info.Env();
  if (info.Length() < 3) throw argument_error(env, "sequenceLoss(ids, labels, cancelToken): wrong arguments");
  std::vector<int32_t> ids = int32_array(env, info[0], "ids");
  std::vector<int32_t> labels = int32_array(env, info[1], "labels");
  if (ids.size() != labels.size()) throw argument_error(env, "sequenceLoss: ids and labels differ in length");
  std::shared_ptr<attune::CancelToken> cancel = CancelTokenJs::unwrap(env, info[2]);
  return PromiseWorker::start(new LossWorker(env, mark_busy(env, loaded_, "sequenceLoss"), std::move(ids), std::move(labels), std::move(cancel)));
}

namespace {
std::vector<float> float_values(Napi::Env env, Napi::Value value, const char* what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw argument_error(env, std::string(what) + " must be a Float32Array");
  }
  Napi::Float32Array a = value.As<Napi::Float32Array>();
  return {a.Data(), a.Data() + a.ElementLength()};
}
}  // namespace

void ModelJs::set_adapter(const Napi::CallbackInfo& info) {
  // setAdapter({rank, scaling, dora, modules: [{layer, module: "q_proj"…, a, b, magnitude?}]})
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw argument_error(env, "setAdapter(adapter): expected an object");
  Napi::Object o = info[0].As<Napi::Object>();
  attune::InferenceAdapter adapter;
  adapter.rank = o.Get("rank").ToNumber().Int64Value();
  adapter.scaling = o.Get("scaling").ToNumber().FloatValue();
  adapter.dora = o.Get("dora").ToBoolean();
  BusyRelease release{mark_busy(env, loaded_, "setAdapter")};
  adapter.layers.resize(static_cast<size_t>(loaded_->model->config().num_hidden_layers));
  if (!o.Get("modules").IsArray()) throw argument_error(env, "setAdapter: modules must be an array");
  Napi::Array modules = o.Get("modules").As<Napi::Array>();
  for (uint32_t i = 0; i < modules.Length(); ++i) {
    Napi::Object m = modules.Get(i).As<Napi::Object>();
    const int64_t layer = m.Get("layer").ToNumber().Int64Value();
    attune::Module module;
    if (layer < 0 || layer >= static_cast<int64_t>(adapter.layers.size()) ||
        !attune::module_from_name(m.Get("module").ToString().Utf8Value(), &module)) {
      throw argument_error(env, "setAdapter: module " + std::to_string(i) + " names no layer and module of this model");
    }
    auto& slot = adapter.layers[static_cast<size_t>(layer)][static_cast<size_t>(module)];
    slot.emplace();
    slot->a = float_values(env, m.Get("a"), "a");
    slot->b = float_values(env, m.Get("b"), "b");
    if (adapter.dora) slot->magnitude = float_values(env, m.Get("magnitude"), "magnitude");
  }
  const attune::Status status = loaded_->model->set_adapter(std::move(adapter));
  if (!status.ok()) throw status_error(env, status);
}

void ModelJs::clear_adapter(const Napi::CallbackInfo& info) {
  BusyRelease release{mark_busy(info.Env(), loaded_, "clearAdapter")};
  loaded_->model->clear_adapter();
}

void ModelJs::close(const Napi::CallbackInfo&) {
  // Running operations keep their own reference; the memory goes when the last one finishes.
  loaded_.reset();
}

Napi::Value load_model_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    throw argument_error(env, "loadModel(dir, threads): expected a folder path and a thread count");
  }
  const double threads = info[1].As<Napi::Number>().DoubleValue();
  if (!(threads >= 1 && threads <= 1024)) throw argument_error(env, "loadModel: threads must be from 1 to 1024");
  attune::LoadOptions options;
  if (info.Length() > 2 && info[2].IsObject()) options.quantize_nf4 = info[2].As<Napi::Object>().Get("quantizeNf4").ToBoolean();
  return PromiseWorker::start(new LoadWorker(env, info[0].As<Napi::String>().Utf8Value(), static_cast<unsigned>(threads), options));
}

}  // namespace attune_addon
