// Element-wise and normalisation ops of the CPU backend (fp32 activations).
#pragma once

#include <cstddef>
#include <vector>

#include "qmodel/kernels/ref.h"

namespace qmodel::runtime {

// A 1-D weight (norm weight, bias) as fp32: a pointer into the mapping when stored F32, else
// dequantized into `scratch` for this use only (O(hidden), so no copy of the weights is kept).
// nullptr when the view is absent.
const float* vector_f32(const kernels::WeightView& w, std::vector<float>& scratch);

// HF LlamaRMSNorm per row of x[m, n]: out = weight * x / sqrt(mean(x^2) + eps), fp32 with the
// mean of squares accumulated in double. out may alias x.
void rmsnorm_rows(const float* x, size_t m, size_t n, const float* weight, float eps, float* out);

// gate[i] = silu(gate[i]) * up[i] (SwiGLU), silu(x) = x / (1 + exp(-x)).
void silu_mul(float* gate, const float* up, size_t n);

// x[i] += y[i] (residual connections).
void add_inplace(float* x, const float* y, size_t n);

}  // namespace qmodel::runtime
