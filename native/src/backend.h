// A compute backend: one implementation per kind of device, behind one interface (ggml-style), so
// model code calls ops without knowing where they run. Only `cpu` exists so far; `cuda` joins
// with its first ops and must then match `cpu` op by op.
#pragma once

#include <memory>

#include "attune/status.h"

namespace attune {

struct Backend {
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // c[m,n] = a[m,k] · b[k,n]; row-major fp32, c is overwritten.
  virtual Status matmul_f32(const float* a, const float* b, float* c, int m, int k, int n) = 0;
};

// The readable, multithreaded reference backend; `threads` >= 1.
std::unique_ptr<Backend> make_cpu_backend(unsigned threads);

}  // namespace attune
