// The decode products (cuda/ops_decode.h) against the CPU ops they stand for:
//   - gemv vs cpu::linear for fp32 and bf16 weights (the same bf16 bits on both sides), in
//     ∈ {64, 4104, 11008} × out ∈ {1, 37, 2048} at T = 1, several rows of x (T = 3, 8), with and
//     without bias and accumulate, and an `in` that is not a multiple of the vector width (the
//     element-by-element path);
//   - nf4_gemv vs x·Wᵀ with W from quant::nf4_dequantize_rows of a weight made by the CPU's
//     nf4_quantize (double-quantized and plain, block sizes 64 and 128, rounding to bf16, f16 or
//     none; rows whose length is not a multiple of the block size, so blocks straddle rows; the
//     16-byte path and the element path), plus one-hot rows of x, which must return columns of the
//     CPU's dequantized W bit for bit (every element rounded exactly as nf4_dequantize_rows);
//   - lora_gemv_add vs adapter::lora_forward, dora_scale (after gemv + lora_gemv_add) vs
//     adapter::dora_forward, both with dropout off.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "adapter/dora.h"
#include "adapter/lora.h"
#include "cpu/gemm.h"
#include "cpu/thread_pool.h"
#include "cuda/ops_decode.h"
#include "cuda_test.h"
#include "quant/nf4.h"
#include "status_matchers.h"

namespace {

using attune::cpu::ThreadPool;
using attune::cpu::WeightType;
using attune_test::succeeds;
using namespace attune_test::gpu;
namespace cuda = attune::cuda;
namespace quant = attune::quant;

std::string shape_of(int64_t T, int64_t in, int64_t out) {
  return "T=" + std::to_string(T) + " in=" + std::to_string(in) + " out=" + std::to_string(out);
}

// The bf16 bits of values (round to nearest even), for cpu::linear's BF16 weights: the same
// numbers DeviceArray<bf16> holds.
std::vector<uint16_t> bf16_bits(const std::vector<float>& values) {
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const bf16 h = __float2bfloat16_rn(values[i]);
    std::memcpy(&bits[i], &h, sizeof(uint16_t));
  }
  return bits;
}

// --- gemv.

template <typename W>
void check_gemv(ThreadPool& pool, int64_t T, int64_t in, int64_t out, bool with_bias, bool accumulate, uint64_t seed) {
  const std::vector<float> w = rounded<W>(random_values(static_cast<size_t>(out * in), seed, -1.0f, 1.0f));
  const std::vector<float> x = random_values(static_cast<size_t>(T * in), seed + 1, -1.0f, 1.0f);
  const std::vector<float> bias = random_values(static_cast<size_t>(out), seed + 2, -1.0f, 1.0f);
  const std::vector<float> y0 = random_values(static_cast<size_t>(T * out), seed + 3, -1.0f, 1.0f);

  std::vector<float> want = y0;
  if constexpr (std::is_same_v<W, bf16>) {
    const std::vector<uint16_t> bits = bf16_bits(w);
    attune::cpu::linear(pool, x.data(), bits.data(), WeightType::BF16, with_bias ? bias.data() : nullptr, want.data(), T,
                        in, out, accumulate);
  } else {
    attune::cpu::linear(pool, x.data(), w.data(), WeightType::F32, with_bias ? bias.data() : nullptr, want.data(), T, in,
                        out, accumulate);
  }

  DeviceArray<W> dw(w);
  DeviceArray<float> dx(x);
  DeviceArray<float> dbias(bias);
  // Poisoned unless accumulating: a row the kernel forgets stays NaN.
  DeviceArray<float> dy(accumulate ? y0 : std::vector<float>(y0.size(), NAN));
  CHECK(succeeds(cuda::gemv<W>(dx.get(), dw.get(), with_bias ? dbias.get() : nullptr, dy.get(), T, in, out, accumulate,
                               nullptr)));
  expect_no_cuda_error();
  std::string shape = shape_of(T, in, out);
  if (with_bias) shape += " +bias";
  if (accumulate) shape += " +=";
  expect_close("gemv", dtype_name<W>(), shape, normalized_error(dy.download(), want), error_limit<float>(),
               dy.guards_intact());
}

TEST(gemv_matches_cpu_linear) {
  ThreadPool pool(2);
  uint64_t seed = 100;
  for (int64_t in : {64, 4104, 11008}) {
    for (int64_t out : {1, 37, 2048}) {
      check_gemv<float>(pool, 1, in, out, false, false, seed++);
      check_gemv<bf16>(pool, 1, in, out, false, false, seed++);
    }
  }
}

TEST(gemv_rows_bias_accumulate_and_odd_widths) {
  ThreadPool pool(2);
  uint64_t seed = 200;
  for (int64_t T : {2, 3, 8}) {
    check_gemv<float>(pool, T, 4104, 37, true, false, seed++);
    check_gemv<bf16>(pool, T, 4104, 37, true, false, seed++);
  }
  check_gemv<bf16>(pool, 1, 11008, 37, true, true, seed++);
  check_gemv<float>(pool, 4, 64, 2048, false, true, seed++);
  // Not a multiple of 8 (bf16) or 4 (fp32) elements: the element-by-element path.
  check_gemv<float>(pool, 1, 1001, 37, true, false, seed++);
  check_gemv<bf16>(pool, 1, 1001, 37, true, false, seed++);
  check_gemv<bf16>(pool, 5, 4099, 9, false, false, seed++);
  // More than one chunk of x (T · in > 8192) with several rows.
  check_gemv<bf16>(pool, 8, 11008, 37, true, false, seed++);
}

TEST(gemv_rejects_bad_arguments) {
  DeviceArray<float> buf(64);
  CHECK(!cuda::gemv<float>(buf.get(), buf.get(), nullptr, buf.get(), 0, 8, 8, false, nullptr).ok());
  CHECK(!cuda::gemv<float>(buf.get(), buf.get(), nullptr, buf.get(), 9, 8, 8, false, nullptr).ok());
  CHECK(!cuda::gemv<float>(buf.get(), nullptr, nullptr, buf.get(), 1, 8, 8, false, nullptr).ok());
  CHECK(!cuda::gemv<float>(buf.get(), buf.get(), nullptr, buf.get(), 1, 0, 8, false, nullptr).ok());
}

// --- nf4_gemv.

// An NF4 weight quantized on the CPU and its buffers uploaded.
struct Nf4Case {
  quant::Nf4Quantized q;
  std::vector<float> dequantized;  // [out·in], rounded as `round`
  DeviceArray<uint8_t> packed;
  DeviceArray<float> code;
  DeviceArray<float> absmax;
  DeviceArray<uint8_t> absmax_q;
  DeviceArray<float> absmax2;
  DeviceArray<float> nested_code;
  cuda::Nf4GemvWeight weight;

  static std::vector<float> widen(const std::vector<uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }
  static std::vector<float> or_one(const std::vector<float>& v) { return v.empty() ? std::vector<float>(1) : v; }
  static std::vector<uint8_t> or_one(const std::vector<uint8_t>& v) { return v.empty() ? std::vector<uint8_t>(1) : v; }

  Nf4Case(quant::Nf4Quantized quantized, int64_t out, int64_t in, quant::Nf4Round round)
      : q(std::move(quantized)),
        packed(widen(q.packed)),
        code(std::vector<float>(quant::nf4_code().begin(), quant::nf4_code().end())),
        absmax(or_one(q.absmax)),
        absmax_q(widen(or_one(q.absmax_q))),
        absmax2(or_one(q.absmax2)),
        nested_code(std::vector<float>(quant::dynamic_map_signed().begin(), quant::dynamic_map_signed().end())) {
    const quant::Nf4View view = quant::view_of(q, out, in);
    dequantized.resize(static_cast<size_t>(out * in));
    quant::nf4_dequantize_rows(view, 0, out, round, dequantized.data());
    weight.packed = packed.get();
    weight.code = code.get();
    if (q.nested) {
      weight.absmax_q = absmax_q.get();
      weight.absmax2 = absmax2.get();
      weight.nested_code = nested_code.get();
      weight.offset = q.offset;
      weight.nested_blocksize = q.nested_blocksize;
    } else {
      weight.absmax = absmax.get();
    }
    weight.out = out;
    weight.in = in;
    weight.blocksize = q.blocksize;
    weight.round = round == quant::Nf4Round::kBF16  ? cuda::Nf4GemvRound::kBF16
                   : round == quant::Nf4Round::kF16 ? cuda::Nf4GemvRound::kF16
                                                    : cuda::Nf4GemvRound::kNone;
  }
};

const char* round_name(quant::Nf4Round round) {
  return round == quant::Nf4Round::kBF16 ? "nf4→bf16" : round == quant::Nf4Round::kF16 ? "nf4→f16" : "nf4→f32";
}

void check_nf4_gemv(ThreadPool& pool, int64_t T, int64_t in, int64_t out, int64_t blocksize, bool nested,
                    quant::Nf4Round round, uint64_t seed) {
  // Weights of a trained layer's scale, with a few outliers so that blocks' absmax differ widely.
  std::vector<float> w = random_values(static_cast<size_t>(out * in), seed, -0.05f, 0.05f);
  for (size_t i = 0; i < w.size(); i += 997) w[i] *= 20.0f;
  quant::Nf4Options options;
  options.blocksize = blocksize;
  options.double_quant = nested;
  quant::Nf4Quantized q;
  CHECK(succeeds(quant::nf4_quantize(w.data(), out * in, options, nullptr, &q)));
  if (!q.nested && nested) return;
  Nf4Case c(std::move(q), out, in, round);

  std::string shape = shape_of(T, in, out) + " bs=" + std::to_string(blocksize) + (nested ? " nested" : " plain");

  // Random rows of x, with bias: fp32 sums in another order.
  {
    const std::vector<float> x = random_values(static_cast<size_t>(T * in), seed + 1, -1.0f, 1.0f);
    const std::vector<float> bias = random_values(static_cast<size_t>(out), seed + 2, -1.0f, 1.0f);
    std::vector<float> want(static_cast<size_t>(T * out));
    attune::cpu::linear(pool, x.data(), c.dequantized.data(), WeightType::F32, bias.data(), want.data(), T, in, out);
    DeviceArray<float> dx(x);
    DeviceArray<float> dbias(bias);
    DeviceArray<float> dy(static_cast<size_t>(T * out));
    CHECK(succeeds(cuda::nf4_gemv(dx.get(), c.weight, dbias.get(), dy.get(), T, false, nullptr)));
    expect_no_cuda_error();
    expect_close("nf4_gemv", round_name(round), shape, normalized_error(dy.download(), want), error_limit<float>(),
                 dy.guards_intact() && c.packed.guards_intact());
  }

  // One-hot rows of x pick columns of W: y[t, o] = W[o, col_t] exactly (the other products are
  // ±0), so every element's dequantized value must equal the CPU's bit for bit. Columns at block
  // and byte edges, both nibbles, the last one.
  {
    std::vector<int64_t> cols = {0, 1, 2, 31, 32, 33, in / 2, in / 2 + 1, in - 2, in - 1};
    if (in >= 128) {
      for (int64_t col : {63, 64, 65, 127}) cols.push_back(col);
    }
    double worst = 0;
    bool guards = true;
    for (size_t first = 0; first < cols.size(); first += cuda::kDecodeMaxRows) {
      const int64_t rows = std::min<int64_t>(cuda::kDecodeMaxRows, static_cast<int64_t>(cols.size() - first));
      std::vector<float> x(static_cast<size_t>(rows * in), 0.0f);
      std::vector<float> want(static_cast<size_t>(rows * out));
      for (int64_t t = 0; t < rows; ++t) {
        const int64_t col = cols[first + static_cast<size_t>(t)];
        x[static_cast<size_t>(t * in + col)] = 1.0f;
        for (int64_t o = 0; o < out; ++o) {
          want[static_cast<size_t>(t * out + o)] = c.dequantized[static_cast<size_t>(o * in + col)];
        }
      }
      DeviceArray<float> dx(x);
      DeviceArray<float> dy(static_cast<size_t>(rows * out));
      CHECK(succeeds(cuda::nf4_gemv(dx.get(), c.weight, nullptr, dy.get(), rows, false, nullptr)));
      const std::vector<float> got = dy.download();
      for (size_t i = 0; i < got.size(); ++i) {
        if (got[i] != want[i]) worst = 1;  // exact, or a different value (or NaN): 1
      }
      guards = guards && dy.guards_intact();
    }
    expect_no_cuda_error();
    expect_close("nf4_gemv one-hot (exact W)", round_name(round), shape_of(cuda::kDecodeMaxRows, in, out) + " bs=" +
                 std::to_string(blocksize) + (nested ? " nested" : " plain"), worst, 0.0, guards);
  }
}

TEST(nf4_gemv_matches_dequantized_linear) {
  ThreadPool pool(2);
  uint64_t seed = 300;
  // 16-byte path (in a multiple of 32), blocks inside rows.
  check_nf4_gemv(pool, 1, 64, 37, 64, true, quant::Nf4Round::kBF16, seed++);
  check_nf4_gemv(pool, 1, 11008, 256, 64, true, quant::Nf4Round::kBF16, seed++);
  check_nf4_gemv(pool, 1, 4096, 2048, 64, true, quant::Nf4Round::kBF16, seed++);
  // 16-byte path with blocks straddling rows (96 = 1.5 blocks of 64).
  check_nf4_gemv(pool, 1, 96, 37, 64, true, quant::Nf4Round::kBF16, seed++);
  // Element path: 4104 is not a multiple of 32 (rows start mid-byte-vector, blocks straddle rows).
  check_nf4_gemv(pool, 1, 4104, 37, 64, true, quant::Nf4Round::kBF16, seed++);
  check_nf4_gemv(pool, 1, 4104, 1, 64, true, quant::Nf4Round::kBF16, seed++);
  // Odd in: rows start on the low nibble of a byte.
  check_nf4_gemv(pool, 1, 1001, 37, 64, true, quant::Nf4Round::kBF16, seed++);
  // Other roundings, block sizes, plain absmax, several rows of x.
  check_nf4_gemv(pool, 1, 4096, 64, 64, true, quant::Nf4Round::kNone, seed++);
  check_nf4_gemv(pool, 1, 4096, 64, 64, true, quant::Nf4Round::kF16, seed++);
  check_nf4_gemv(pool, 1, 4096, 64, 128, true, quant::Nf4Round::kBF16, seed++);
  check_nf4_gemv(pool, 1, 4096, 64, 32, false, quant::Nf4Round::kBF16, seed++);
  check_nf4_gemv(pool, 4, 4096, 64, 64, true, quant::Nf4Round::kBF16, seed++);
  check_nf4_gemv(pool, 8, 11008, 37, 64, true, quant::Nf4Round::kBF16, seed++);
  check_nf4_gemv(pool, 3, 4104, 37, 64, false, quant::Nf4Round::kNone, seed++);
}

TEST(nf4_gemv_rejects_bad_arguments) {
  DeviceArray<float> buf(64);
  DeviceArray<uint8_t> bytes(64);
  cuda::Nf4GemvWeight w;
  w.packed = bytes.get();
  w.code = buf.get();
  w.absmax = buf.get();
  w.out = 2;
  w.in = 64;
  w.blocksize = 48;  // not a power of two
  CHECK(!cuda::nf4_gemv(buf.get(), w, nullptr, buf.get(), 1, false, nullptr).ok());
  w.blocksize = 64;
  w.absmax = nullptr;  // and no nested tensors
  CHECK(!cuda::nf4_gemv(buf.get(), w, nullptr, buf.get(), 1, false, nullptr).ok());
}

// --- LoRA and DoRA.

void check_lora(ThreadPool& pool, int64_t T, int64_t in, int64_t out, int64_t rank, uint64_t seed) {
  const std::vector<float> w = random_values(static_cast<size_t>(out * in), seed, -0.1f, 0.1f);
  const std::vector<float> bias = random_values(static_cast<size_t>(out), seed + 1, -1.0f, 1.0f);
  const std::vector<float> a = random_values(static_cast<size_t>(rank * in), seed + 2, -0.1f, 0.1f);
  const std::vector<float> b = random_values(static_cast<size_t>(out * rank), seed + 3, -0.1f, 0.1f);
  const std::vector<float> x = random_values(static_cast<size_t>(T * in), seed + 4, -1.0f, 1.0f);
  const float scaling = attune::adapter::lora_scaling(16.0, rank, false);

  attune::adapter::FrozenLinear base{w.data(), WeightType::F32, bias.data(), in, out};
  attune::adapter::LoraParams lora{a.data(), b.data(), rank, scaling};
  std::vector<float> want_y(static_cast<size_t>(T * out));
  std::vector<float> want_u(static_cast<size_t>(T * rank));
  attune::adapter::lora_forward(pool, base, lora, x.data(), nullptr, T, want_y.data(), want_u.data(), nullptr);

  DeviceArray<float> dw(w), dbias(bias), da(a), db(b), dx(x);
  DeviceArray<float> dy(static_cast<size_t>(T * out));
  DeviceArray<float> du(static_cast<size_t>(T * rank));
  CHECK(succeeds(cuda::gemv<float>(dx.get(), dw.get(), dbias.get(), dy.get(), T, in, out, false, nullptr)));
  CHECK(succeeds(cuda::lora_gemv_add(dx.get(), da.get(), db.get(), scaling, du.get(), dy.get(), T, in, out, rank,
                                     nullptr)));
  expect_no_cuda_error();
  const std::string shape = shape_of(T, in, out) + " r=" + std::to_string(rank);
  expect_close("lora_gemv_add (x·Aᵀ)", "f32", shape, normalized_error(du.download(), want_u), error_limit<float>(),
               du.guards_intact());
  expect_close("lora_gemv_add", "f32", shape, normalized_error(dy.download(), want_y), error_limit<float>(),
               dy.guards_intact());
}

// DoRA on a bf16 base: y = gemv(W, x) without bias; y += s·B·A·x; y = (m/n)⊙y + bias.
void check_dora(ThreadPool& pool, int64_t T, int64_t in, int64_t out, int64_t rank, uint64_t seed) {
  const std::vector<float> w = rounded<bf16>(random_values(static_cast<size_t>(out * in), seed, -0.1f, 0.1f));
  const std::vector<uint16_t> w_bits = bf16_bits(w);
  const std::vector<float> bias = random_values(static_cast<size_t>(out), seed + 1, -1.0f, 1.0f);
  const std::vector<float> a = random_values(static_cast<size_t>(rank * in), seed + 2, -0.1f, 0.1f);
  const std::vector<float> b = random_values(static_cast<size_t>(out * rank), seed + 3, -0.1f, 0.1f);
  const std::vector<float> x = random_values(static_cast<size_t>(T * in), seed + 4, -1.0f, 1.0f);
  const float scaling = attune::adapter::lora_scaling(16.0, rank, false);

  attune::adapter::FrozenLinear base{w_bits.data(), WeightType::BF16, bias.data(), in, out};
  attune::adapter::LoraParams lora{a.data(), b.data(), rank, scaling};
  std::vector<float> norm(static_cast<size_t>(out));
  attune::adapter::dora_weight_norm_direct(pool, base, lora, norm.data());
  // A trained magnitude: the norm, moved by up to ±20%.
  std::vector<float> magnitude = random_values(static_cast<size_t>(out), seed + 5, 0.8f, 1.2f);
  for (size_t o = 0; o < magnitude.size(); ++o) magnitude[o] *= norm[o];
  std::vector<float> want_y(static_cast<size_t>(T * out));
  std::vector<float> u(static_cast<size_t>(T * rank));
  std::vector<float> inner(static_cast<size_t>(T * out));
  attune::adapter::dora_forward(pool, base, lora, magnitude.data(), norm.data(), x.data(), nullptr, T, want_y.data(),
                                u.data(), inner.data(), nullptr);

  DeviceArray<bf16> dw(w);
  DeviceArray<float> dbias(bias), da(a), db(b), dx(x), dnorm(norm), dmag(magnitude);
  DeviceArray<float> dy(static_cast<size_t>(T * out));
  DeviceArray<float> du(static_cast<size_t>(T * rank));
  CHECK(succeeds(cuda::gemv<bf16>(dx.get(), dw.get(), nullptr, dy.get(), T, in, out, false, nullptr)));
  CHECK(succeeds(cuda::lora_gemv_add(dx.get(), da.get(), db.get(), scaling, du.get(), dy.get(), T, in, out, rank,
                                     nullptr)));
  CHECK(succeeds(cuda::dora_scale(dmag.get(), dnorm.get(), dbias.get(), dy.get(), T, out, nullptr)));
  expect_no_cuda_error();
  expect_close("dora_scale (gemv + lora_gemv_add)", "bf16", shape_of(T, in, out) + " r=" + std::to_string(rank),
               normalized_error(dy.download(), want_y), error_limit<float>(), dy.guards_intact());
}

TEST(lora_and_dora_match_the_cpu_adapter_layers) {
  ThreadPool pool(2);
  check_lora(pool, 1, 4096, 1024, 16, 400);
  check_lora(pool, 1, 64, 37, 8, 401);
  check_lora(pool, 4, 4104, 37, 64, 402);
  check_dora(pool, 1, 4096, 1024, 16, 410);
  check_dora(pool, 3, 1001, 37, 8, 411);
}

TEST(lora_rejects_bad_arguments) {
  DeviceArray<float> buf(64);
  CHECK(!cuda::lora_gemv_add(buf.get(), buf.get(), buf.get(), 1.0f, buf.get(), buf.get(), 1, 8, 8, 0, nullptr).ok());
  CHECK(!cuda::dora_scale(buf.get(), nullptr, nullptr, buf.get(), 1, 8, nullptr).ok());
}

}  // namespace
