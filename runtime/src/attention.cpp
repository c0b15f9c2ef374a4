#include "attention.h"

#include <cmath>
#include <limits>

#include "qmodel/format/half.h"
#include "qmodel/thread_pool.h"

namespace qmodel::runtime {

float alibi_bias(const AttentionShape& s, float slope, size_t key_position) {
  const float j = static_cast<float>(key_position);
  if (!s.alibi_scaled) return slope * j;
  // Falcon: bf16(bf16(slope) * j), then divided by sqrt(head_dim) in fp32 (build_alibi_tensor).
  const float rounded_slope = bf16_to_float(float_to_bf16(slope));
  return bf16_to_float(float_to_bf16(rounded_slope * j)) / std::sqrt(static_cast<float>(s.head_dim));
}

void attention_head(const AttentionShape& s, const float* q_head, size_t pos, const float* k_cache,
                    const float* v_cache, size_t head, float* scores, float* out_head) {
  const size_t kv_head = head / (s.n_heads / s.n_kv_heads);
  const size_t d = s.head_dim, kv_stride = s.n_kv_heads * d;
  const size_t first = (s.sliding_window != 0 && pos + 1 > s.sliding_window) ? pos + 1 - s.sliding_window : 0;
  const float scale = attention_scale(s);
  const float slope = s.alibi_slopes != nullptr ? s.alibi_slopes[head] : 0.0f;
  float max_score = -std::numeric_limits<float>::infinity();
  for (size_t j = first; j <= pos; ++j) {
    const float* k = k_cache + j * kv_stride + kv_head * d;
    float dot = 0.0f;
    for (size_t i = 0; i < d; ++i) dot += q_head[i] * k[i];
    scores[j] = dot * scale;
    if (s.alibi_slopes != nullptr) scores[j] += alibi_bias(s, slope, j);
    if (scores[j] > max_score) max_score = scores[j];
  }
  double sum = 0.0;
  for (size_t j = first; j <= pos; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    sum += scores[j];
  }
  const float inv_sum = static_cast<float>(1.0 / sum);
  for (size_t i = 0; i < d; ++i) out_head[i] = 0.0f;
  for (size_t j = first; j <= pos; ++j) {
    const float p = scores[j] * inv_sum;
    const float* v = v_cache + j * kv_stride + kv_head * d;
    for (size_t i = 0; i < d; ++i) out_head[i] += p * v[i];
  }
}

void attention_cpu(ThreadPool& pool, const AttentionShape& s, const float* q, size_t m, size_t start,
                   const float* k_cache, const float* v_cache, float* scores, float* out) {
  const size_t q_stride = s.n_heads * s.head_dim, ctx = start + m;
  pool.parallel_for_ranges(m * s.n_heads, [&](unsigned worker, size_t begin, size_t end) {
    float* my_scores = scores + worker * ctx;
    for (size_t task = begin; task < end; ++task) {
      const size_t t = task / s.n_heads, h = task % s.n_heads;
      attention_head(s, q + t * q_stride + h * s.head_dim, start + t, k_cache, v_cache, h, my_scores,
                     out + t * q_stride + h * s.head_dim);
    }
  });
}

}  // namespace qmodel::runtime
