// Causal grouped-query attention over the KV cache (CPU, fp32), as HF eager attention:
// scores = q·k * scale (1/sqrt(head_dim) unless stated) with optional ALiBi, softmax in fp32, out = sum p·v. Query head h reads KV head
// h / (n_heads / n_kv_heads) (repeat_kv).
#pragma once

#include <cstddef>
#include <cmath>
#include <cstdint>

namespace qmodel {
class ThreadPool;
}  // namespace qmodel

namespace qmodel::runtime {

struct AttentionShape {
  size_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  size_t sliding_window = 0;  // 0 = none; else a query at p sees keys at p - window < j <= p
  float scale = 0.0f;         // multiplier of q.k; 0 = 1 / sqrt(head_dim)
  // ALiBi (nullptr = none): score(h, j) = q.k * scale + alibi_bias(slopes[h], j): BLOOM adds
  // slopes[h] * j; with alibi_scaled, Falcon-RW adds bf16(bf16(slopes[h]) * j) / sqrt(head_dim).
  const float* alibi_slopes = nullptr;
  bool alibi_scaled = false;
};

// The ALiBi term of key position j for a head of slope `slope` (see AttentionShape).
float alibi_bias(const AttentionShape& s, float slope, size_t key_position);

// The q.k multiplier the shape asks for.
inline float attention_scale(const AttentionShape& s);

// q: [m, n_heads * head_dim], token t at position start + t (RoPE already applied).
// k_cache, v_cache: [>= start + m, n_kv_heads * head_dim], positions 0 .. start + m - 1 filled.
// scores: pool.size() * (start + m) floats of workspace. out: [m, n_heads * head_dim].
void attention_cpu(ThreadPool& pool, const AttentionShape& shape, const float* q, size_t m, size_t start,
                   const float* k_cache, const float* v_cache, float* scores, float* out);

// One (token, query head) of the above, single-threaded: the unit the pool schedules.
void attention_head(const AttentionShape& shape, const float* q_head, size_t pos, const float* k_cache,
                    const float* v_cache, size_t head, float* scores, float* out_head);

inline float attention_scale(const AttentionShape& s) {
  return s.scale != 0.0f ? s.scale : 1.0f / std::sqrt(static_cast<float>(s.head_dim));
}

}  // namespace qmodel::runtime
