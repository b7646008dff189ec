// The LoRA and DoRA layers of src/adapter against a double-precision transcription of peft's
// formulas (forward, norms, merges) and against central finite differences (every gradient):
// T=5, in=12, out=7, r=3; F32, BF16 and F16 frozen weights; bias; alpha/r and rsLoRA scaling;
// dropout with a fixed mask; DoRA with a magnitude away from the norm.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "adapter/dora.h"
#include "adapter/lora.h"
#include "check.h"
#include "cpu/gemm.h"
#include "gradient_check.h"
#include "tensor/convert.h"

namespace {

using attune::adapter::FrozenLinear;
using attune::adapter::LoraGrads;
using attune::adapter::LoraParams;
using attune::cpu::ThreadPool;
using attune::cpu::WeightType;
using attune_test::check_gradient;
using attune_test::random_values;
using attune_test::relative_max_error;
using attune_test::weighted_sum;

ThreadPool& pool() {
  static ThreadPool instance(2);
  return instance;
}

// The layer's shape: T=5, in=12, out=7, r=3 unless a Shape below says otherwise.
int64_t T = 5, kIn = 12, kOut = 7, kRank = 3;

// Sets the shape for one scope (larger shapes take the GEMM's packed paths instead of the
// few-row ones).
struct Shape {
  Shape(int64_t t, int64_t in, int64_t out, int64_t rank) : saved{T, kIn, kOut, kRank} {
    T = t, kIn = in, kOut = out, kRank = rank;
  }
  ~Shape() { T = saved[0], kIn = saved[1], kOut = saved[2], kRank = saved[3]; }
  int64_t saved[4];
};

const char* type_name(WeightType type) {
  return type == WeightType::F32 ? "f32" : type == WeightType::BF16 ? "bf16" : "f16";
}

// A frozen layer: W in a file dtype with the exact values it decodes to, and a bias.
struct Frozen {
  WeightType type;
  std::vector<uint8_t> bytes;
  std::vector<double> w;  // [out, in], decoded
  std::vector<float> bias;
  FrozenLinear view() const { return {bytes.data(), type, bias.empty() ? nullptr : bias.data(), kIn, kOut}; }
};

Frozen make_frozen(WeightType type, unsigned seed, bool with_bias) {
  const auto values = random_values(kOut * kIn, seed, -0.5f, 0.5f);
  Frozen f{type, {}, std::vector<double>(values.size()), {}};
  f.bytes.resize(values.size() * (type == WeightType::F32 ? 4 : 2));
  for (size_t i = 0; i < values.size(); ++i) {
    if (type == WeightType::F32) {
      std::memcpy(&f.bytes[i * 4], &values[i], 4);
      f.w[i] = values[i];
    } else {
      const uint16_t h = type == WeightType::BF16 ? attune::f32_to_bf16(values[i]) : attune::f32_to_f16(values[i]);
      std::memcpy(&f.bytes[i * 2], &h, 2);
      f.w[i] = type == WeightType::BF16 ? attune::bf16_to_f32(h) : attune::f16_to_f32(h);
    }
  }
  if (with_bias) f.bias = random_values(kOut, seed + 1);
  return f;
}

// Trainable state of one adapter.
struct Adapter {
  std::vector<float> A, B, m;  // [r, in], [out, r], [out]
  float scaling;
  LoraParams params() const { return {A.data(), B.data(), kRank, scaling}; }
};

Adapter make_adapter(unsigned seed, float scaling) {
  // A as peft initialises it (U(−1/√in, 1/√in)); B non-zero, as after some training steps.
  const float bound = 1.0f / std::sqrt(static_cast<float>(kIn));
  return {random_values(kRank * kIn, seed, -bound, bound), random_values(kOut * kRank, seed + 1, -0.5f, 0.5f), {},
          scaling};
}

// (B·A)[o, i] in double.
double ba(const Adapter& a, int64_t o, int64_t i) {
  double sum = 0;
  for (int64_t k = 0; k < kRank; ++k) sum += static_cast<double>(a.B[o * kRank + k]) * a.A[k * kIn + i];
  return sum;
}

// Σ_i M[o, i]·v[t, i] in double, M given by a function of (o, i).
template <typename Fn>
double row_dot(const Fn& m, int64_t o, const std::vector<double>& v, int64_t t) {
  double sum = 0;
  for (int64_t i = 0; i < kIn; ++i) sum += m(o, i) * v[t * kIn + i];
  return sum;
}

std::vector<double> masked_input(const std::vector<float>& x, const std::vector<float>* mask) {
  std::vector<double> xd(x.size());
  for (size_t i = 0; i < x.size(); ++i) xd[i] = static_cast<double>(x[i]) * (mask ? (*mask)[i] : 1.0f);
  return xd;
}

// peft's LoRA forward in double: W·x + b + s·B·A·dropout(x).
std::vector<double> reference_lora(const Frozen& f, const Adapter& a, const std::vector<float>& x,
                                   const std::vector<float>* mask) {
  const std::vector<double> xs(x.begin(), x.end()), xd = masked_input(x, mask);
  auto w = [&](int64_t o, int64_t i) { return f.w[o * kIn + i]; };
  auto delta = [&](int64_t o, int64_t i) { return ba(a, o, i); };
  std::vector<double> y(T * kOut);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t o = 0; o < kOut; ++o) {
      y[t * kOut + o] =
          row_dot(w, o, xs, t) + (f.bias.empty() ? 0.0 : f.bias[o]) + a.scaling * row_dot(delta, o, xd, t);
    }
  }
  return y;
}

// ‖W_o + s·(B·A)_o‖ in double.
std::vector<double> reference_norm(const Frozen& f, const Adapter& a) {
  std::vector<double> n(kOut);
  for (int64_t o = 0; o < kOut; ++o) {
    double sum = 0;
    for (int64_t i = 0; i < kIn; ++i) {
      const double v = f.w[o * kIn + i] + a.scaling * ba(a, o, i);
      sum += v * v;
    }
    n[o] = std::sqrt(sum);
  }
  return n;
}

// peft's DoRA forward in double: base(x) + (m/n − 1)·W·x_d + (m/n)·s·B·A·x_d.
std::vector<double> reference_dora(const Frozen& f, const Adapter& a, const std::vector<float>& norm,
                                   const std::vector<float>& x, const std::vector<float>* mask) {
  const std::vector<double> xs(x.begin(), x.end()), xd = masked_input(x, mask);
  auto w = [&](int64_t o, int64_t i) { return f.w[o * kIn + i]; };
  auto delta = [&](int64_t o, int64_t i) { return ba(a, o, i); };
  std::vector<double> y(T * kOut);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t o = 0; o < kOut; ++o) {
      const double g = static_cast<double>(a.m[o]) / norm[o];
      y[t * kOut + o] = row_dot(w, o, xs, t) + (f.bias.empty() ? 0.0 : f.bias[o]) + (g - 1) * row_dot(w, o, xd, t) +
                        g * a.scaling * row_dot(delta, o, xd, t);
    }
  }
  return y;
}

std::vector<float> fixed_mask(float p, uint64_t seed) {
  std::vector<float> mask(T * kIn);
  attune::adapter::dropout_mask(pool(), seed, 0, p, T * kIn, mask.data());
  return mask;
}

TEST(lora_scaling_values) {
  CHECK(attune::adapter::lora_scaling(16, 8, false) == 2.0f);
  CHECK(attune::adapter::lora_scaling(16, 4, true) == 8.0f);
  CHECK(attune::adapter::lora_scaling(8, 3, true) == static_cast<float>(8.0 / std::sqrt(3.0)));
  CHECK(attune::adapter::lora_scaling(6, 3, false) == 2.0f);
}

TEST(dropout_mask_properties) {
  const int64_t n = 200000;
  const float p = 0.3f;
  std::vector<float> a(n), b(n), c(n), shifted(1000);
  attune::adapter::dropout_mask(pool(), 42, 0, p, n, a.data());
  ThreadPool single(1);
  attune::adapter::dropout_mask(single, 42, 0, p, n, b.data());
  attune::adapter::dropout_mask(pool(), 43, 0, p, n, c.data());
  attune::adapter::dropout_mask(pool(), 42, 5000, p, 1000, shifted.data());
  int64_t kept = 0, same_as_other_seed = 0;
  bool values_ok = true;
  const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
  for (int64_t i = 0; i < n; ++i) {
    kept += a[i] != 0.0f;
    same_as_other_seed += a[i] == c[i];
    values_ok = values_ok && (a[i] == 0.0f || a[i] == keep_scale);
  }
  const double kept_fraction = static_cast<double>(kept) / n;
  std::printf("  kept %.4f (want %.2f), agreement with another seed %.3f\n", kept_fraction, 1.0 - p,
              static_cast<double>(same_as_other_seed) / n);
  CHECK(values_ok);
  CHECK(std::fabs(kept_fraction - (1.0 - p)) < 0.005);  // ~5 standard deviations
  CHECK(a == b);                                         // the same on any number of threads
  CHECK(same_as_other_seed < n * 0.65);                  // independent: 0.7² + 0.3² = 0.58
  CHECK(std::equal(shifted.begin(), shifted.end(), a.begin() + 5000));  // counter-based
  std::vector<float> off(10), all(10);
  attune::adapter::dropout_mask(pool(), 1, 0, 0.0f, 10, off.data());
  attune::adapter::dropout_mask(pool(), 1, 0, 1.0f, 10, all.data());
  CHECK(off == std::vector<float>(10, 1.0f));
  CHECK(all == std::vector<float>(10, 0.0f));
}

// The LoRA layer: forward against peft's formula, every gradient against finite differences.
void check_lora(WeightType type, bool bias, bool rslora, float dropout, unsigned seed) {
  std::printf(" LoRA (T=%lld in=%lld out=%lld r=%lld): W %s, bias %s, %s scaling, dropout %g\n",
              static_cast<long long>(T), static_cast<long long>(kIn), static_cast<long long>(kOut),
              static_cast<long long>(kRank), type_name(type), bias ? "yes" : "no", rslora ? "rsLoRA" : "alpha/r",
              static_cast<double>(dropout));
  const Frozen f = make_frozen(type, seed, bias);
  Adapter a = make_adapter(seed + 10, attune::adapter::lora_scaling(6.0, kRank, rslora));
  auto x = random_values(T * kIn, seed + 20);
  const std::vector<float> mask = fixed_mask(dropout, seed + 30);
  const float* mask_ptr = dropout > 0 ? mask.data() : nullptr;
  const auto w = random_values(T * kOut, seed + 40);
  std::vector<float> y(T * kOut), u(T * kRank), xd(T * kIn);
  const FrozenLinear base = f.view();

  attune::adapter::lora_forward(pool(), base, a.params(), x.data(), mask_ptr, T, y.data(), u.data(), xd.data());
  const double forward_error = relative_max_error(y.data(), reference_lora(f, a, x, dropout > 0 ? &mask : nullptr));
  std::printf("  forward vs peft formula (double): %.2e\n", forward_error);
  CHECK(forward_error < 1e-6);
  const std::vector<float> saved_u = u;

  // Gradients accumulate onto what is there: start dA, dB at non-zero values.
  std::vector<float> dx(T * kIn), dA(kRank * kIn, 0.5f), dB(kOut * kRank, -0.25f);
  attune::adapter::lora_backward(pool(), base, a.params(), w.data(), x.data(), mask_ptr, saved_u.data(), T, dx.data(),
                                 false, LoraGrads{dA.data(), dB.data()}, xd.data());
  for (auto& v : dA) v -= 0.5f;
  for (auto& v : dB) v += 0.25f;
  auto loss = [&] {
    attune::adapter::lora_forward(pool(), base, a.params(), x.data(), mask_ptr, T, y.data(), u.data(), xd.data());
    return weighted_sum(y.data(), w);
  };
  check_gradient("lora dx", x, dx, loss);
  check_gradient("lora dA", a.A, dA, loss);
  check_gradient("lora dB", a.B, dB, loss);

  // accumulate_dx adds; a null dx skips the input gradient.
  std::vector<float> dx2(T * kIn, 1.0f), dA2(kRank * kIn, 0.0f), dB2(kOut * kRank, 0.0f);
  attune::adapter::lora_backward(pool(), base, a.params(), w.data(), x.data(), mask_ptr, saved_u.data(), T, dx2.data(),
                                 true, LoraGrads{dA2.data(), dB2.data()}, xd.data());
  bool added = true;
  for (int64_t i = 0; i < T * kIn; ++i) added = added && std::fabs(dx2[i] - 1.0f - dx[i]) < 1e-6f;
  CHECK(added);
  std::vector<float> dA3(kRank * kIn, 0.0f), dB3(kOut * kRank, 0.0f);
  attune::adapter::lora_backward(pool(), base, a.params(), w.data(), x.data(), mask_ptr, saved_u.data(), T, nullptr,
                                 false, LoraGrads{dA3.data(), dB3.data()}, xd.data());
  CHECK(dA3 == dA2 && dB3 == dB2);
}

TEST(lora_layer) {
  check_lora(WeightType::F32, true, false, 0.0f, 100);
  check_lora(WeightType::BF16, false, true, 0.0f, 200);
  check_lora(WeightType::F16, true, true, 0.25f, 300);  // dropout: the mask fixed across evaluations
  check_lora(WeightType::BF16, true, false, 0.5f, 400);
  const Shape larger(40, 72, 56, 8);
  check_lora(WeightType::BF16, true, true, 0.1f, 450);
}

TEST(dora_weight_norms) {
  for (WeightType type : {WeightType::F32, WeightType::BF16, WeightType::F16}) {
    const Frozen f = make_frozen(type, 500, false);
    const Adapter a = make_adapter(510, 2.5f);
    std::vector<float> w_sq(kOut), factored(kOut), direct(kOut);
    attune::adapter::frozen_row_norms_sq(pool(), f.view(), w_sq.data());
    attune::adapter::dora_weight_norm(pool(), f.view(), a.params(), w_sq.data(), factored.data());
    attune::adapter::dora_weight_norm_direct(pool(), f.view(), a.params(), direct.data());
    const auto reference = reference_norm(f, a);
    const double e_factored = relative_max_error(factored.data(), reference);
    const double e_direct = relative_max_error(direct.data(), reference);
    std::printf("  %s: ‖W + s·B·A‖ per row, factored %.2e, direct %.2e (vs double)\n", type_name(type), e_factored,
                e_direct);
    CHECK(e_factored < 1e-6);
    CHECK(e_direct < 1e-6);
    // The magnitude's initial value (B = 0): the row norms of W.
    Adapter zero = a;
    std::fill(zero.B.begin(), zero.B.end(), 0.0f);
    std::vector<float> init(kOut), init_factored(kOut);
    attune::adapter::dora_weight_norm_direct(pool(), f.view(), zero.params(), init.data());
    attune::adapter::dora_weight_norm(pool(), f.view(), zero.params(), w_sq.data(), init_factored.data());
    bool same = true;
    for (int64_t o = 0; o < kOut; ++o) {
      same = same && std::fabs(init[o] - std::sqrt(w_sq[o])) <= 1e-6f * init[o];
      same = same && std::fabs(init_factored[o] - init[o]) <= 1e-6f * init[o];
    }
    CHECK(same);
  }
}

// The DoRA layer: forward against peft's formula, every gradient against finite differences with
// the norm held constant (peft detaches it).
void check_dora(WeightType type, bool bias, bool rslora, float dropout, unsigned seed) {
  std::printf(" DoRA (T=%lld in=%lld out=%lld r=%lld): W %s, bias %s, %s scaling, dropout %g\n",
              static_cast<long long>(T), static_cast<long long>(kIn), static_cast<long long>(kOut),
              static_cast<long long>(kRank), type_name(type), bias ? "yes" : "no", rslora ? "rsLoRA" : "alpha/r",
              static_cast<double>(dropout));
  const Frozen f = make_frozen(type, seed, bias);
  Adapter a = make_adapter(seed + 10, attune::adapter::lora_scaling(6.0, kRank, rslora));
  const FrozenLinear base = f.view();
  std::vector<float> w_sq(kOut), norm(kOut);
  attune::adapter::frozen_row_norms_sq(pool(), base, w_sq.data());
  attune::adapter::dora_weight_norm(pool(), base, a.params(), w_sq.data(), norm.data());
  // m away from n (g = m/n between 0.6 and 1.4), as after training.
  const auto factors = random_values(kOut, seed + 15, 0.6f, 1.4f);
  a.m.resize(kOut);
  for (int64_t o = 0; o < kOut; ++o) a.m[o] = norm[o] * factors[o];

  auto x = random_values(T * kIn, seed + 20);
  const std::vector<float> mask = fixed_mask(dropout, seed + 30);
  const float* mask_ptr = dropout > 0 ? mask.data() : nullptr;
  const auto w = random_values(T * kOut, seed + 40);
  std::vector<float> y(T * kOut), u(T * kRank), inner(T * kOut), xd(T * kIn);

  attune::adapter::dora_forward(pool(), base, a.params(), a.m.data(), norm.data(), x.data(), mask_ptr, T, y.data(),
                                u.data(), inner.data(), xd.data());
  const double forward_error =
      relative_max_error(y.data(), reference_dora(f, a, norm, x, dropout > 0 ? &mask : nullptr));
  std::printf("  forward vs peft formula (double): %.2e\n", forward_error);
  CHECK(forward_error < 1e-6);
  if (dropout == 0) {
    // Without dropout the layer is (m/n)⊙(W + s·B·A)·x + b.
    std::vector<double> direct(T * kOut);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t o = 0; o < kOut; ++o) {
        double sum = 0;
        for (int64_t i = 0; i < kIn; ++i) sum += (f.w[o * kIn + i] + a.scaling * ba(a, o, i)) * x[t * kIn + i];
        direct[t * kOut + o] = a.m[o] / static_cast<double>(norm[o]) * sum + (bias ? f.bias[o] : 0.0);
      }
    }
    CHECK(relative_max_error(y.data(), direct) < 1e-6);
  }
  const std::vector<float> saved_u = u;
  std::vector<float> saved_inner = inner;

  std::vector<float> dx(T * kIn), dA(kRank * kIn, 0.5f), dB(kOut * kRank, -0.25f), dm(kOut, 0.125f);
  attune::adapter::dora_backward(pool(), base, a.params(), a.m.data(), norm.data(), w.data(), x.data(), mask_ptr,
                                 saved_u.data(), saved_inner.data(), T, dx.data(), false,
                                 LoraGrads{dA.data(), dB.data()}, dm.data(), xd.data());
  for (auto& v : dA) v -= 0.5f;
  for (auto& v : dB) v += 0.25f;
  for (auto& v : dm) v -= 0.125f;
  // The norm stays what it was (detached): the loss uses the unperturbed n.
  auto loss = [&] {
    attune::adapter::dora_forward(pool(), base, a.params(), a.m.data(), norm.data(), x.data(), mask_ptr, T, y.data(),
                                  u.data(), inner.data(), xd.data());
    return weighted_sum(y.data(), w);
  };
  check_gradient("dora dx", x, dx, loss);
  check_gradient("dora dA", a.A, dA, loss);
  check_gradient("dora dB", a.B, dB, loss);
  check_gradient("dora dm", a.m, dm, loss);

  // Detaching matters at these sizes: with n recomputed from the perturbed A, the finite
  // differences differ from the detached gradient by far more than the tolerance.
  auto loss_undetached = [&] {
    std::vector<float> n2(kOut);
    attune::adapter::dora_weight_norm(pool(), base, a.params(), w_sq.data(), n2.data());
    attune::adapter::dora_forward(pool(), base, a.params(), a.m.data(), n2.data(), x.data(), mask_ptr, T, y.data(),
                                  u.data(), inner.data(), xd.data());
    return weighted_sum(y.data(), w);
  };
  const auto undetached = attune_test::numeric_gradient(a.A.data(), a.A.size(), loss_undetached, 1e-3f);
  const double gap = attune_test::gradient_error(std::vector<double>(dA.begin(), dA.end()), undetached);
  std::printf("  dA vs the gradient through n (not detached): %.2e apart\n", gap);
  CHECK(gap > 0.05);

  // accumulate_dx adds.
  std::vector<float> inner2 = saved_inner, dx2(T * kIn, 1.0f), dA2(kRank * kIn, 0.0f), dB2(kOut * kRank, 0.0f);
  attune::adapter::dora_backward(pool(), base, a.params(), a.m.data(), norm.data(), w.data(), x.data(), mask_ptr,
                                 saved_u.data(), inner2.data(), T, dx2.data(), true, LoraGrads{dA2.data(), dB2.data()},
                                 nullptr, xd.data());
  bool added = true;
  for (int64_t i = 0; i < T * kIn; ++i) added = added && std::fabs(dx2[i] - 1.0f - dx[i]) < 1e-6f;
  CHECK(added);
}

TEST(dora_layer) {
  check_dora(WeightType::F32, true, false, 0.0f, 600);
  check_dora(WeightType::BF16, false, true, 0.0f, 700);
  check_dora(WeightType::F32, true, true, 0.25f, 800);  // dropout: W·x_d recomputed, the mask fixed
  check_dora(WeightType::F16, true, false, 0.5f, 900);
  const Shape larger(40, 72, 56, 8);
  check_dora(WeightType::BF16, true, true, 0.1f, 950);
  check_dora(WeightType::F32, false, false, 0.0f, 960);
}

TEST(merges) {
  for (WeightType type : {WeightType::F32, WeightType::BF16}) {
    const Frozen f = make_frozen(type, 1000, true);
    Adapter a = make_adapter(1010, 2.0f);
    const FrozenLinear base = f.view();
    const auto x = random_values(T * kIn, 1020);
    std::vector<float> merged(kOut * kIn), y(T * kOut), via_merge(T * kOut), u(T * kRank), inner(T * kOut);

    // LoRA: W + s·B·A, and the merged layer computes the same outputs.
    attune::adapter::lora_merge(pool(), base, a.params(), merged.data());
    std::vector<double> want(kOut * kIn);
    for (int64_t o = 0; o < kOut; ++o) {
      for (int64_t i = 0; i < kIn; ++i) want[o * kIn + i] = f.w[o * kIn + i] + a.scaling * ba(a, o, i);
    }
    const double e_lora = relative_max_error(merged.data(), want);
    attune::adapter::lora_forward(pool(), base, a.params(), x.data(), nullptr, T, y.data(), u.data(), nullptr);
    attune::cpu::linear(pool(), x.data(), merged.data(), WeightType::F32, f.bias.data(), via_merge.data(), T, kIn,
                        kOut);
    const double e_lora_y = relative_max_error(via_merge.data(), std::vector<double>(y.begin(), y.end()));

    // DoRA: (m/n)⊙(W + s·B·A), n of the merged rows.
    std::vector<float> w_sq(kOut), norm(kOut);
    attune::adapter::frozen_row_norms_sq(pool(), base, w_sq.data());
    attune::adapter::dora_weight_norm(pool(), base, a.params(), w_sq.data(), norm.data());
    const auto factors = random_values(kOut, 1030, 0.6f, 1.4f);
    a.m.resize(kOut);
    for (int64_t o = 0; o < kOut; ++o) a.m[o] = norm[o] * factors[o];
    attune::adapter::dora_merge(pool(), base, a.params(), a.m.data(), merged.data());
    const auto n = reference_norm(f, a);
    for (int64_t o = 0; o < kOut; ++o) {
      for (int64_t i = 0; i < kIn; ++i) want[o * kIn + i] *= a.m[o] / n[o];
    }
    const double e_dora = relative_max_error(merged.data(), want);
    attune::adapter::dora_forward(pool(), base, a.params(), a.m.data(), norm.data(), x.data(), nullptr, T, y.data(),
                                  u.data(), inner.data(), nullptr);
    attune::cpu::linear(pool(), x.data(), merged.data(), WeightType::F32, f.bias.data(), via_merge.data(), T, kIn,
                        kOut);
    const double e_dora_y = relative_max_error(via_merge.data(), std::vector<double>(y.begin(), y.end()));
    std::printf("  %s: LoRA merge %.2e (outputs %.2e), DoRA merge %.2e (outputs %.2e)\n", type_name(type), e_lora,
                e_lora_y, e_dora, e_dora_y);
    CHECK(e_lora < 1e-6 && e_lora_y < 1e-6);
    CHECK(e_dora < 1e-6 && e_dora_y < 1e-6);
  }
}

}  // namespace
