// AdamW (src/train/adamw.*) and gradient clipping (src/train/grad_clip.*): hand-computed steps from
// torch's formulas, and torch's own numbers (tests/data/adamw_expected.json, written by
// tests/data/make_adamw_expected.py with torch 2.13) compared to 1e-7 relative.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/thread_pool.h"
#include "io/json.h"
#include "status_matchers.h"
#include "train/adamw.h"
#include "train/grad_clip.h"

using attune::json::Value;
using attune::train::AdamW;
using attune::train::AdamWOptions;
using attune::train::AdamWState;
using attune::train::GradSpan;
using attune::train::ParamSlot;
using attune_test::fails_with;
using attune_test::succeeds;

namespace {

bool close(double actual, double expected, double relative) {
  return std::fabs(actual - expected) <= relative * std::fabs(expected);
}

// torch's update in double, the textbook formula: what the fp32 result must approximate.
struct Reference {
  double p, m = 0, v = 0;
  int t = 0;
  void step(double g, double lr, double b1, double b2, double eps, double wd) {
    ++t;
    p *= 1 - lr * wd;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
    const double denom = std::sqrt(v) / std::sqrt(bc2) + eps;
    p -= (lr / bc1) * m / denom;
  }
};

uint32_t bits_of(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}

}  // namespace

TEST(first_step_is_bias_corrected) {
  // p = 1, g = 2, lr = 0.1, no decay: m = 0.2, v = 0.004, bc1 = 0.1, bc2 = 0.001, so
  // m̂ = 2, √v̂ = 2 and p = 1 − 0.1 · 2 / (2 + 1e-8) ≈ 0.9: the first step moves by lr.
  AdamWOptions o;
  o.weight_decay = 0;
  float p = 1.0f;
  const float g = 2.0f;
  AdamWState s;
  CHECK(succeeds(attune::train::adamw_step(o, 0.1, &p, &g, 1, &s)));
  CHECK(s.step == 1);
  CHECK(s.exp_avg.size() == 1 && s.exp_avg[0] == 0.2f);
  CHECK(s.exp_avg_sq[0] == 0.004f);
  CHECK(close(p, 1.0 - 0.1 * 2.0 / (2.0 + 1e-8), 1e-7));
  // Second step, g = −1: m = 0.9·0.2 − 0.1 = 0.08, v = 0.999·0.004 + 0.001 = 0.004996,
  // bc1 = 0.19, bc2 = 0.001999: p = 0.9 − 0.1 · (0.08/0.19) / (√(0.004996/0.001999) + 1e-8).
  const float g2 = -1.0f;
  CHECK(succeeds(attune::train::adamw_step(o, 0.1, &p, &g2, 1, &s)));
  const double expected = (1.0 - 0.1 * 2.0 / (2.0 + 1e-8)) - 0.1 * (0.08 / 0.19) / (std::sqrt(0.004996 / 0.001999) + 1e-8);
  CHECK(s.step == 2);
  CHECK(close(s.exp_avg[0], 0.08, 1e-6));
  CHECK(close(s.exp_avg_sq[0], 0.004996, 1e-6));
  CHECK(close(p, expected, 1e-6));
  CHECK(close(p, 0.8733664, 1e-6));
}

TEST(first_step_moves_each_value_by_lr_whatever_the_gradient_scale) {
  AdamWOptions o;
  o.weight_decay = 0;
  const std::vector<float> grads = {1e-4f, -3.0f, 250.0f, -0.02f};
  std::vector<float> p = {0.5f, 0.5f, 0.5f, 0.5f};
  AdamWState s;
  CHECK(succeeds(attune::train::adamw_step(o, 1e-3, p.data(), grads.data(), 4, &s)));
  for (size_t i = 0; i < p.size(); ++i) {
    const double moved = 0.5 - p[i];
    CHECK(close(moved, grads[i] > 0 ? 1e-3 : -1e-3, 2e-4));  // eps only matters for |g| ~ 1e-8
  }
}

TEST(weight_decay_is_decoupled) {
  // A zero gradient: m = v = 0, the Adam update is 0 / eps = 0 and only p · (1 − lr·wd) remains.
  AdamWOptions o;
  o.weight_decay = 0.5;
  std::vector<float> p = {2.0f, -4.0f, 0.0f};
  const std::vector<float> g = {0.0f, 0.0f, 0.0f};
  AdamWState s;
  CHECK(succeeds(attune::train::adamw_step(o, 0.1, p.data(), g.data(), 3, &s)));
  CHECK(p[0] == 2.0f * 0.95f && p[1] == -4.0f * 0.95f && p[2] == 0.0f);
  // With a gradient, the decay does not enter the moments (unlike Adam's L2 penalty).
  std::vector<float> p2 = {1.0f};
  const float g2 = 0.3f;
  AdamWState s2;
  AdamWOptions no_decay = o;
  no_decay.weight_decay = 0;
  std::vector<float> p3 = {1.0f};
  AdamWState s3;
  for (int step = 0; step < 3; ++step) {
    CHECK(succeeds(attune::train::adamw_step(o, 0.1, p2.data(), &g2, 1, &s2)));
    CHECK(succeeds(attune::train::adamw_step(no_decay, 0.1, p3.data(), &g2, 1, &s3)));
  }
  CHECK(bits_of(s2.exp_avg[0]) == bits_of(s3.exp_avg[0]) && bits_of(s2.exp_avg_sq[0]) == bits_of(s3.exp_avg_sq[0]));
  Reference r{1.0};
  for (int step = 0; step < 3; ++step) r.step(0.3, 0.1, 0.9, 0.999, 1e-8, 0.5);
  CHECK(close(p2[0], r.p, 1e-6));
}

TEST(a_few_steps_follow_the_formula) {
  AdamWOptions o;
  o.beta1 = 0.8;
  o.beta2 = 0.99;
  o.eps = 1e-6;
  o.weight_decay = 0.01;
  const double grads[] = {0.5, -0.25, 1.5, 0.0, -2.0, 0.125};
  float p = 0.75f;
  AdamWState s;
  Reference r{0.75};
  for (double g : grads) {
    const float gf = static_cast<float>(g);
    CHECK(succeeds(attune::train::adamw_step(o, 0.01, &p, &gf, 1, &s)));
    r.step(g, 0.01, 0.8, 0.99, 1e-6, 0.01);
    CHECK(close(p, r.p, 1e-6));
    CHECK(close(s.exp_avg[0], r.m, 1e-6));
    CHECK(close(s.exp_avg_sq[0], r.v, 1e-6));
  }
  CHECK(s.step == 6);
}

TEST(optimizer_class_state_and_threads) {
  const int64_t n = 100000;
  std::vector<float> a(n), b(n), g(n);
  for (int64_t i = 0; i < n; ++i) {
    a[static_cast<size_t>(i)] = b[static_cast<size_t>(i)] = std::sin(static_cast<float>(i));
    g[static_cast<size_t>(i)] = std::cos(static_cast<float>(i) * 0.37f) * 0.1f;
  }
  AdamW one, many;
  CHECK(one.add_param(n) == 0 && many.add_param(n) == 0);
  attune::cpu::ThreadPool pool(4);
  for (int step = 0; step < 3; ++step) {
    CHECK(succeeds(one.step({ParamSlot{a.data(), g.data(), n}})));
    CHECK(succeeds(many.step({ParamSlot{b.data(), g.data(), n}}, &pool)));
  }
  CHECK(std::memcmp(a.data(), b.data(), sizeof(float) * n) == 0);
  CHECK(one.state(0).step == 3 && one.state(0).exp_avg == many.state(0).exp_avg);
  // A missing gradient skips the parameter (its step count too), as torch skips p.grad None.
  CHECK(succeeds(one.step({ParamSlot{a.data(), nullptr, n}})));
  CHECK(one.state(0).step == 3);
  // Sizes are checked.
  CHECK(fails_with(one.step({ParamSlot{a.data(), g.data(), n - 1}}), "registered with"));
  CHECK(fails_with(one.step({}), "got 0 parameters"));
  AdamWState bad;
  bad.exp_avg.assign(5, 0.0f);
  bad.exp_avg_sq.assign(5, 0.0f);
  CHECK(fails_with(one.restore_state(0, bad), "holds 5 and 5 values"));
  // A restored state continues exactly where the saved one was.
  AdamWState saved = one.state(0);
  std::vector<float> c = a;
  AdamW resumed;
  resumed.add_param(n);
  CHECK(succeeds(resumed.restore_state(0, saved)));
  CHECK(succeeds(one.step({ParamSlot{a.data(), g.data(), n}})));
  CHECK(succeeds(resumed.step({ParamSlot{c.data(), g.data(), n}})));
  CHECK(std::memcmp(a.data(), c.data(), sizeof(float) * n) == 0);
}

TEST(clipping_with_and_without_reaching_the_threshold) {
  // Gradients [3] and [4]: norms 3 and 4, total 5.
  std::vector<float> g1 = {3.0f}, g2 = {4.0f};
  std::vector<GradSpan> grads = {{g1.data(), 1}, {g2.data(), 1}};
  CHECK(attune::train::total_grad_norm(grads) == 5.0f);
  // max_norm 10: coef = 10/(5 + 1e-6) > 1, clamped to 1: unchanged.
  CHECK(attune::train::clip_grad_norm(grads, 10.0) == 5.0f);
  CHECK(g1[0] == 3.0f && g2[0] == 4.0f);
  // max_norm 1: coef = 1/(5 + 1e-6): the grads become ≈ [0.6, 0.8]; the pre-clip norm is returned.
  CHECK(attune::train::clip_grad_norm(grads, 1.0) == 5.0f);
  const float coef = (1.0f / (5.0f + static_cast<float>(1e-6))) * 1.0f;
  CHECK(g1[0] == 3.0f * coef && g2[0] == 4.0f * coef);
  CHECK(close(g1[0], 0.6, 1e-6) && close(g2[0], 0.8, 1e-6));
  CHECK(close(attune::train::total_grad_norm(grads), 1.0, 1e-6));
  // Nothing to clip.
  CHECK(attune::train::clip_grad_norm({}, 1.0) == 0.0f);
  // A norm exactly at the threshold is still scaled by max/(max + 1e-6) < 1, as in torch.
  std::vector<float> g3 = {1.0f};
  CHECK(attune::train::clip_grad_norm({{g3.data(), 1}}, 1.0) == 1.0f);
  CHECK(g3[0] < 1.0f && close(g3[0], 1.0, 2e-6));
}

namespace {

std::vector<float> floats(const Value& array) {
  std::vector<float> out;
  for (const Value& v : array.as_array()) out.push_back(static_cast<float>(v.as_number()));
  return out;
}

struct Compare {
  int64_t values = 0, bitwise = 0, failures = 0;
  void check(const std::string& what, const std::vector<float>& got, const std::vector<float>& expected) {
    if (got.size() != expected.size()) {
      std::printf("  %s: %zu values, expected %zu\n", what.c_str(), got.size(), expected.size());
      ++failures;
      return;
    }
    for (size_t i = 0; i < got.size(); ++i) {
      ++values;
      if (bits_of(got[i]) == bits_of(expected[i])) {
        ++bitwise;
        continue;
      }
      if (!close(got[i], expected[i], 1e-7)) {
        if (failures < 10) std::printf("  %s[%zu] = %.9g, torch %.9g\n", what.c_str(), i, got[i], expected[i]);
        ++failures;
      }
    }
  }
};

bool load_expected(Value* doc) {
  std::ifstream file(ATTUNE_ADAMW_EXPECTED, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return succeeds(attune::json::parse(text.str(), doc));
}

}  // namespace

TEST(matches_torch_adamw_and_clip_grad_norm) {
  Value doc;
  CHECK(load_expected(&doc));
  if (!doc.is_object()) return;
  Compare params, moments, clipping;
  for (const Value& c : doc.find("adamw")->as_array()) {
    const std::string name = c.find("name")->as_string();
    AdamWOptions o;
    o.lr = c.find("lr")->as_number();
    o.beta1 = c.find("beta1")->as_number();
    o.beta2 = c.find("beta2")->as_number();
    o.eps = c.find("eps")->as_number();
    o.weight_decay = c.find("weight_decay")->as_number();
    const Value* max_norm = c.find("max_norm");
    AdamW opt(o);
    std::vector<std::vector<float>> p;
    for (const Value& init : c.find("initial")->as_array()) {
      p.push_back(floats(init));
      opt.add_param(static_cast<int64_t>(p.back().size()));
    }
    int step_index = 0;
    for (const Value& step : c.find("steps")->as_array()) {
      ++step_index;
      const std::string at = name + " step " + std::to_string(step_index);
      std::vector<std::vector<float>> g;
      for (const Value& grad : step.find("grads")->as_array()) g.push_back(floats(grad));
      std::vector<GradSpan> spans;
      std::vector<ParamSlot> slots;
      for (size_t i = 0; i < p.size(); ++i) {
        spans.push_back({g[i].data(), static_cast<int64_t>(g[i].size())});
        slots.push_back({p[i].data(), g[i].data(), static_cast<int64_t>(p[i].size())});
      }
      if (!max_norm->is_null()) {
        const float total = attune::train::clip_grad_norm(spans, max_norm->as_number());
        clipping.check(at + " total_norm", {total}, {static_cast<float>(step.find("total_norm")->as_number())});
        for (size_t i = 0; i < g.size(); ++i) {
          clipping.check(at + " clipped grad " + std::to_string(i), g[i], floats(step.find("clipped_grads")->as_array()[i]));
        }
      }
      opt.set_lr(step.find("lr")->as_number());
      CHECK(succeeds(opt.step(slots)));
      CHECK(opt.state(0).step == step.find("step")->as_integer());
      for (size_t i = 0; i < p.size(); ++i) {
        params.check(at + " param " + std::to_string(i), p[i], floats(step.find("params")->as_array()[i]));
        moments.check(at + " exp_avg " + std::to_string(i), opt.state(i).exp_avg,
                      floats(step.find("exp_avg")->as_array()[i]));
        moments.check(at + " exp_avg_sq " + std::to_string(i), opt.state(i).exp_avg_sq,
                      floats(step.find("exp_avg_sq")->as_array()[i]));
      }
    }
  }
  for (const Value& c : doc.find("clip")->as_array()) {
    const std::string name = c.find("name")->as_string();
    std::vector<std::vector<float>> g;
    for (const Value& grad : c.find("grads")->as_array()) g.push_back(floats(grad));
    std::vector<GradSpan> spans;
    std::vector<float> norms;
    for (auto& v : g) {
      spans.push_back({v.data(), static_cast<int64_t>(v.size())});
      norms.push_back(attune::train::l2_norm(v.data(), static_cast<int64_t>(v.size())));
    }
    clipping.check(name + " norms", norms, floats(*c.find("norms")));
    const float total = attune::train::clip_grad_norm(spans, c.find("max_norm")->as_number());
    clipping.check(name + " total_norm", {total}, {static_cast<float>(c.find("total_norm")->as_number())});
    for (size_t i = 0; i < g.size(); ++i) clipping.check(name + " clipped " + std::to_string(i), g[i], floats(c.find("clipped")->as_array()[i]));
  }
  std::printf("  vs torch %s: params %lld/%lld bitwise, moments %lld/%lld bitwise, clipping %lld/%lld bitwise\n",
              doc.find("torch")->as_string().c_str(), static_cast<long long>(params.bitwise),
              static_cast<long long>(params.values), static_cast<long long>(moments.bitwise),
              static_cast<long long>(moments.values), static_cast<long long>(clipping.bitwise),
              static_cast<long long>(clipping.values));
  CHECK(params.failures == 0 && moments.failures == 0 && clipping.failures == 0);
  // The moments and the clipping have no sqrt of torch's (MKL's) in them: bit for bit.
  CHECK(moments.bitwise == moments.values && clipping.bitwise == clipping.values);
  CHECK(params.values > 0 && moments.values > 0 && clipping.values > 0);
}
