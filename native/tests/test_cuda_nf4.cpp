// The CUDA NF4 ops (cuda/ops_nf4.h) against quant/nf4.h on the CPU, which are bit-exact with
// bitsandbytes: dequantization (plain and double-quantized, every rounding, fp32 and bf16 outputs,
// whole weights and row ranges) and quantization (fp32 and bf16 inputs, several block sizes, both
// offset means, odd sizes, all-zero and subnormal blocks, values exactly on codes and on decision
// constants) must give the very same bits: each comparison is reported as error 0 (identical) or
// 1 (not), with limit 0.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/ops_nf4.h"
#include "cuda_test.h"
#include "quant/nf4.h"
#include "status_matchers.h"

namespace {

using attune::cuda::Nf4DeviceQuantized;
using attune::cuda::Nf4DeviceView;
using attune::quant::Nf4Options;
using attune::quant::Nf4Quantized;
using attune::quant::Nf4Round;
using attune::quant::Nf4View;
using attune::quant::OffsetMean;
using attune_test::fails_with;
using attune_test::succeeds;
using namespace attune_test::gpu;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::vector<float> as_floats(const std::vector<uint8_t>& bytes) {
  return std::vector<float>(bytes.begin(), bytes.end());
}

const char* round_name(Nf4Round round) {
  switch (round) {
    case Nf4Round::kNone:
      return "none";
    case Nf4Round::kBF16:
      return "bf16";
    case Nf4Round::kF16:
      return "f16";
  }
  return "?";
}

// A weight that visits the corner cases: blocks of different scales; when there are enough blocks,
// an all-zero block (absmax 0: 1/0 = inf, 0·inf = NaN → code 0), a block of subnormals (1/absmax
// overflows to inf), a block holding the 16 NF4 values exactly, and one holding the 15 decision
// constants exactly (ties go to the lower code), both with absmax 1 so that x·r = x.
std::vector<float> make_weight(int64_t n, int64_t blocksize, uint64_t seed) {
  std::vector<float> x = random_values(static_cast<size_t>(n), seed);
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] *= static_cast<float>(1 + (i / 97) % 5);
  auto block = [&](int64_t b, auto fill) {
    if ((b + 1) * blocksize > n) return;
    for (int64_t j = 0; j < blocksize; ++j) x[static_cast<size_t>(b * blocksize + j)] = fill(j);
  };
  block(1, [](int64_t) { return 0.0f; });
  const std::vector<float> tiny = random_values(static_cast<size_t>(blocksize), seed + 1);
  block(2, [&](int64_t j) { return tiny[static_cast<size_t>(j)] * 1e-39f; });
  block(3, [](int64_t j) { return j == 0 ? 1.0f : attune::quant::nf4_code()[static_cast<size_t>(j % 16)]; });
  block(4, [](int64_t j) { return j == 0 ? -1.0f : attune::quant::nf4_thresholds()[static_cast<size_t>(j % 15)]; });
  return x;
}

template <typename T>
void check_quantize(int64_t rows, int64_t cols, int64_t blocksize, bool double_quant, OffsetMean mean, uint64_t seed) {
  const int64_t n = rows * cols;
  const int64_t blocks = ceil_div(n, blocksize);
  const int64_t nested = ceil_div(blocks, attune::quant::kNf4NestedBlocksize);
  // What the CPU quantizes: the input as T holds it (bf16 widens exactly, as the CPU's TensorView path).
  const std::vector<float> x = rounded<T>(make_weight(n, blocksize, seed));
  Nf4Options options;
  options.blocksize = blocksize;
  options.double_quant = double_quant;
  options.offset_mean = mean;
  Nf4Quantized q;
  CHECK(succeeds(attune::quant::nf4_quantize(x.data(), n, options, nullptr, &q)));

  DeviceArray<T> dx(x);
  DeviceArray<uint8_t> packed(static_cast<size_t>(ceil_div(n, 2)));
  DeviceArray<float> absmax(static_cast<size_t>(blocks));
  DeviceArray<uint8_t> absmax_q(static_cast<size_t>(double_quant ? blocks : 0));
  DeviceArray<float> absmax2(static_cast<size_t>(double_quant ? nested : 0));
  Nf4DeviceQuantized out;
  out.packed = packed.get();
  out.absmax = absmax.get();
  out.absmax_q = double_quant ? absmax_q.get() : nullptr;
  out.absmax2 = double_quant ? absmax2.get() : nullptr;
  float offset = -1.0f;
  CHECK(succeeds(attune::cuda::nf4_quantize<T>(dx.get(), n, options, out, &offset, nullptr)));
  expect_no_cuda_error();

  const std::string shape = std::to_string(rows) + "x" + std::to_string(cols) + " bs" + std::to_string(blocksize) +
                            (double_quant ? (mean == OffsetMean::kExact ? " nested" : " nested torch-mean") : " plain");
  expect_close("nf4_quantize packed", dtype_name<T>(), shape,
               bitwise_error(packed.download(), as_floats(q.packed), "packed"), 0.0, packed.guards_intact());
  expect_close("nf4_quantize absmax", dtype_name<T>(), shape, bitwise_error(absmax.download(), q.absmax, "absmax"), 0.0,
               absmax.guards_intact());
  if (double_quant) {
    expect_close("nf4_quantize absmax_q", dtype_name<T>(), shape,
                 bitwise_error(absmax_q.download(), as_floats(q.absmax_q), "absmax_q"), 0.0, absmax_q.guards_intact());
    expect_close("nf4_quantize absmax2", dtype_name<T>(), shape,
                 bitwise_error(absmax2.download(), q.absmax2, "absmax2"), 0.0, absmax2.guards_intact());
  }
  expect_close("nf4_quantize offset", dtype_name<T>(), shape,
               bitwise_error({offset}, {double_quant ? q.offset : 0.0f}, "offset"), 0.0);
}

// Device copies of an NF4 weight's pieces and the device view of them.
struct DeviceNf4 {
  DeviceArray<uint8_t> packed;
  DeviceArray<float> code;
  DeviceArray<float> absmax;
  DeviceArray<uint8_t> absmax_q;
  DeviceArray<float> absmax2;
  DeviceArray<float> nested_code;
  Nf4DeviceView view;

  DeviceNf4(const Nf4Quantized& q, const Nf4View& v)
      : packed(as_floats(q.packed)),
        code(std::vector<float>(v.code, v.code + 16)),
        absmax(v.absmax ? q.absmax : std::vector<float>()),
        absmax_q(as_floats(v.absmax ? std::vector<uint8_t>() : q.absmax_q)),
        absmax2(v.absmax ? std::vector<float>() : q.absmax2),
        nested_code(v.absmax ? std::vector<float>() : std::vector<float>(v.nested_code, v.nested_code + 256)) {
    view.packed = packed.get();
    view.rows = v.rows;
    view.cols = v.cols;
    view.blocksize = v.blocksize;
    view.code = code.get();
    if (v.absmax) {
      view.absmax = absmax.get();
    } else {
      view.absmax_q = absmax_q.get();
      view.absmax2 = absmax2.get();
      view.nested_code = nested_code.get();
      view.nested_blocksize = v.nested_blocksize;
      view.offset = v.offset;
    }
  }
};

// Dequantizes rows of a CPU-quantized weight on the GPU and compares with nf4_dequantize_rows.
// `perturb_maps`: use maps that differ from the standard ones in the last bit of some entries (a
// checkpoint's maps may, within Nf4Weight's 1e-6), to show that the kernel reads the view's tables.
template <typename T>
void check_dequantize(int64_t rows, int64_t cols, int64_t blocksize, bool nested, bool perturb_maps, uint64_t seed) {
  const int64_t n = rows * cols;
  const std::vector<float> x = make_weight(n, blocksize, seed);
  Nf4Options options;
  options.blocksize = blocksize;
  options.double_quant = nested;
  Nf4Quantized q;
  CHECK(succeeds(attune::quant::nf4_quantize(x.data(), n, options, nullptr, &q)));
  Nf4View view = attune::quant::view_of(q, rows, cols);
  std::vector<float> code(view.code, view.code + 16);
  std::vector<float> nested_code(256);
  if (nested) nested_code.assign(view.nested_code, view.nested_code + 256);
  if (perturb_maps) {
    for (size_t i = 1; i < code.size(); i += 3) code[i] = std::nextafter(code[i], 2.0f);
    for (size_t i = 0; i < nested_code.size(); i += 5) nested_code[i] = std::nextafter(nested_code[i], -2.0f);
    view.code = code.data();
    if (nested) view.nested_code = nested_code.data();
  }
  DeviceNf4 device(q, view);

  const std::vector<Nf4Round> rounds = std::is_same_v<T, float>
                                           ? std::vector<Nf4Round>{Nf4Round::kNone, Nf4Round::kBF16, Nf4Round::kF16}
                                           : std::vector<Nf4Round>{Nf4Round::kBF16, Nf4Round::kNone, Nf4Round::kF16};
  const int64_t ranges[][2] = {{0, rows}, {rows / 3, rows - rows / 3}, {rows - 1, rows}};
  for (const auto& range : ranges) {
    const int64_t r0 = range[0], r1 = range[1];
    if (r0 >= r1) continue;
    for (Nf4Round round : rounds) {
      std::vector<float> want(static_cast<size_t>((r1 - r0) * cols));
      attune::quant::nf4_dequantize_rows(view, r0, r1, round, want.data());
      // As T holds them: for bf16 with kBF16 already exact; kNone rounds the fp32 product once;
      // kF16 rounds the f16 value to bf16 (what the kernel documents).
      want = rounded<T>(want);
      DeviceArray<T> dst(want.size());
      CHECK(succeeds(attune::cuda::nf4_dequantize_rows<T>(device.view, r0, r1, round, dst.get(), nullptr)));
      expect_no_cuda_error();
      const std::string shape = std::to_string(rows) + "x" + std::to_string(cols) + " rows " + std::to_string(r0) +
                                ".." + std::to_string(r1) + " bs" + std::to_string(blocksize) +
                                (nested ? " nested" : " plain") + (perturb_maps ? " file maps" : "") + " round " +
                                round_name(round);
      expect_close("nf4_dequantize_rows", dtype_name<T>(), shape, bitwise_error(dst.download(), want, "weight"), 0.0,
                   dst.guards_intact());
    }
  }
}

struct Shape {
  int64_t rows, cols, blocksize;
};
// Odd element counts (561, 3000 with a short last block of 4096), a single block, more than one
// nested block of 256 with a short last one (77100 → 1205 blocks → 5 nested), and a weight of
// ~1.1M values (17600 blocks, 69 nested).
const Shape kShapes[] = {{1, 64, 64},    {3, 1000, 64},   {17, 33, 64},   {300, 257, 64},  {3, 1000, 32},
                         {3, 1000, 128}, {3, 1000, 4096}, {17, 33, 4096}, {1024, 1100, 64}};

template <typename T>
void check_all_quantize() {
  uint64_t seed = 1;
  for (const Shape& s : kShapes) {
    check_quantize<T>(s.rows, s.cols, s.blocksize, true, OffsetMean::kExact, seed++);
    check_quantize<T>(s.rows, s.cols, s.blocksize, false, OffsetMean::kExact, seed++);
  }
  check_quantize<T>(300, 257, 64, true, OffsetMean::kTorchCpu, seed++);
  check_quantize<T>(1024, 1100, 64, true, OffsetMean::kTorchCpu, seed++);
}

}  // namespace

TEST(nf4_quantize_fp32_is_byte_identical_to_the_cpu) { check_all_quantize<float>(); }

TEST(nf4_quantize_bf16_is_byte_identical_to_the_cpu) { check_all_quantize<bf16>(); }

TEST(nf4_dequantize_is_bit_identical_to_the_cpu) {
  uint64_t seed = 500;
  for (const Shape& s : kShapes) {
    check_dequantize<float>(s.rows, s.cols, s.blocksize, true, false, seed++);
    check_dequantize<float>(s.rows, s.cols, s.blocksize, false, false, seed++);
    check_dequantize<bf16>(s.rows, s.cols, s.blocksize, true, false, seed++);
  }
  check_dequantize<float>(300, 257, 64, true, true, seed++);
  check_dequantize<bf16>(17, 33, 64, true, true, seed++);
  check_dequantize<bf16>(3, 1000, 64, false, false, seed++);
}

TEST(nf4_quantize_refuses_what_the_cpu_refuses) {
  Nf4DeviceQuantized out;
  DeviceArray<uint8_t> packed(1000);
  DeviceArray<float> absmax(100);
  DeviceArray<uint8_t> absmax_q(100);
  DeviceArray<float> absmax2(4);
  out.packed = packed.get();
  out.absmax = absmax.get();
  out.absmax_q = absmax_q.get();
  out.absmax2 = absmax2.get();
  float offset = 0;

  std::vector<float> x = random_values(2000, 9);
  Nf4Options bad_block;
  bad_block.blocksize = 48;
  DeviceArray<float> dx(x);
  CHECK(fails_with(attune::cuda::nf4_quantize<float>(dx.get(), 2000, bad_block, out, &offset, nullptr),
                   "NF4 block size 48 is not supported"));
  CHECK(fails_with(attune::cuda::nf4_quantize<float>(dx.get(), 0, Nf4Options(), out, &offset, nullptr),
                   "no elements to quantize"));

  // The first non-finite value is named by its flat index, with the CPU's message.
  x[777] = std::numeric_limits<float>::quiet_NaN();
  x[900] = std::numeric_limits<float>::infinity();
  x[1500] = std::numeric_limits<float>::quiet_NaN();
  DeviceArray<float> bad(x);
  const attune::Status gpu = attune::cuda::nf4_quantize<float>(bad.get(), 2000, Nf4Options(), out, &offset, nullptr);
  Nf4Quantized q;
  const attune::Status cpu = attune::quant::nf4_quantize(x.data(), 2000, Nf4Options(), nullptr, &q);
  CHECK(fails_with(gpu, "at flat index 777"));
  CHECK(gpu.message() == cpu.message());

  std::vector<float> y = random_values(300, 10);
  y[5] = -std::numeric_limits<float>::infinity();
  DeviceArray<bf16> by(y);
  CHECK(fails_with(attune::cuda::nf4_quantize<bf16>(by.get(), 300, Nf4Options(), out, &offset, nullptr),
                   "at flat index 5;"));
  expect_no_cuda_error();
}

TEST(nf4_dequantize_refuses_rows_outside_the_weight) {
  DeviceArray<uint8_t> packed(8);
  DeviceArray<float> code(std::vector<float>(attune::quant::nf4_code().begin(), attune::quant::nf4_code().end()));
  DeviceArray<float> absmax(std::vector<float>{1.0f});
  Nf4DeviceView w;
  w.packed = packed.get();
  w.rows = 2;
  w.cols = 8;
  w.code = code.get();
  w.absmax = absmax.get();
  DeviceArray<float> dst(16);
  CHECK(!attune::cuda::nf4_dequantize_rows<float>(w, 0, 3, Nf4Round::kNone, dst.get(), nullptr).ok());
  CHECK(!attune::cuda::nf4_dequantize_rows<float>(w, 2, 1, Nf4Round::kNone, dst.get(), nullptr).ok());
  CHECK(!attune::cuda::nf4_dequantize_rows<float>(w, 0, 2, Nf4Round::kNone, nullptr, nullptr).ok());
  CHECK(attune::cuda::nf4_dequantize_rows<float>(w, 1, 1, Nf4Round::kNone, nullptr, nullptr).ok());
  expect_no_cuda_error();
}
