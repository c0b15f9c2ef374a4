#include "ops.h"

#include <cmath>

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

void silu_mul(float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add_inplace(float* x, const float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace qmodel::runtime
