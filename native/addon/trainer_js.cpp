#include "trainer_js.h"

#include <string>
#include <vector>

#include "addon_data.h"
#include "errors.h"
#include "promise_worker.h"
#include "train/gpu_memory_plan.h"

namespace attune_addon {

namespace {

using attune::cuda::CudaTrainer;
using attune::train::Parameter;
using attune::train::Trainer;

std::vector<int32_t> int32s(Napi::Env env, Napi::Value value, const char* what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw argument_error(env, std::string(what) + " must be an Int32Array");
  }
  Napi::Int32Array a = value.As<Napi::Int32Array>();
  return {a.Data(), a.Data() + a.ElementLength()};
}

Napi::Float32Array float32_copy(Napi::Env env, const std::vector<float>& values) {
  Napi::Float32Array out = Napi::Float32Array::New(env, values.size());
  std::copy(values.begin(), values.end(), out.Data());
  return out;
}

Napi::Float32Array float32_arg(Napi::Env env, Napi::Value value, size_t expected, const std::string& what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw argument_error(env, what + " must be a Float32Array");
  }
  Napi::Float32Array a = value.As<Napi::Float32Array>();
  if (a.ElementLength() != expected) {
    throw argument_error(env, what + " has " + std::to_string(a.ElementLength()) + " values, expected " + std::to_string(expected));
  }
  return a;
}

Napi::Array shape_array(Napi::Env env, const std::vector<int64_t>& shape) {
  Napi::Array out = Napi::Array::New(env, shape.size());
  for (size_t i = 0; i < shape.size(); ++i) out.Set(static_cast<uint32_t>(i), static_cast<double>(shape[i]));
  return out;
}

double number(Napi::Object options, const char* name, double fallback) {
  Napi::Value v = options.Get(name);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
}

// One sequence's forward and backward on libuv's pool.
class AccumulateWorker : public PromiseWorker {
 public:
  AccumulateWorker(Napi::Env env, std::shared_ptr<LoadedModel> loaded, std::shared_ptr<Trainer> trainer,
                   std::shared_ptr<CudaTrainer> gpu, std::vector<int32_t> ids, std::vector<int32_t> labels, float scale, uint64_t sample)
      : PromiseWorker(env, "attune:accumulate"),
        release_{std::move(loaded)},
        trainer_(std::move(trainer)),
        gpu_(std::move(gpu)),
        ids_(std::move(ids)),
        labels_(std::move(labels)),
        scale_(scale),
        sample_(sample) {}

 protected:
  attune::Status run() override {
    const int64_t T = static_cast<int64_t>(ids_.size());
    if (gpu_) return gpu_->accumulate(ids_.data(), labels_.data(), T, scale_, sample_, &loss_, &targets_);
    return trainer_->accumulate(ids_.data(), labels_.data(), T, scale_, sample_, &loss_, &targets_);
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("lossSum", loss_);
    out.Set("targets", static_cast<double>(targets_));
    return out;
  }

 private:
  BusyRelease release_;
  std::shared_ptr<Trainer> trainer_;
  std::shared_ptr<CudaTrainer> gpu_;
  std::vector<int32_t> ids_, labels_;
  float scale_;
  uint64_t sample_;
  double loss_ = 0;
  int64_t targets_ = 0;
};

class StepWorker : public PromiseWorker {
 public:
  StepWorker(Napi::Env env, std::shared_ptr<LoadedModel> loaded, std::shared_ptr<Trainer> trainer, std::shared_ptr<CudaTrainer> gpu,
             double lr, double max_grad_norm)
      : PromiseWorker(env, "attune:step"),
        release_{std::move(loaded)},
        trainer_(std::move(trainer)),
        gpu_(std::move(gpu)),
        lr_(lr),
        max_grad_norm_(max_grad_norm) {}

 protected:
  attune::Status run() override {
    if (gpu_) return gpu_->optimizer_step(lr_, max_grad_norm_, &grad_norm_);
    return trainer_->optimizer_step(lr_, max_grad_norm_, &grad_norm_);
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("gradNorm", grad_norm_);
    return out;
  }

 private:
  BusyRelease release_;
  std::shared_ptr<Trainer> trainer_;
  std::shared_ptr<CudaTrainer> gpu_;
  double lr_, max_grad_norm_;
  float grad_norm_ = 0;
};

}  // namespace

Napi::Function TrainerJs::define_class(Napi::Env env) {
  return DefineClass(env, "Trainer",
                     {
                         InstanceMethod<&TrainerJs::parameters>("parameters"),
                         InstanceMethod<&TrainerJs::set_parameter>("setParameter"),
                         InstanceMethod<&TrainerJs::optimizer_state>("optimizerState"),
                         InstanceMethod<&TrainerJs::set_optimizer_state>("setOptimizerState"),
                         InstanceMethod<&TrainerJs::accumulate>("accumulate"),
                         InstanceMethod<&TrainerJs::step>("step"),
                         InstanceMethod<&TrainerJs::memory_plan>("memoryPlan"),
                     });
}

TrainerJs::TrainerJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerJs>(info) {
  // createTrainer(model, options) calls this with the model and the options.
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[1].IsObject()) throw argument_error(env, "Trainers are made by createTrainer(model, options)");
  loaded_ = ModelJs::unwrap(env, info[0]);
  Napi::Object o = info[1].As<Napi::Object>();
  attune::train::AdapterOptions adapter;
  adapter.rank = static_cast<int64_t>(number(o, "rank", 16));
  adapter.alpha = number(o, "alpha", 32);
  adapter.rslora = o.Get("rslora").ToBoolean();
  adapter.dora = o.Get("dora").ToBoolean();
  adapter.dropout = static_cast<float>(number(o, "dropout", 0));
  if (!o.Get("targets").IsArray()) throw argument_error(env, "options.targets must be an array of module names");
  Napi::Array targets = o.Get("targets").As<Napi::Array>();
  for (uint32_t i = 0; i < targets.Length(); ++i) {
    attune::train::Module module;
    const std::string name = targets.Get(i).ToString().Utf8Value();
    if (!attune::train::module_from_name(name, &module)) throw argument_error(env, "Unknown target module \"" + name + "\"");
    adapter.targets[static_cast<size_t>(module)] = true;
  }
  attune::train::TrainerOptions options;
  options.seed = static_cast<uint64_t>(number(o, "seed", 42));
  options.gradient_checkpointing = o.Get("gradientCheckpointing").ToBoolean();
  options.adamw.beta1 = number(o, "beta1", 0.9);
  options.adamw.beta2 = number(o, "beta2", 0.999);
  options.adamw.eps = number(o, "eps", 1e-8);
  options.adamw.weight_decay = number(o, "weightDecay", 0);
  const unsigned threads = static_cast<unsigned>(number(o, "threads", 1));
  const std::string device = o.Get("device").IsString() ? o.Get("device").As<Napi::String>().Utf8Value() : "cpu";
  if (device != "cpu" && device != "cuda") throw argument_error(env, "options.device must be \"cpu\" or \"cuda\"");

  std::shared_ptr<LoadedModel> busy = mark_busy(env, loaded_, "createTrainer");
  BusyRelease release{busy};
  attune::cpu::ThreadPool pool(threads);
  attune::train::AdapterSet adapters;
  const attune::Status status = attune::train::AdapterSet::create(*loaded_->model, adapter, options.seed, pool, &adapters);
  if (!status.ok()) throw status_error(env, status);
  trainer_ = std::make_shared<Trainer>(*loaded_->model, std::move(adapters), threads, options);
  if (device == "cuda") {
    attune::cuda::CudaTrainerOptions gpu;
    gpu.trainer = options;
    std::unique_ptr<CudaTrainer> created;
    const attune::Status made = CudaTrainer::create(*loaded_->model, trainer_->adapters(), gpu, &created);
    if (!made.ok()) throw status_error(env, made);
    gpu_ = std::move(created);
  }
}

Napi::Value TrainerJs::parameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (gpu_) {
    BusyRelease release{mark_busy(env, loaded_, "parameters")};
    const attune::Status status = gpu_->download(&trainer_->adapters());
    if (!status.ok()) throw status_error(env, status);
  }
  const std::vector<Parameter>& params = trainer_->adapters().parameters();
  Napi::Array out = Napi::Array::New(env, params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", params[i].name);
    p.Set("shape", shape_array(env, params[i].shape));
    p.Set("data", float32_copy(env, params[i].value));
    out.Set(static_cast<uint32_t>(i), p);
  }
  return out;
}

void TrainerJs::set_parameter(const Napi::CallbackInfo& info) {
  // setParameter(name, shape: number[], data: Float32Array); refreshes DoRA norms.
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray()) throw argument_error(env, "setParameter(name, shape, data)");
  std::vector<int64_t> shape;
  Napi::Array dims = info[1].As<Napi::Array>();
  size_t n = 1;
  for (uint32_t i = 0; i < dims.Length(); ++i) {
    shape.push_back(static_cast<int64_t>(dims.Get(i).ToNumber().Int64Value()));
    n *= static_cast<size_t>(std::max<int64_t>(0, shape.back()));
  }
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  Napi::Float32Array data = float32_arg(env, info[2], n, name);
  BusyRelease release{mark_busy(env, loaded_, "setParameter")};
  const attune::Status status = trainer_->adapters().set_value(name, shape, data.Data());
  if (!status.ok()) throw status_error(env, status);
  if (gpu_) {
    // The GPU refreshes DoRA's norms itself; the host copy only carries the values.
    const attune::Status uploaded = gpu_->upload(trainer_->adapters());
    if (!uploaded.ok()) throw status_error(env, uploaded);
  } else {
    trainer_->adapters().refresh_weight_norms(trainer_->pool(), *loaded_->model);
  }
}

Napi::Value TrainerJs::optimizer_state(const Napi::CallbackInfo& info) {
  // → [{name, step, expAvg, expAvgSq}] in parameter order
  Napi::Env env = info.Env();
  const std::vector<Parameter>& params = trainer_->adapters().parameters();
  Napi::Array out = Napi::Array::New(env, params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    attune::train::AdamWState from_gpu;
    if (gpu_) {
      const attune::Status status = gpu_->optimizer_state(i, &from_gpu);
      if (!status.ok()) throw status_error(env, status);
    }
    const attune::train::AdamWState& s = gpu_ ? from_gpu : trainer_->optimizer().state(i);
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", params[i].name);
    o.Set("step", static_cast<double>(s.step));
    o.Set("expAvg", float32_copy(env, s.exp_avg));
    o.Set("expAvgSq", float32_copy(env, s.exp_avg_sq));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

void TrainerJs::set_optimizer_state(const Napi::CallbackInfo& info) {
  // setOptimizerState([{name, step, expAvg, expAvgSq}]) — the shape optimizerState() returns.
  Napi::Env env = info.Env();
  const std::vector<Parameter>& params = trainer_->adapters().parameters();
  if (info.Length() < 1 || !info[0].IsArray() || info[0].As<Napi::Array>().Length() != params.size()) {
    throw argument_error(env, "setOptimizerState: expected one entry per parameter");
  }
  Napi::Array states = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < states.Length(); ++i) {
    Napi::Object o = states.Get(i).As<Napi::Object>();
    if (o.Get("name").ToString().Utf8Value() != params[i].name) throw argument_error(env, "setOptimizerState: entries out of order");
    attune::train::AdamWState s;
    s.step = o.Get("step").ToNumber().Int64Value();
    Napi::Float32Array m = float32_arg(env, o.Get("expAvg"), params[i].value.size(), params[i].name + ".expAvg");
    Napi::Float32Array v = float32_arg(env, o.Get("expAvgSq"), params[i].value.size(), params[i].name + ".expAvgSq");
    s.exp_avg.assign(m.Data(), m.Data() + m.ElementLength());
    s.exp_avg_sq.assign(v.Data(), v.Data() + v.ElementLength());
    const attune::Status status = gpu_ ? gpu_->restore_optimizer_state(i, s) : trainer_->optimizer().restore_state(i, std::move(s));
    if (!status.ok()) throw status_error(env, status);
  }
}

Napi::Value TrainerJs::accumulate(const Napi::CallbackInfo& info) {
  // accumulate(ids: Int32Array, labels: Int32Array, lossScale, sample): Promise<{lossSum, targets}>
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[2].IsNumber() || !info[3].IsNumber()) throw argument_error(env, "accumulate(ids, labels, lossScale, sample)");
  std::vector<int32_t> ids = int32s(env, info[0], "ids"), labels = int32s(env, info[1], "labels");
  if (ids.size() != labels.size()) throw argument_error(env, "accumulate: ids and labels differ in length");
  return PromiseWorker::start(new AccumulateWorker(env, mark_busy(env, loaded_, "accumulate"), trainer_, gpu_, std::move(ids), std::move(labels),
                                                   info[2].As<Napi::Number>().FloatValue(),
                                                   static_cast<uint64_t>(info[3].As<Napi::Number>().Int64Value())));
}

Napi::Value TrainerJs::step(const Napi::CallbackInfo& info) {
  // step(lr, maxGradNorm): Promise<{gradNorm}>
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) throw argument_error(env, "step(lr, maxGradNorm)");
  return PromiseWorker::start(new StepWorker(env, mark_busy(env, loaded_, "step"), trainer_, gpu_, info[0].As<Napi::Number>().DoubleValue(),
                                             info[1].As<Napi::Number>().DoubleValue()));
}

Napi::Value TrainerJs::memory_plan(const Napi::CallbackInfo& info) {
  // memoryPlan(seqLen, device = "cpu"): {weights, adapters, gradients, optimizer, activations, workspace, total}
  // in bytes, for training on that device (the GPU's plan is arithmetic: it needs no GPU).
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().Int64Value() < 1) {
    throw argument_error(env, "memoryPlan(seqLen, device): seqLen must be a positive number");
  }
  const int64_t seq_len = info[0].As<Napi::Number>().Int64Value();
  const std::string device = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "cpu";
  if (device != "cpu" && device != "cuda") throw argument_error(env, "memoryPlan: device must be \"cpu\" or \"cuda\"");
  attune::train::MemoryPlan p;
  if (device == "cuda") {
    attune::train::GpuPlanInputs inputs;
    inputs.seq_len = seq_len;
    inputs.gradient_checkpointing = trainer_->options().gradient_checkpointing;
    inputs.element_bytes = 2;  // the GPU trainer computes in bf16
    inputs.embedding_bytes = loaded_->model->embedding_type() == attune::WeightType::F32 ? 4 : 2;
    p = attune::train::plan_gpu_training_memory(loaded_->model->config(), trainer_->adapters().options(), inputs);
  } else {
    p = trainer_->plan(seq_len);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("weights", static_cast<double>(p.weights));
  out.Set("adapters", static_cast<double>(p.adapters));
  out.Set("gradients", static_cast<double>(p.gradients));
  out.Set("optimizer", static_cast<double>(p.optimizer));
  out.Set("activations", static_cast<double>(p.activations));
  out.Set("workspace", static_cast<double>(p.workspace));
  out.Set("total", static_cast<double>(p.total));
  return out;
}

Napi::Value create_trainer_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2) throw argument_error(env, "createTrainer(model, options)");
  return env.GetInstanceData<AddonData>()->trainer_class.New({info[0], info[1]});
}

}  // namespace attune_addon
