#include "attention.h"

#include <cmath>
#include <limits>

#include "thread_pool.h"

namespace qmodel::runtime {

void attention_head(const AttentionShape& s, const float* q_head, size_t pos, const float* k_cache,
                    const float* v_cache, size_t kv_head, float* scores, float* out_head) {
  const size_t d = s.head_dim, kv_stride = s.n_kv_heads * d;
  const size_t first = (s.sliding_window != 0 && pos + 1 > s.sliding_window) ? pos + 1 - s.sliding_window : 0;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  float max_score = -std::numeric_limits<float>::infinity();
  for (size_t j = first; j <= pos; ++j) {
    const float* k = k_cache + j * kv_stride + kv_head * d;
    float dot = 0.0f;
    for (size_t i = 0; i < d; ++i) dot += q_head[i] * k[i];
    scores[j] = dot * scale;
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
  const size_t group = s.n_heads / s.n_kv_heads, q_stride = s.n_heads * s.head_dim, ctx = start + m;
  pool.parallel_for(m * s.n_heads, [&](unsigned worker, size_t begin, size_t end) {
    float* my_scores = scores + worker * ctx;
    for (size_t task = begin; task < end; ++task) {
      const size_t t = task / s.n_heads, h = task % s.n_heads;
      attention_head(s, q + t * q_stride + h * s.head_dim, start + t, k_cache, v_cache, h / group, my_scores,
                     out + t * q_stride + h * s.head_dim);
    }
  });
}

}  // namespace qmodel::runtime
