// Element-wise and normalisation ops of the CPU backend (fp32 activations). These are the
// references the CUDA backend's device ops (runtime/cuda/ops.h) are tested against.
#pragma once

#include <cstddef>
#include <vector>

#include "qmodel/format/architecture.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::runtime {

// A 1-D weight (norm weight, bias) as fp32: a pointer into the mapping when stored F32, else
// dequantized into `scratch` for this use only (O(hidden), so no copy of the weights is kept).
// nullptr when the view is absent.
const float* vector_f32(const kernels::WeightView& w, std::vector<float>& scratch);

// HF LlamaRMSNorm per row of x[m, n]: out = weight * x / sqrt(mean(x^2) + eps), fp32 with the
// mean of squares accumulated in double. out may alias x.
void rmsnorm_rows(const float* x, size_t m, size_t n, const float* weight, float eps, float* out);

// torch.nn.LayerNorm per row of x[m, n]: (x - mean) / sqrt(var + eps) * weight + bias, biased
// variance, mean and variance accumulated in double. weight / bias may be nullptr (no affine part).
// out may alias x.
void layernorm_rows(const float* x, size_t m, size_t n, const float* weight, const float* bias, float eps, float* out);

// The architecture's norm (RMSNorm or LayerNorm) on rows of x; out may alias x.
void norm_rows(format::NormKind kind, const float* x, size_t m, size_t n, const float* weight, const float* bias,
               float eps, float* out);

// act(x) as transformers computes it in fp32: SiLU x / (1 + exp(-x)); GELU exact 0.5 x (1 +
// erf(x / sqrt 2)); GELU tanh 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); ReLU max(x, 0).
float activate(format::Activation act, float x);

// gate[i] = act(gate[i]) * up[i] (gated MLP; SiLU = SwiGLU). up == nullptr: gate[i] = act(gate[i]).
void activation_mul(format::Activation act, float* gate, const float* up, size_t n);

// gate[i] = silu(gate[i]) * up[i] (SwiGLU), silu(x) = x / (1 + exp(-x)).
void silu_mul(float* gate, const float* up, size_t n);

// x[i] += y[i] (residual connections).
void add_inplace(float* x, const float* y, size_t n);

// Splits the fused qkv projection of m tokens, qkv [m, (n_heads + 2 n_kv) * d], into q [m,
// n_heads * d], k and v [m, n_kv * d] according to `layout` (not kSeparate).
void split_qkv(format::QkvLayout layout, const float* qkv, size_t m, size_t n_heads, size_t n_kv, size_t head_dim,
               float* q, float* k, float* v);

}  // namespace qmodel::runtime
