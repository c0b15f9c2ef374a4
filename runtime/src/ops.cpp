#include "ops.h"

#include <cmath>
#include <cstring>

namespace qmodel::runtime {

const float* vector_f32(const kernels::WeightView& w, std::vector<float>& scratch) {
  if (w.data == nullptr) return nullptr;
  if (w.storage == StorageType::kF32) return static_cast<const float*>(w.data);
  const size_t n = w.rows * w.cols;
  scratch.resize(n);
  kernels::dequantize_ref(w, 0, n, scratch.data());
  return scratch.data();
}

void rmsnorm_rows(const float* x, size_t m, size_t n, const float* weight, float eps, float* out) {
  for (size_t r = 0; r < m; ++r) {
    const float* xr = x + r * n;
    float* o = out + r * n;
    double sum_sq = 0.0;
    for (size_t i = 0; i < n; ++i) sum_sq += static_cast<double>(xr[i]) * xr[i];
    const float variance = static_cast<float>(sum_sq / static_cast<double>(n));
    const float inv = 1.0f / std::sqrt(variance + eps);  // torch.rsqrt(variance + eps)
    for (size_t i = 0; i < n; ++i) o[i] = weight[i] * (xr[i] * inv);
  }
}

void layernorm_rows(const float* x, size_t m, size_t n, const float* weight, const float* bias, float eps, float* out) {
  for (size_t r = 0; r < m; ++r) {
    const float* xr = x + r * n;
    float* o = out + r * n;
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += xr[i];
    const double mean = sum / static_cast<double>(n);
    double sum_sq = 0.0;
    for (size_t i = 0; i < n; ++i) {
      const double d = xr[i] - mean;
      sum_sq += d * d;
    }
    const float mean_f = static_cast<float>(mean);
    const float inv = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(n) + eps));
    for (size_t i = 0; i < n; ++i) {
      float v = (xr[i] - mean_f) * inv;
      if (weight != nullptr) v *= weight[i];
      if (bias != nullptr) v += bias[i];
      o[i] = v;
    }
  }
}

void norm_rows(format::NormKind kind, const float* x, size_t m, size_t n, const float* weight, const float* bias,
               float eps, float* out) {
  if (kind == format::NormKind::kLayerNorm) {
    layernorm_rows(x, m, n, weight, bias, eps, out);
  } else {
    rmsnorm_rows(x, m, n, weight, eps, out);
  }
}

float activate(format::Activation act, float x) {
  switch (act) {
    case format::Activation::kSilu: return x / (1.0f + std::exp(-x));
    case format::Activation::kGeluExact: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case format::Activation::kGeluTanh:
      return 0.5f * x * (1.0f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case format::Activation::kRelu: return x > 0.0f ? x : 0.0f;
  }
  return x;
}

void activation_mul(format::Activation act, float* gate, const float* up, size_t n) {
  if (act == format::Activation::kSilu && up != nullptr) return silu_mul(gate, up, n);
  for (size_t i = 0; i < n; ++i) gate[i] = up != nullptr ? activate(act, gate[i]) * up[i] : activate(act, gate[i]);
}

void silu_mul(float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add_inplace(float* x, const float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
}

void split_qkv(format::QkvLayout layout, const float* qkv, size_t m, size_t n_heads, size_t n_kv, size_t head_dim,
               float* q, float* k, float* v) {
  const size_t d = head_dim, q_dim = n_heads * d, kv_dim = n_kv * d, row = q_dim + 2 * kv_dim;
  const size_t bytes = d * sizeof(float);
  for (size_t t = 0; t < m; ++t) {
    const float* src = qkv + t * row;
    float* qt = q + t * q_dim;
    float* kt = k + t * kv_dim;
    float* vt = v + t * kv_dim;
    switch (layout) {
      case format::QkvLayout::kSeparate:
      case format::QkvLayout::kConcat:
        std::memcpy(qt, src, q_dim * sizeof(float));
        std::memcpy(kt, src + q_dim, kv_dim * sizeof(float));
        std::memcpy(vt, src + q_dim + kv_dim, kv_dim * sizeof(float));
        break;
      case format::QkvLayout::kPerHead:  // [n_heads, 3, d]; n_kv == n_heads
        for (size_t h = 0; h < n_heads; ++h) {
          std::memcpy(qt + h * d, src + (3 * h) * d, bytes);
          std::memcpy(kt + h * d, src + (3 * h + 1) * d, bytes);
          std::memcpy(vt + h * d, src + (3 * h + 2) * d, bytes);
        }
        break;
      case format::QkvLayout::kGroupedKv: {  // [n_kv, group + 2, d]
        const size_t group = n_heads / n_kv;
        for (size_t g = 0; g < n_kv; ++g) {
          const float* base = src + g * (group + 2) * d;
          std::memcpy(qt + g * group * d, base, group * bytes);
          std::memcpy(kt + g * d, base + group * d, bytes);
          std::memcpy(vt + g * d, base + (group + 1) * d, bytes);
        }
        break;
      }
    }
  }
}

}  // namespace qmodel::runtime
