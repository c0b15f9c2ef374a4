#include "rope.h"

#include <cmath>
#include <string>

namespace qmodel::runtime {

Result<std::vector<float>> rope_inv_freq(const format::ModelConfig& c, size_t rotary_dim) {
  if (rotary_dim == 0 || rotary_dim % 2 != 0 || rotary_dim > c.head_dim) {
    return Status(StatusCode::kCorruptFile, "rotary dims " + std::to_string(rotary_dim) +
                                                " must be even, > 0 and <= head_dim " + std::to_string(c.head_dim));
  }
  const size_t half = rotary_dim / 2;
  std::vector<float> inv(half);
  for (size_t i = 0; i < half; ++i) {
    // Same fp32 steps as torch: exponent arange(0, d, 2).float() / d, base ** exponent, 1 / that.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
    inv[i] = 1.0f / std::pow(c.rope_theta, exponent);
  }
  const format::RopeScaling& s = c.rope_scaling;
  auto bad = [](const std::string& what) { return Status(StatusCode::kCorruptFile, "rope_scaling: " + what); };
  if (s.type.empty() || s.type == "default") return inv;
  if (!(s.factor > 0.0f) || !std::isfinite(s.factor)) return bad("factor must be a finite value > 0");
  if (s.type == "linear") {
    for (float& f : inv) f /= s.factor;
    return inv;
  }
  if (s.type == "llama3") {
    if (s.original_max_position_embeddings == 0) return bad("llama3 needs original_max_position_embeddings");
    if (!(s.high_freq_factor > s.low_freq_factor) || !(s.low_freq_factor > 0.0f)) {
      return bad("llama3 needs 0 < low_freq_factor < high_freq_factor");
    }
    const float old_context = static_cast<float>(s.original_max_position_embeddings);
    const float low_freq_wavelen = old_context / s.low_freq_factor;
    const float high_freq_wavelen = old_context / s.high_freq_factor;
    constexpr float kTwoPi = static_cast<float>(2.0 * 3.14159265358979323846);
    for (float& f : inv) {
      const float wavelen = kTwoPi / f;
      if (wavelen < high_freq_wavelen) continue;  // high frequency: kept
      if (wavelen > low_freq_wavelen) {           // low frequency: scaled like linear
        f /= s.factor;
        continue;
      }
      const float smooth = (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      f = (1.0f - smooth) * f / s.factor + smooth * f;
    }
    return inv;
  }
  return Status(StatusCode::kUnsupported, "rope_scaling type '" + s.type + "' is not supported (default, linear, llama3)");
}

void rope_cos_sin(const float* inv_freq, size_t half, int64_t pos, float* cos_out, float* sin_out) {
  const float p = static_cast<float>(pos);
  for (size_t i = 0; i < half; ++i) {
    const float angle = p * inv_freq[i];
    cos_out[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
    sin_out[i] = static_cast<float>(std::sin(static_cast<double>(angle)));
  }
}

void apply_rope(float* x, size_t n_heads, size_t head_dim, size_t rotary_dim, const float* cos_half,
                const float* sin_half) {
  const size_t half = rotary_dim / 2;
  for (size_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (size_t i = 0; i < half; ++i) {
      const float x1 = v[i], x2 = v[i + half];
      v[i] = x1 * cos_half[i] - x2 * sin_half[i];
      v[i + half] = x2 * cos_half[i] + x1 * sin_half[i];
    }
  }
}

}  // namespace qmodel::runtime
