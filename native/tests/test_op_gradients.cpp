// Every backward op of cpu/ops_backward.h against central finite differences of its forward op
// (gradient_check.h): small odd shapes (T=5, H=12, 3 heads over 1 or 3 key/value heads of dim 4,
// vocab 11), the causal mask, GQA, ignored targets, in-place and accumulating variants.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "check.h"
#include "cpu/ops.h"
#include "cpu/ops_backward.h"
#include "gradient_check.h"

namespace {

using attune::cpu::ThreadPool;
using attune_test::check_gradient;
using attune_test::random_values;
using attune_test::weighted_sum;

ThreadPool& pool() {
  static ThreadPool instance(2);
  return instance;
}

bool all_close(const std::vector<float>& a, const std::vector<float>& b, double tol) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(std::fabs(a[i] - b[i]) <= tol * (1.0 + std::fabs(b[i])))) return false;
  }
  return true;
}

TEST(rmsnorm_gradient) {
  const int64_t T = 5, H = 12;
  const float eps = 1e-5f;
  auto x = random_values(T * H, 1, -2.0f, 2.0f);
  for (int64_t i = 0; i < H; ++i) x[3 * H + i] *= 0.05f;  // a row of small values: r large
  auto weight = random_values(H, 2, 0.5f, 1.5f);
  const auto w = random_values(T * H, 3);
  std::vector<float> y(T * H), rstd(T);
  auto loss = [&] {
    attune::cpu::rmsnorm_forward(pool(), x.data(), weight.data(), eps, T, H, y.data(), rstd.data());
    return weighted_sum(y.data(), w);
  };
  loss();
  const std::vector<float> saved_rstd = rstd;
  std::vector<float> dx(T * H), dweight(H, 0.0f);
  attune::cpu::rmsnorm_backward(pool(), w.data(), x.data(), weight.data(), saved_rstd.data(), T, H, dx.data(), false,
                                dweight.data());
  check_gradient("rmsnorm dx", x, dx, loss);
  check_gradient("rmsnorm dweight", weight, dweight, loss);

  // In place (dx = dy), accumulating dx and dweight.
  std::vector<float> inplace = w;
  std::vector<float> dweight2(H, 0.0f);
  attune::cpu::rmsnorm_backward(pool(), inplace.data(), x.data(), weight.data(), saved_rstd.data(), T, H,
                                inplace.data(), false, dweight2.data());
  CHECK(all_close(inplace, dx, 1e-6));
  CHECK(all_close(dweight2, dweight, 1e-6));
  std::vector<float> acc(T * H, 0.5f), dweight3(H, 0.25f);
  attune::cpu::rmsnorm_backward(pool(), w.data(), x.data(), weight.data(), saved_rstd.data(), T, H, acc.data(), true,
                                dweight3.data());
  std::vector<float> want(dx), want_w(dweight);
  for (auto& v : want) v += 0.5f;
  for (auto& v : want_w) v += 0.25f;
  CHECK(all_close(acc, want, 1e-6));
  CHECK(all_close(dweight3, want_w, 1e-6));
}

// Real RoPE tables (θ = 10000) for `positions` rows of dim/2 frequencies.
void rope_tables(int64_t positions, int64_t dim, std::vector<float>* cos_table, std::vector<float>* sin_table) {
  const int64_t half = dim / 2;
  cos_table->resize(positions * half);
  sin_table->resize(positions * half);
  for (int64_t p = 0; p < positions; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = p / std::pow(10000.0, 2.0 * i / dim);
      (*cos_table)[p * half + i] = static_cast<float>(std::cos(angle));
      (*sin_table)[p * half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

TEST(rope_gradient) {
  const int64_t T = 5, heads = 3, dim = 4;
  const std::vector<int32_t> positions = {2, 0, 5, 7, 1};
  std::vector<float> cos_table, sin_table;
  rope_tables(8, dim, &cos_table, &sin_table);
  auto x = random_values(T * heads * dim, 4);
  const auto w = random_values(T * heads * dim, 5);
  std::vector<float> y;
  auto loss = [&] {
    y = x;
    attune::cpu::rope_forward(pool(), y.data(), positions.data(), T, heads, dim, cos_table.data(), sin_table.data());
    return weighted_sum(y.data(), w);
  };
  std::vector<float> dx = w;
  attune::cpu::rope_backward(pool(), dx.data(), positions.data(), T, heads, dim, cos_table.data(), sin_table.data());
  check_gradient("rope dx", x, dx, loss);
  // The backward is the inverse: forward then backward gives the input back.
  std::vector<float> round_trip = x;
  attune::cpu::rope_forward(pool(), round_trip.data(), positions.data(), T, heads, dim, cos_table.data(),
                            sin_table.data());
  attune::cpu::rope_backward(pool(), round_trip.data(), positions.data(), T, heads, dim, cos_table.data(),
                             sin_table.data());
  CHECK(all_close(round_trip, x, 1e-6));
}

// log Σ_s≤t exp(scale·q_t·k_s) in double, for lse[t, h].
std::vector<double> reference_lse(const std::vector<float>& q, const std::vector<float>& k, int64_t T, int64_t heads,
                                  int64_t kv_heads, int64_t dim) {
  std::vector<double> lse(T * heads);
  const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t kh = h / (heads / kv_heads);
      std::vector<double> scores;
      double max_score = -INFINITY;
      for (int64_t s = 0; s <= t; ++s) {
        double dot = 0;
        for (int64_t i = 0; i < dim; ++i) {
          dot += static_cast<double>(q[(t * heads + h) * dim + i]) * k[(s * kv_heads + kh) * dim + i];
        }
        scores.push_back(dot * scale);
        max_score = std::max(max_score, dot * scale);
      }
      double sum = 0;
      for (double sc : scores) sum += std::exp(sc - max_score);
      lse[t * heads + h] = max_score + std::log(sum);
    }
  }
  return lse;
}

void check_attention(int64_t T, int64_t heads, int64_t kv_heads, int64_t dim, unsigned seed, float amplitude,
                     float h = 1e-3f) {
  std::printf(" attention T=%lld heads=%lld kv_heads=%lld dim=%lld\n", static_cast<long long>(T),
              static_cast<long long>(heads), static_cast<long long>(kv_heads), static_cast<long long>(dim));
  auto q = random_values(T * heads * dim, seed, -amplitude, amplitude);
  auto k = random_values(T * kv_heads * dim, seed + 1, -amplitude, amplitude);
  auto v = random_values(T * kv_heads * dim, seed + 2);
  const auto w = random_values(T * heads * dim, seed + 3);
  std::vector<float> out(T * heads * dim), lse(T * heads);
  // The loss goes through the inference op: the training forward must be the same function.
  auto loss = [&] {
    attune::cpu::attention_forward(pool(), q.data(), k.data(), v.data(), T, 0, heads, kv_heads, dim, out.data());
    return weighted_sum(out.data(), w);
  };
  loss();
  const std::vector<float> reference_out = out;
  attune::cpu::attention_forward_train(pool(), q.data(), k.data(), v.data(), T, heads, kv_heads, dim, out.data(),
                                       lse.data());
  CHECK(all_close(out, reference_out, 1e-5));
  CHECK(attune_test::relative_max_error(lse.data(), reference_lse(q, k, T, heads, kv_heads, dim)) < 1e-5);

  std::vector<float> dq(T * heads * dim, NAN), dk(T * kv_heads * dim, NAN), dv(T * kv_heads * dim, NAN);
  attune::cpu::attention_backward(pool(), w.data(), q.data(), k.data(), v.data(), lse.data(), T, heads, kv_heads, dim,
                                  dq.data(), dk.data(), dv.data());
  check_gradient("attention dq", q, dq, loss, h);
  check_gradient("attention dk", k, dk, loss, h);
  check_gradient("attention dv", v, dv, loss, h);

  // Causality: the gradient of the first query's output reaches only key/value 0.
  std::vector<float> first(T * heads * dim, 0.0f);
  for (int64_t i = 0; i < heads * dim; ++i) first[i] = w[i];
  attune::cpu::attention_backward(pool(), first.data(), q.data(), k.data(), v.data(), lse.data(), T, heads, kv_heads,
                                  dim, dq.data(), dk.data(), dv.data());
  bool causal = true;
  for (int64_t i = kv_heads * dim; i < T * kv_heads * dim; ++i) causal = causal && dk[i] == 0.0f && dv[i] == 0.0f;
  for (int64_t i = heads * dim; i < T * heads * dim; ++i) causal = causal && dq[i] == 0.0f;
  CHECK(causal);
}

TEST(attention_gradient) {
  check_attention(5, 3, 1, 4, 10, 1.0f);   // GQA: 3 query heads share one key/value head
  check_attention(5, 3, 3, 4, 20, 1.0f);   // one key/value head per query head
  check_attention(5, 3, 1, 4, 30, 3.0f);   // peaked softmax
  check_attention(133, 2, 1, 4, 40, 1.0f, 1e-2f);  // more than one block of query rows (128)
}

TEST(swiglu_gradient) {
  const int64_t n = 5 * 12;
  auto gate = random_values(n, 50, -4.0f, 4.0f);
  auto up = random_values(n, 51, -2.0f, 2.0f);
  const auto w = random_values(n, 52);
  std::vector<float> y(n);
  auto loss = [&] {
    attune::cpu::swiglu_forward(pool(), gate.data(), up.data(), n, y.data());
    return weighted_sum(y.data(), w);
  };
  std::vector<float> dgate(n), dup(n);
  attune::cpu::swiglu_backward(pool(), w.data(), gate.data(), up.data(), n, dgate.data(), dup.data());
  check_gradient("swiglu dgate", gate, dgate, loss);
  check_gradient("swiglu dup", up, dup, loss);
  // In place on gate and up.
  std::vector<float> g2 = gate, u2 = up;
  attune::cpu::swiglu_backward(pool(), w.data(), g2.data(), u2.data(), n, g2.data(), u2.data());
  CHECK(all_close(g2, dgate, 1e-6));
  CHECK(all_close(u2, dup, 1e-6));
}

TEST(cross_entropy_gradient) {
  const int64_t T = 5, V = 11;
  const std::vector<int32_t> targets = {3, -100, 10, 0, -100};
  const float scale = 1.0f / 3.0f;  // the mean over the 3 counted targets
  for (float amplitude : {2.0f, 30.0f}) {
    std::printf(" cross-entropy, logits in ±%g\n", static_cast<double>(amplitude));
    auto logits = random_values(T * V, 60, -amplitude, amplitude);
    auto loss = [&] {
      int64_t count = 0;
      return scale * attune::cpu::cross_entropy_sum(pool(), logits.data(), targets.data(), T, V, &count);
    };
    std::vector<float> dlogits(T * V, NAN);
    int64_t count = 0, reference_count = 0;
    const double sum = attune::cpu::cross_entropy_forward_backward(pool(), logits.data(), targets.data(), T, V, scale,
                                                                   dlogits.data(), &count);
    const double reference = attune::cpu::cross_entropy_sum(pool(), logits.data(), targets.data(), T, V,
                                                             &reference_count);
    CHECK(count == 3 && reference_count == 3);
    CHECK(std::fabs(sum - reference) <= 1e-6 * std::fabs(reference));
    // Ignored rows get zeros; each counted row of softmax − onehot sums to 0.
    bool ignored_zero = true, rows_sum_zero = true;
    for (int64_t t = 0; t < T; ++t) {
      double row_sum = 0;
      for (int64_t i = 0; i < V; ++i) {
        row_sum += dlogits[t * V + i];
        if (targets[t] < 0) ignored_zero = ignored_zero && dlogits[t * V + i] == 0.0f;
      }
      rows_sum_zero = rows_sum_zero && std::fabs(row_sum) < 1e-6;
    }
    CHECK(ignored_zero);
    CHECK(rows_sum_zero);
    check_gradient(amplitude > 10 ? "cross-entropy dlogits (large logits)" : "cross-entropy dlogits", logits, dlogits,
                   loss, amplitude > 10 ? 1e-2f : 1e-3f);
    // In place on the logits.
    std::vector<float> inplace = logits;
    int64_t count2 = 0;
    const double sum2 = attune::cpu::cross_entropy_forward_backward(pool(), inplace.data(), targets.data(), T, V, scale,
                                                                    inplace.data(), &count2);
    CHECK(sum2 == sum && count2 == 3);
    CHECK(all_close(inplace, dlogits, 0.0));
  }
}

}  // namespace
