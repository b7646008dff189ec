// AdamW and gradient clipping on the GPU (ops_optimizer.h). All of it is memory-bound elementwise
// work, plus one deterministic reduction (the squared gradient norm).
//
// Rounding: nvcc contracts a·b + c into one FMA by default, which the CPU code (compiled with
// -ffp-contract=off) never does except where it calls std::fma. Every fp32 operation below that
// must match the CPU is therefore written with its round-to-nearest intrinsic (__fmul_rn, __fadd_rn,
// __fsub_rn, __fdiv_rn, __fsqrt_rn: never contracted, IEEE-rounded whatever -prec-div/-prec-sqrt
// say), and std::fma is __fmaf_rn. No kernel here is compiled with flush-to-zero (no fast math),
// so subnormals are kept as on the CPU.
#include "cuda/ops_optimizer.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "cuda/cuda_status.h"
#include "cuda/dtype.cuh"
#include "cuda/reduce.cuh"
#include "train/adamw.h"

namespace attune::cuda {

namespace {

constexpr unsigned kThreads = 256;
constexpr long long kMaxBlocks = 1 << 16;

// Partial sums per tensor in grad_sum_squares (blocks per tensor: the grid is (kPartials, tensors
// of the group)); tensors per launch (their pointers travel in the kernel's parameters).
constexpr unsigned kPartials = 64;
constexpr int kGroup = 32;

// --- AdamW

// One element per thread-iteration, line for line train/adamw.cpp's update(). Each element is
// read completely before it is written, by one thread only.
__global__ void adamw_kernel(train::AdamWStepScalars s, float* param, const float* __restrict__ grad, float* exp_avg,
                             float* exp_avg_sq, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    float p = param[i];
    if (s.decay) p = __fmul_rn(p, s.decay_factor);
    const float g = grad[i];
    const float m_old = exp_avg[i];
    const float diff = __fsub_rn(g, m_old);
    // torch's lerp: m + w·(g − m) for small weights, g − (1 − w)·(g − m) otherwise, each one FMA.
    const float m = s.w1_small ? __fmaf_rn(s.w1, diff, m_old) : __fmaf_rn(__fsub_rn(s.w1, 1.0f), diff, g);
    // v·β2 (mul_), then addcmul_(g, g, 1 − β2) fused: fma((1 − β2)·g, g, v·β2).
    const float v = __fmaf_rn(__fmul_rn(s.w2, g), g, __fmul_rn(exp_avg_sq[i], s.beta2));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bc2_sqrt), s.eps);
    param[i] = __fadd_rn(p, __fdiv_rn(__fmul_rn(s.neg_step_size, m), denom));
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

// --- Gradient clipping

// Up to kGroup tensors, passed by value in the kernel parameters (kGroup · 16 bytes).
struct GradGroup {
  float* data[kGroup];
  int64_t numel[kGroup];
};

// grid = (kPartials, tensors in the group): block (b, t) sums the squares of tensor t's elements
// b·blockDim + k·kPartials·blockDim + thread (a fixed split) and writes partials[t·kPartials + b].
// Squares of fp32 values are exact in double; the sums round in double.
__global__ void sum_squares_kernel(GradGroup group, double* partials) {
  __shared__ double shared[kMaxWarpsPerBlock];
  const unsigned t = blockIdx.y;
  const float* x = group.data[t];
  const int64_t n = group.numel[t];
  double s = 0.0;
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const double v = static_cast<double>(x[i]);
    s += v * v;
  }
  const double total = block_sum(s, shared);
  if (threadIdx.x == 0) partials[static_cast<int64_t>(t) * kPartials + blockIdx.x] = total;
}

// One block: Σ partials[count] in a fixed order → *out.
__global__ void sum_partials_kernel(const double* partials, int64_t count, double* out) {
  __shared__ double shared[kMaxWarpsPerBlock];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
  const double total = block_sum(s, shared);
  if (threadIdx.x == 0) *out = total;
}

// One thread: train/grad_clip.cpp's clip_grad_norm from its total on, operation for operation.
__global__ void clip_coef_kernel(const double* sum_squares, float shift, float max_norm, float* total_norm,
                                 float* coef) {
  const float total = __double2float_rn(sqrt(*sum_squares));
  const float shifted = __fadd_rn(total, shift);
  const float reciprocal = __fdiv_rn(1.0f, shifted);
  const float clip = __fmul_rn(reciprocal, max_norm);
  // std::min(clip, 1.0f) is (1 < clip ? 1 : clip): a NaN clip stays NaN, as torch.clamp keeps it
  // (fminf would return 1).
  *coef = 1.0f < clip ? 1.0f : clip;
  if (total_norm != nullptr) *total_norm = total;
}

// grid = (blocks, tensors in the group); each block strides over its tensor.
__global__ void scale_kernel(GradGroup group, const float* coef) {
  const unsigned t = blockIdx.y;
  float* x = group.data[t];
  const int64_t n = group.numel[t];
  const float c = *coef;
  for (int64_t i = first_index(); i < n; i += grid_stride()) x[i] = __fmul_rn(x[i], c);
}

// Checks the host array of descriptors.
Status check_grads(const char* op, const DeviceGrad* grads, int64_t count) {
  if (count < 0) return Status::invalid_argument(std::string(op) + ": negative tensor count");
  if (count > 0 && grads == nullptr) return Status::invalid_argument(std::string(op) + ": null tensor list");
  for (int64_t i = 0; i < count; ++i) {
    if (grads[i].numel < 0) {
      return Status::invalid_argument(std::string(op) + ": tensor " + std::to_string(i) + " has a negative size");
    }
    if (grads[i].numel > 0 && grads[i].data == nullptr) {
      return Status::invalid_argument(std::string(op) + ": tensor " + std::to_string(i) + " has a null device pointer");
    }
  }
  return Status();
}

// The tensors [first, first + size) of `grads` as a group, and the largest numel among them.
GradGroup make_group(const DeviceGrad* grads, int64_t first, int size, int64_t* max_numel) {
  GradGroup group{};
  *max_numel = 0;
  for (int k = 0; k < size; ++k) {
    group.data[k] = grads[first + k].data;
    group.numel[k] = grads[first + k].numel;
    *max_numel = std::max(*max_numel, grads[first + k].numel);
  }
  return group;
}

}  // namespace

Status adamw_step(const train::AdamWOptions& options, double lr, int64_t step, float* param, const float* grad,
                  float* exp_avg, float* exp_avg_sq, int64_t n, cudaStream_t stream) {
  if (n < 0) return Status::invalid_argument("adamw_step: negative size");
  if (step < 1) return Status::invalid_argument("adamw_step: the step count starts at 1");
  if (n == 0) return Status();
  if (!param || !grad || !exp_avg || !exp_avg_sq) return Status::invalid_argument("adamw_step: null device pointer");
  const train::AdamWStepScalars s = train::adamw_step_scalars(options, lr, step);
  const unsigned blocks = static_cast<unsigned>(std::min<long long>(blocks_for(n, kThreads), kMaxBlocks));
  adamw_kernel<<<blocks, kThreads, 0, stream>>>(s, param, grad, exp_avg, exp_avg_sq, n);
  return check_launch("adamw_step");
}

int64_t grad_sum_squares_workspace(int64_t count) { return count > 0 ? count * kPartials : 0; }

Status grad_sum_squares(const DeviceGrad* grads, int64_t count, double* workspace, double* sum_squares,
                        cudaStream_t stream) {
  ATTUNE_CUDA_TRY(check_grads("grad_sum_squares", grads, count));
  if (sum_squares == nullptr || (count > 0 && workspace == nullptr)) {
    return Status::invalid_argument("grad_sum_squares: null device pointer");
  }
  for (int64_t first = 0; first < count; first += kGroup) {
    const int size = static_cast<int>(std::min<int64_t>(kGroup, count - first));
    int64_t max_numel = 0;
    const GradGroup group = make_group(grads, first, size, &max_numel);
    // Always kPartials blocks per tensor, even for tiny tensors (their blocks write 0): the
    // workspace layout, and so the summation order, depends on the count alone.
    sum_squares_kernel<<<dim3(kPartials, static_cast<unsigned>(size)), kThreads, 0, stream>>>(
        group, workspace + first * kPartials);
    ATTUNE_CUDA_TRY(check_launch("grad_sum_squares"));
  }
  sum_partials_kernel<<<1, kThreads, 0, stream>>>(workspace, grad_sum_squares_workspace(count), sum_squares);
  return check_launch("grad_sum_squares (final sum)");
}

Status grad_clip_coef(const double* sum_squares, double max_norm, float* total_norm, float* coef,
                      cudaStream_t stream) {
  if (sum_squares == nullptr || coef == nullptr) return Status::invalid_argument("grad_clip_coef: null device pointer");
  // The fp32 scalars of the CPU's expression, rounded on the host exactly as there.
  clip_coef_kernel<<<1, 1, 0, stream>>>(sum_squares, static_cast<float>(1e-6), static_cast<float>(max_norm),
                                        total_norm, coef);
  return check_launch("grad_clip_coef");
}

Status grad_scale(const DeviceGrad* grads, int64_t count, const float* coef, cudaStream_t stream) {
  ATTUNE_CUDA_TRY(check_grads("grad_scale", grads, count));
  if (count > 0 && coef == nullptr) return Status::invalid_argument("grad_scale: null device pointer");
  for (int64_t first = 0; first < count; first += kGroup) {
    const int size = static_cast<int>(std::min<int64_t>(kGroup, count - first));
    int64_t max_numel = 0;
    const GradGroup group = make_group(grads, first, size, &max_numel);
    if (max_numel == 0) continue;
    const unsigned blocks = static_cast<unsigned>(std::min<long long>(blocks_for(max_numel, kThreads), 1024));
    scale_kernel<<<dim3(blocks, static_cast<unsigned>(size)), kThreads, 0, stream>>>(group, coef);
    ATTUNE_CUDA_TRY(check_launch("grad_scale"));
  }
  return Status();
}

}  // namespace attune::cuda
