#include "training_case.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "io/safetensors.h"

namespace attune_test {

const std::string kTraining = std::string(ATTUNE_GOLDEN_DIR) + "/../training/";

bool load_case(const std::string& name, Case* c) {
  const std::string dir = kTraining + name;
  if (!read_json(dir + "/case.json", &c->spec) || !read_json(dir + "/batches.json", &c->batches) ||
      !read_json(dir + "/trajectory.json", &c->trajectory)) {
    return false;
  }
  attune::LoadOptions options;
  options.quantize_nf4 = !c->spec.find("base_quantization")->is_null();
  const attune::Status status =
      attune::LlamaModel::load(std::string(ATTUNE_GOLDEN_DIR) + "/" + c->spec.find("base")->as_string(), 2, &c->model, options);
  if (!status.ok()) std::fprintf(stderr, "%s: %s\n", name.c_str(), status.message().c_str());
  return status.ok();
}

attune::train::AdapterOptions options_of(const Value& spec) {
  attune::train::AdapterOptions o;
  o.rank = spec.find("r")->as_integer();
  o.alpha = spec.find("alpha")->as_number();
  o.rslora = spec.find("use_rslora")->as_bool();
  o.dora = spec.find("use_dora")->as_bool();
  o.dropout = static_cast<float>(spec.find("dropout")->as_number());
  for (const Value& m : spec.find("target_modules")->as_array()) {
    attune::train::Module module;
    if (attune::train::module_from_name(m.as_string(), &module)) o.targets[static_cast<size_t>(module)] = true;
  }
  return o;
}

attune::train::AdamWOptions adamw_of(const Value& spec) {
  attune::train::AdamWOptions o;
  const auto& betas = spec.find("optimizer")->find("betas")->as_array();
  o.beta1 = betas[0].as_number();
  o.beta2 = betas[1].as_number();
  o.eps = spec.find("optimizer")->find("eps")->as_number();
  o.weight_decay = spec.find("weight_decay")->as_number();
  return o;
}

bool initial_adapters(const std::string& name, Case& c, attune::cpu::ThreadPool& pool, attune::train::AdapterSet* out) {
  if (!attune::train::AdapterSet::create(*c.model, options_of(c.spec), 1, pool, out).ok()) return false;
  attune::SafetensorsFile init;
  if (!attune::SafetensorsFile::open(kTraining + name + "/init_adapter/adapter_model.safetensors", &init).ok()) return false;
  size_t set = 0;
  for (const attune::TensorView& t : init.tensors()) {
    const attune::Status status = out->set_value(t.name, t.shape, reinterpret_cast<const float*>(t.data));
    if (!status.ok()) std::fprintf(stderr, "%s\n", status.message().c_str());
    set += status.ok();
  }
  return set == out->parameters().size() && set == init.tensors().size();
}

double normalised_error(const std::vector<float>& a, const float* b) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  return diff / scale;
}

double worst_error(const attune::train::AdapterSet& adapters, const std::string& file, bool gradients) {
  attune::SafetensorsFile ref;
  CHECK(attune::SafetensorsFile::open(file, &ref).ok());
  double worst = 0;
  for (const attune::train::Parameter& p : adapters.parameters()) {
    const attune::TensorView* t = ref.find(p.name);
    CHECK(t != nullptr);
    if (t) worst = std::max(worst, normalised_error(gradients ? p.grad : p.value, reinterpret_cast<const float*>(t->data)));
  }
  return worst;
}

}  // namespace attune_test
