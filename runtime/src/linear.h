// y[m, rows] = x[m, cols] · Wᵀ (+ bias) through kernels::matmul_ref, straight from the stored
// (possibly quantized) weight, split over output rows across the pool.
#pragma once

#include <cstddef>

#include "qmodel/kernels/ref.h"

namespace qmodel {
class ThreadPool;
}  // namespace qmodel

namespace qmodel::runtime {

void linear(ThreadPool& pool, const float* x, size_t m, const kernels::WeightView& w, const float* bias, float* y);

}  // namespace qmodel::runtime
