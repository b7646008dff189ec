// bitsandbytes' dQuantize<0> (not stochastic), line for line: the index of the 256-entry ascending
// map nearest to x, by a binary search that ends on a pivot and then a choice between the pivot and
// the neighbour bracketing x by the fp32 midpoint. Shared by quant/nf4.cpp and cuda/ops_nf4.cu so
// both pick the same index for every x, NaN included (an add then a multiply: nothing a compiler
// could fuse).
#pragma once

#include "host_device.h"

namespace attune::quant {

ATTUNE_HOST_DEVICE inline unsigned dynamic_index_of(const float* map, float x) {
  int pivot = 127;
  int upper_pivot = 255;
  int lower_pivot = 0;
  float lower = -1.0f;
  float upper = 1.0f;
  float val = map[pivot];
  for (int step = 64; step > 0; step >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += step;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= step;
    }
    val = map[pivot];
  }
  if (upper_pivot == 255) upper = map[upper_pivot];
  if (lower_pivot == 0) lower = map[lower_pivot];
  if (x > val) {
    const float midpoint = (upper + val) * 0.5f;
    return static_cast<unsigned>(x > midpoint ? upper_pivot : pivot);
  }
  const float midpoint = (lower + val) * 0.5f;
  return static_cast<unsigned>(x < midpoint ? lower_pivot : pivot);
}

}  // namespace attune::quant
