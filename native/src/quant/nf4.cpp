#include "quant/nf4.h"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>

#include "quant/dynamic_index.h"
#include "tensor/convert.h"

namespace attune::quant {

namespace {

constexpr std::array<float, 16> kNf4Code = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

// dQuantizeNF4's float literals, in ascending order.
constexpr std::array<float, 15> kNf4Thresholds = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f,  0.2035212516784668f,  0.2920137718319893f,  0.3893125355243683f,
    0.5016634166240692f,  0.6427869200706482f,  0.8614784181118011f,
};

// torch.linspace(0.1, 1, steps) in fp32 as torch's CPU kernel computes it: step = (end − start) /
// (steps − 1) in fp32, then start + step·i below the halfway point and end − step·(steps − i − 1)
// from it, each a single FMA in torch's AVX2/AVX-512 builds (the compiler fuses the expression).
std::vector<float> torch_linspace_f32(float start, float end, int64_t steps) {
  std::vector<float> out(static_cast<size_t>(steps));
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  for (int64_t i = 0; i < steps; ++i) {
    out[static_cast<size_t>(i)] = i < halfway ? std::fma(step, static_cast<float>(i), start)
                                              : std::fma(-step, static_cast<float>(steps - i - 1), end);
  }
  return out;
}

std::array<float, 256> build_dynamic_map_signed() {
  // create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for i = 0..6,
  // fraction_items = 2^i + 1, boundaries = linspace(0.1, 1, fraction_items) (fp32),
  // means = (b[:-1] + b[1:]) / 2 (fp32), data += 10^(i−6) · means and −10^(i−6) · means (the
  // Python scalar becomes an fp32 scalar in torch's mul). additional_items is 0. Then 0 and 1.0,
  // sorted as Python floats, stored as fp32 (exact: every value already is one).
  static constexpr double kScale[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
  std::vector<double> data;
  for (int i = 0; i < 7; ++i) {
    const std::vector<float> b = torch_linspace_f32(0.1f, 1.0f, (int64_t{1} << i) + 1);
    const float scale = static_cast<float>(kScale[i]);
    const float neg_scale = static_cast<float>(-kScale[i]);
    for (size_t k = 0; k + 1 < b.size(); ++k) {
      const float mean = (b[k] + b[k + 1]) / 2.0f;
      data.push_back(static_cast<double>(scale * mean));
      data.push_back(static_cast<double>(neg_scale * mean));
    }
  }
  data.push_back(0.0);
  data.push_back(1.0);
  std::sort(data.begin(), data.end());
  std::array<float, 256> map{};
  for (size_t i = 0; i < map.size(); ++i) map[i] = static_cast<float>(data[i]);
  return map;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Runs fn(begin, end) over [0, count) on the pool, or inline without one.
void parallel(ThreadPool* pool, int64_t count, const std::function<void(int64_t, int64_t)>& fn) {
  if (count <= 0) return;
  if (pool == nullptr || pool->size() <= 1 || count == 1) {
    fn(0, count);
  } else {
    pool->run(count, fn);
  }
}

// bitsandbytes' block absmax: fmaxf over |x| starting from −FLT_MAX. A plain comparison gives the
// same for every non-NaN input (NaN inputs are refused before anything is used), and vectorizes.
float block_absmax(const float* x, int64_t count) {
  float m = -FLT_MAX;
  for (int64_t i = 0; i < count; ++i) {
    const float a = std::fabs(x[i]);
    m = a > m ? a : m;
  }
  return m;
}

// Codes of one block of `count` values (count even except for the very last block of the tensor),
// written from packed[0]; returns the block's absmax. The codes are nf4_index of the scaled values,
// counted 64 at a time with the constants in the outer loop so that the compiler vectorizes it.
float quantize_nf4_block(const float* x, int64_t count, uint8_t* packed) {
  const float absmax = block_absmax(x, count);
  const float r = 1.0f / absmax;
  constexpr int64_t kChunk = 64;
  float scaled[kChunk];
  int32_t codes[kChunk];
  for (int64_t c0 = 0; c0 < count; c0 += kChunk) {
    const int64_t len = std::min(kChunk, count - c0);
    for (int64_t j = 0; j < len; ++j) scaled[j] = x[c0 + j] * r;
    // The kernel loads its padding value 0.0 for the missing partner of an odd last element and
    // quantizes it too.
    const float pad = 0.0f;
    int64_t padded = len;
    if ((len & 1) != 0) scaled[padded++] = pad * r;
    for (int64_t j = 0; j < padded; ++j) codes[j] = 0;
    for (float t : kNf4Thresholds) {
      for (int64_t j = 0; j < padded; ++j) codes[j] += scaled[j] > t ? 1 : 0;
    }
    for (int64_t j = 0; j < padded; j += 2) {
      packed[(c0 + j) >> 1] = static_cast<uint8_t>(codes[j] << 4 | codes[j + 1]);
    }
  }
  return absmax;
}

// A source of fp32 values for the quantizer: copies [begin, begin + count) into buf, or returns a
// pointer to them.
using Loader = std::function<const float*(int64_t begin, int64_t count, float* buf)>;

// Quantizes all blocks; returns the index of the first non-finite value, or −1.
int64_t quantize_all_blocks(const Loader& load, int64_t n, int64_t blocksize, ThreadPool* pool, uint8_t* packed,
                            float* absmax) {
  const int64_t blocks = ceil_div(n, blocksize);
  std::atomic<int64_t> first_bad{std::numeric_limits<int64_t>::max()};
  parallel(pool, blocks, [&](int64_t b0, int64_t b1) {
    std::vector<float> buf(static_cast<size_t>(blocksize));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t begin = b * blocksize;
      const int64_t count = std::min(blocksize, n - begin);
      const float* x = load(begin, count, buf.data());
      for (int64_t i = 0; i < count; ++i) {
        if (!std::isfinite(x[i])) {
          int64_t expected = first_bad.load();
          while (begin + i < expected && !first_bad.compare_exchange_weak(expected, begin + i)) {
          }
          break;
        }
      }
      absmax[b] = quantize_nf4_block(x, count, packed + begin / 2);
    }
  });
  const int64_t bad = first_bad.load();
  return bad == std::numeric_limits<int64_t>::max() ? -1 : bad;
}

Status quantize_impl(const Loader& load, int64_t n, const Nf4Options& options, ThreadPool* pool,
                     const std::string& what, Nf4Quantized* out) {
  if (!nf4_blocksize_supported(options.blocksize)) {
    return Status::invalid_argument("NF4 block size " + std::to_string(options.blocksize) +
                                    " is not supported; bitsandbytes uses a power of two from 32 to 4096 (64 is the default)");
  }
  if (n < 1) return Status::invalid_argument(what + " has no elements to quantize");
  Nf4Quantized q;
  q.numel = n;
  q.blocksize = options.blocksize;
  const int64_t blocks = ceil_div(n, options.blocksize);
  q.packed.assign(static_cast<size_t>(ceil_div(n, 2)), 0);
  q.absmax.assign(static_cast<size_t>(blocks), 0.0f);
  const int64_t bad = quantize_all_blocks(load, n, options.blocksize, pool, q.packed.data(), q.absmax.data());
  if (bad >= 0) {
    return Status::invalid_argument(what + " holds a value that is not finite (NaN or infinity) at flat index " +
                                    std::to_string(bad) + "; a broken weight cannot be quantized");
  }
  if (options.double_quant) {
    q.nested = true;
    q.nested_blocksize = kNf4NestedBlocksize;
    q.offset = options.offset_mean == OffsetMean::kExact ? mean_exact(q.absmax.data(), blocks)
                                                         : mean_torch_cpu(q.absmax.data(), blocks);
    q.absmax_q.assign(static_cast<size_t>(blocks), 0);
    q.absmax2.assign(static_cast<size_t>(ceil_div(blocks, kNf4NestedBlocksize)), 0.0f);
    double_quantize(q.absmax.data(), blocks, q.offset, pool, q.absmax_q.data(), q.absmax2.data());
  }
  *out = std::move(q);
  return {};
}

// Sums rows [0, rows) of 4 × 8 values each (torch's multi_row_sum<Vectorized<float>, 4>), into
// out[4][8].
void torch_multi_row_sum(const float* x, int64_t rows, float out[4][8]) {
  constexpr int kLevels = 4;
  int64_t ceil_log2 = 1;
  if (rows > 2) {
    ceil_log2 = 0;
    for (uint64_t v = static_cast<uint64_t>(rows - 1); v != 0; v >>= 1) ++ceil_log2;
  }
  const int64_t level_power = std::max<int64_t>(4, ceil_log2 / kLevels);
  const int64_t level_step = int64_t{1} << level_power;
  const int64_t level_mask = level_step - 1;
  float acc[kLevels][4][8] = {};
  auto add_row = [&](int64_t i) {
    const float* row = x + i * 32;
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < 8; ++l) acc[0][k][l] += row[k * 8 + l];
    }
  };
  int64_t i = 0;
  while (i + level_step <= rows) {
    for (int64_t j = 0; j < level_step; ++j, ++i) add_row(i);
    for (int j = 1; j < kLevels; ++j) {
      for (int k = 0; k < 4; ++k) {
        for (int l = 0; l < 8; ++l) {
          acc[j][k][l] += acc[j - 1][k][l];
          acc[j - 1][k][l] = 0.0f;
        }
      }
      const int64_t mask = level_mask << (j * level_power);
      if ((i & mask) != 0) break;
    }
  }
  for (; i < rows; ++i) add_row(i);
  for (int j = 1; j < kLevels; ++j) {
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < 8; ++l) acc[0][k][l] += acc[j][k][l];
    }
  }
  std::memcpy(out, acc[0], sizeof(acc[0]));
}

// torch's fp32 sum of a contiguous vector (cascade_sum → vectorized_inner_sum → row_sum).
float torch_sum_f32(const float* x, int64_t n) {
  constexpr int64_t kLanes = 8;
  const int64_t vectors = n / kLanes;
  const int64_t rows = vectors / 4;
  float partial[4][8] = {};
  if (rows > 0) torch_multi_row_sum(x, rows, partial);
  for (int64_t v = rows * 4; v < vectors; ++v) {
    for (int l = 0; l < 8; ++l) partial[0][l] += x[v * kLanes + l];
  }
  for (int k = 1; k < 4; ++k) {
    for (int l = 0; l < 8; ++l) partial[0][l] += partial[k][l];
  }
  float acc = 0.0f;
  for (int64_t i = vectors * kLanes; i < n; ++i) acc += x[i];
  for (int l = 0; l < 8; ++l) acc += partial[0][l];
  return acc;
}

// f32_to_bf16 (round to nearest, ties to even), inlined for the per-block tables; NaN goes the
// shared way.
inline uint16_t round_bf16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return f32_to_bf16(v);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

template <typename T, typename MakeEntry>
void dequantize_span(const Nf4View& w, int64_t begin, int64_t end, T* dst, const MakeEntry& make) {
  const int64_t bs = w.blocksize;
  int64_t e = begin;
  while (e < end) {
    const int64_t block = e / bs;
    const int64_t block_end = std::min(end, (block + 1) * bs);
    const float a = nf4_block_absmax(w, block);
    T lut[16];
    for (int q = 0; q < 16; ++q) lut[q] = make(w.code[q] * a);
    int64_t i = e;
    if ((i & 1) != 0 && i < block_end) {
      *dst++ = lut[w.packed[i >> 1] & 15];
      ++i;
    }
    for (; i + 1 < block_end; i += 2) {
      const uint8_t byte = w.packed[i >> 1];
      dst[0] = lut[byte >> 4];
      dst[1] = lut[byte & 15];
      dst += 2;
    }
    if (i < block_end) {
      *dst++ = lut[w.packed[i >> 1] >> 4];
      ++i;
    }
    e = block_end;
  }
}

}  // namespace

const std::array<float, 16>& nf4_code() { return kNf4Code; }
const std::array<float, 15>& nf4_thresholds() { return kNf4Thresholds; }

const std::array<float, 256>& dynamic_map_signed() {
  static const std::array<float, 256> map = build_dynamic_map_signed();
  return map;
}

bool nf4_blocksize_supported(int64_t blocksize) {
  return blocksize >= 32 && blocksize <= 4096 && (blocksize & (blocksize - 1)) == 0;
}

uint8_t nf4_index(float x) {
  // bitsandbytes' dQuantizeNF4 is a binary tree of `x > t_i` tests over these ascending constants;
  // its leaf is the number of constants below x, counted here without branches (a NaN is below
  // none: 0, as in the tree). tests/test_nf4.cpp checks this against the literal tree.
  int k = 0;
  for (float t : kNf4Thresholds) k += x > t ? 1 : 0;
  return static_cast<uint8_t>(k);
}

uint8_t dynamic_index(const float* map, float x) { return static_cast<uint8_t>(dynamic_index_of(map, x)); }

float mean_exact(const float* x, int64_t n) {
  if (n <= 0) return 0.0f;
  // Double-double accumulation (Knuth's two-sum): hi + lo carries the sum to ~106 bits.
  double hi = 0.0;
  double lo = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(x[i]);
    const double s = hi + v;
    const double bv = s - hi;
    const double err = (hi - (s - bv)) + (v - bv);
    hi = s;
    lo += err;
  }
  const double sum = hi + lo;
  return static_cast<float>(sum / static_cast<double>(n));
}

float mean_torch_cpu(const float* x, int64_t n) {
  if (n <= 0) return 0.0f;
  // torch's mean on the CPU: at::sum_out(...).div_(n), both in fp32.
  return torch_sum_f32(x, n) / static_cast<float>(n);
}

Nf4View view_of(const Nf4Quantized& q, int64_t rows, int64_t cols) {
  Nf4View w;
  w.packed = q.packed.data();
  w.rows = rows;
  w.cols = cols;
  w.blocksize = q.blocksize;
  w.code = nf4_code().data();
  if (q.nested) {
    w.absmax_q = q.absmax_q.data();
    w.absmax2 = q.absmax2.data();
    w.nested_code = dynamic_map_signed().data();
    w.nested_blocksize = q.nested_blocksize;
    w.offset = q.offset;
  } else {
    w.absmax = q.absmax.data();
  }
  return w;
}

void nf4_quantize_blocks(const float* x, int64_t n, int64_t blocksize, ThreadPool* pool, uint8_t* packed,
                         float* absmax) {
  const Loader direct = [x](int64_t begin, int64_t, float*) { return x + begin; };
  quantize_all_blocks(direct, n, blocksize, pool, packed, absmax);
}

void quantize_blockwise8(const float* map, const float* x, int64_t n, int64_t blocksize, ThreadPool* pool,
                         uint8_t* q, float* absmax) {
  parallel(pool, ceil_div(n, blocksize), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t begin = b * blocksize;
      const int64_t count = std::min(blocksize, n - begin);
      const float a = block_absmax(x + begin, count);
      absmax[b] = a;
      const float r = 1.0f / a;
      for (int64_t i = begin; i < begin + count; ++i) q[i] = dynamic_index(map, x[i] * r);
    }
  });
}

void dequantize_blockwise8(const float* map, const uint8_t* q, const float* absmax, int64_t n, int64_t blocksize,
                           float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = map[q[i]] * absmax[i / blocksize];
}

void double_quantize(const float* absmax, int64_t blocks, float offset, ThreadPool* pool, uint8_t* absmax_q,
                     float* absmax2) {
  std::vector<float> centered(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) centered[static_cast<size_t>(b)] = absmax[b] - offset;
  quantize_blockwise8(dynamic_map_signed().data(), centered.data(), blocks, kNf4NestedBlocksize, pool, absmax_q,
                      absmax2);
}

Status nf4_quantize(const float* x, int64_t n, const Nf4Options& options, ThreadPool* pool, Nf4Quantized* out) {
  const Loader direct = [x](int64_t begin, int64_t, float*) { return x + begin; };
  return quantize_impl(direct, n, options, pool, "The weight", out);
}

Status nf4_quantize(const TensorView& tensor, const Nf4Options& options, ThreadPool* pool, Nf4Quantized* out) {
  const std::string what = "Tensor \"" + tensor.name + "\"";
  if (tensor.dtype != DType::kF32 && tensor.dtype != DType::kBF16 && tensor.dtype != DType::kF16) {
    return Status::invalid_argument(what + " has dtype " + std::string(dtype_name(tensor.dtype)) +
                                    "; only F32, BF16 and F16 weights can be quantized to NF4");
  }
  const int64_t n = tensor.numel();
  if (tensor.nbytes != static_cast<size_t>(n) * dtype_size(tensor.dtype)) {
    return Status::invalid_argument(what + " has " + std::to_string(tensor.nbytes) + " bytes of data, not " +
                                    std::to_string(static_cast<size_t>(n) * dtype_size(tensor.dtype)) +
                                    " for its shape " + shape_to_string(tensor.shape));
  }
  const DType dtype = tensor.dtype;
  const uint8_t* data = tensor.data;
  // The view may be unaligned (a memory-mapped file): copy, then widen.
  const Loader load = [dtype, data](int64_t begin, int64_t count, float* buf) -> const float* {
    if (dtype == DType::kF32) {
      std::memcpy(buf, data + begin * 4, static_cast<size_t>(count) * 4);
      return buf;
    }
    uint16_t bits[256];
    for (int64_t done = 0; done < count;) {
      const int64_t chunk = std::min<int64_t>(256, count - done);
      std::memcpy(bits, data + (begin + done) * 2, static_cast<size_t>(chunk) * 2);
      if (dtype == DType::kBF16) {
        bf16_to_f32(bits, buf + done, chunk);
      } else {
        f16_to_f32(bits, buf + done, chunk);
      }
      done += chunk;
    }
    return buf;
  };
  return quantize_impl(load, n, options, pool, what, out);
}

float nf4_block_absmax(const Nf4View& w, int64_t block) {
  if (w.absmax != nullptr) return w.absmax[block];
  // dequantize_blockwise (fp32 product) then `absmax += offset`: two roundings.
  const float scaled = w.nested_code[w.absmax_q[block]] * w.absmax2[block / w.nested_blocksize];
  return scaled + w.offset;
}

void nf4_dequantize_absmax(const Nf4View& w, float* absmax) {
  const int64_t blocks = w.blocks();
  for (int64_t b = 0; b < blocks; ++b) absmax[b] = nf4_block_absmax(w, b);
}

void nf4_dequantize_range(const Nf4View& w, int64_t begin, int64_t end, Nf4Round round, float* dst) {
  switch (round) {
    case Nf4Round::kNone:
      dequantize_span(w, begin, end, dst, [](float v) { return v; });
      break;
    case Nf4Round::kBF16:
      dequantize_span(w, begin, end, dst, [](float v) {
        const uint32_t bits = static_cast<uint32_t>(round_bf16(v)) << 16;
        float out;
        std::memcpy(&out, &bits, 4);
        return out;
      });
      break;
    case Nf4Round::kF16:
      dequantize_span(w, begin, end, dst, [](float v) { return f16_to_f32(f32_to_f16(v)); });
      break;
  }
}

void nf4_dequantize_rows(const Nf4View& w, int64_t r0, int64_t r1, Nf4Round round, float* dst, ThreadPool* pool) {
  const int64_t cols = w.cols;
  parallel(pool, r1 - r0, [&](int64_t a, int64_t b) {
    nf4_dequantize_range(w, (r0 + a) * cols, (r0 + b) * cols, round, dst + a * cols);
  });
}

void nf4_dequantize_rows_16(const Nf4View& w, int64_t r0, int64_t r1, Nf4Round round, uint16_t* dst,
                            ThreadPool* pool) {
  const int64_t cols = w.cols;
  const bool bf16 = round != Nf4Round::kF16;
  parallel(pool, r1 - r0, [&](int64_t a, int64_t b) {
    const int64_t begin = (r0 + a) * cols;
    const int64_t end = (r0 + b) * cols;
    if (bf16) {
      dequantize_span(w, begin, end, dst + a * cols, [](float v) { return round_bf16(v); });
    } else {
      dequantize_span(w, begin, end, dst + a * cols, [](float v) { return f32_to_f16(v); });
    }
  });
}

}  // namespace attune::quant
