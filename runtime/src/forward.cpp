#include "forward.h"

#include <algorithm>
#include <new>
#include <string>

#include "attention.h"
#include "linear.h"
#include "ops.h"
#include "rope.h"
#include "thread_pool.h"

namespace qmodel::runtime {

Result<std::unique_ptr<CpuForward>> CpuForward::create(const format::ModelConfig& config, const ModelWeights& weights,
                                                       ThreadPool& pool, size_t max_context, size_t max_chunk) {
  if (max_context == 0 || max_chunk == 0) {
    return Status(StatusCode::kInvalidArgument, "max context and prefill chunk must be > 0");
  }
  std::unique_ptr<CpuForward> f(new CpuForward(config, weights, pool));
  QMODEL_ASSIGN_OR_RETURN(f->inv_freq_, rope_inv_freq(config));
  f->max_context_ = max_context;
  f->max_chunk_ = max_chunk = std::min(max_chunk, max_context);
  f->q_dim_ = size_t{config.n_heads} * config.head_dim;
  f->kv_dim_ = size_t{config.n_kv_heads} * config.head_dim;
  const size_t h = config.hidden_size, half = config.head_dim / 2;
  try {
    f->k_cache_.assign(config.n_layers * max_context * f->kv_dim_, 0.0f);
    f->v_cache_.assign(config.n_layers * max_context * f->kv_dim_, 0.0f);
    f->x_.resize(max_chunk * h);
    f->xn_.resize(max_chunk * h);
    f->q_.resize(max_chunk * f->q_dim_);
    f->att_.resize(max_chunk * std::max(f->q_dim_, h));  // also holds o_proj / down_proj outputs
    f->k_.resize(max_chunk * f->kv_dim_);
    f->v_.resize(max_chunk * f->kv_dim_);
    f->gate_.resize(max_chunk * config.intermediate_size);
    f->up_.resize(max_chunk * config.intermediate_size);
    f->cos_.resize(max_chunk * half);
    f->sin_.resize(max_chunk * half);
    f->scores_.resize(size_t{pool.size()} * max_context);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "cannot allocate the KV cache (" + std::to_string(max_context) +
                                                " tokens) and workspace; lower the max context");
  } catch (const std::length_error&) {
    return Status(StatusCode::kOutOfMemory, "KV cache size overflows; lower the max context");
  }
  return f;
}

uint64_t CpuForward::scratch_bytes() const {
  size_t n = x_.size() + xn_.size() + q_.size() + k_.size() + v_.size() + att_.size() + gate_.size() + up_.size() +
             cos_.size() + sin_.size() + scores_.size();
  return n * sizeof(float);
}

Status CpuForward::run(const int32_t* ids, size_t m, size_t start, bool all_logits, float* logits) {
  const size_t h = config_.hidden_size, half = config_.head_dim / 2;
  for (size_t t = 0; t < m; ++t) {
    const size_t row = static_cast<size_t>(ids[t]);
    kernels::dequantize_ref(weights_.embed, row * h, h, x_.data() + t * h);
    rope_cos_sin(inv_freq_.data(), half, static_cast<int64_t>(start + t), cos_.data() + t * half, sin_.data() + t * half);
  }
  for (size_t l = 0; l < config_.n_layers; ++l) {
    attention_block(l, m, start);
    mlp_block(l, m);
  }
  // Only the rows whose logits are wanted go through the final norm and lm_head.
  const size_t first = all_logits ? 0 : m - 1, n_rows = m - first;
  rmsnorm_rows(x_.data() + first * h, n_rows, h, vector_f32(weights_.final_norm, vec_a_), config_.rms_norm_eps,
               xn_.data());
  if (logits != nullptr) linear(pool_, xn_.data(), n_rows, weights_.lm_head, nullptr, logits);
  return Status();
}

void CpuForward::attention_block(size_t l, size_t m, size_t start) {
  const LayerWeights& w = weights_.layers[l];
  const size_t h = config_.hidden_size, half = config_.head_dim / 2;
  rmsnorm_rows(x_.data(), m, h, vector_f32(w.attn_norm, vec_a_), config_.rms_norm_eps, xn_.data());
  linear(pool_, xn_.data(), m, w.wq, vector_f32(w.bq, vec_a_), q_.data());
  linear(pool_, xn_.data(), m, w.wk, vector_f32(w.bk, vec_a_), k_.data());
  linear(pool_, xn_.data(), m, w.wv, vector_f32(w.bv, vec_a_), v_.data());
  float* k_cache = k_cache_.data() + l * max_context_ * kv_dim_;
  float* v_cache = v_cache_.data() + l * max_context_ * kv_dim_;
  for (size_t t = 0; t < m; ++t) {
    const float* c = cos_.data() + t * half;
    const float* s = sin_.data() + t * half;
    apply_rope(q_.data() + t * q_dim_, config_.n_heads, config_.head_dim, c, s);
    apply_rope(k_.data() + t * kv_dim_, config_.n_kv_heads, config_.head_dim, c, s);
  }
  std::copy(k_.begin(), k_.begin() + static_cast<ptrdiff_t>(m * kv_dim_), k_cache + start * kv_dim_);
  std::copy(v_.begin(), v_.begin() + static_cast<ptrdiff_t>(m * kv_dim_), v_cache + start * kv_dim_);
  AttentionShape shape;
  shape.n_heads = config_.n_heads;
  shape.n_kv_heads = config_.n_kv_heads;
  shape.head_dim = config_.head_dim;
  shape.sliding_window = config_.sliding_window;
  attention_cpu(pool_, shape, q_.data(), m, start, k_cache, v_cache, scores_.data(), att_.data());
  // o_proj reads att_ and writes xn_ (free again), then the residual add.
  linear(pool_, att_.data(), m, w.wo, vector_f32(w.bo, vec_a_), xn_.data());
  add_inplace(x_.data(), xn_.data(), m * h);
}

void CpuForward::mlp_block(size_t l, size_t m) {
  const LayerWeights& w = weights_.layers[l];
  const size_t h = config_.hidden_size, inter = config_.intermediate_size;
  rmsnorm_rows(x_.data(), m, h, vector_f32(w.mlp_norm, vec_a_), config_.rms_norm_eps, xn_.data());
  linear(pool_, xn_.data(), m, w.w_gate, vector_f32(w.b_gate, vec_a_), gate_.data());
  linear(pool_, xn_.data(), m, w.w_up, vector_f32(w.b_up, vec_b_), up_.data());
  silu_mul(gate_.data(), up_.data(), m * inter);
  linear(pool_, gate_.data(), m, w.w_down, vector_f32(w.b_down, vec_a_), att_.data());
  add_inplace(x_.data(), att_.data(), m * h);
}

}  // namespace qmodel::runtime
