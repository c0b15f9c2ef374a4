#include "forward.h"

#include <algorithm>
#include <new>
#include <string>

#include "attention.h"
#include "linear.h"
#include "ops.h"
#include "qmodel/thread_pool.h"
#include "rope.h"

namespace qmodel::runtime {

using format::PositionKind;
using format::ResidualLayout;

Result<std::unique_ptr<CpuForward>> CpuForward::create(const format::ModelConfig& config, const format::ArchSpec& arch,
                                                       const ModelWeights& weights, ThreadPool& pool,
                                                       size_t max_context, size_t max_chunk) {
  if (max_context == 0 || max_chunk == 0) {
    return Status(StatusCode::kInvalidArgument, "max context and prefill chunk must be > 0");
  }
  std::unique_ptr<CpuForward> f(new CpuForward(config, arch, weights, pool));
  if (arch.positions == PositionKind::kRope) {
    QMODEL_ASSIGN_OR_RETURN(f->inv_freq_, rope_inv_freq(config, arch.rotary_dim));
  }
  if (arch.positions == PositionKind::kAlibi) {
    f->alibi_slopes_.resize(config.n_heads);
    format::alibi_slopes(config.n_heads, f->alibi_slopes_.data());
  }
  if (arch.positions == PositionKind::kLearned) {
    const size_t rows = weights.pos_embed.rows;  // > learned_offset: checked when bound
    if (max_context > rows - arch.learned_offset) {
      return Status(StatusCode::kInvalidArgument, "max context " + std::to_string(max_context) +
                                                      " exceeds the model's learned positions (" +
                                                      std::to_string(rows - arch.learned_offset) + ")");
    }
  }
  f->max_context_ = max_context;
  f->max_chunk_ = max_chunk = std::min(max_chunk, max_context);
  f->q_dim_ = size_t{config.n_heads} * config.head_dim;
  f->kv_dim_ = size_t{config.n_kv_heads} * config.head_dim;
  const size_t h = config.hidden_size, half = arch.rotary_dim / 2, e = arch.embed_dim;
  try {
    f->k_cache_.assign(config.n_layers * max_context * f->kv_dim_, 0.0f);
    f->v_cache_.assign(config.n_layers * max_context * f->kv_dim_, 0.0f);
    f->x_.resize(max_chunk * h);
    f->xn_.resize(max_chunk * h);
    f->xn2_.resize(max_chunk * h);
    f->q_.resize(max_chunk * f->q_dim_);
    f->k_.resize(max_chunk * f->kv_dim_);
    f->v_.resize(max_chunk * f->kv_dim_);
    if (arch.qkv != format::QkvLayout::kSeparate) f->qkv_.resize(max_chunk * (f->q_dim_ + 2 * f->kv_dim_));
    f->att_.resize(max_chunk * std::max(f->q_dim_, h));
    f->delta_.resize(max_chunk * h);
    f->gate_.resize(max_chunk * config.intermediate_size);
    f->up_.resize(max_chunk * config.intermediate_size);
    if (arch.project_in_out) f->emb_.resize(max_chunk * e);
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
  size_t n = 0;
  for (const std::vector<float>* v : {&x_, &xn_, &xn2_, &q_, &k_, &v_, &qkv_, &att_, &delta_, &gate_, &up_, &emb_,
                                      &cos_, &sin_, &scores_}) {
    n += v->size();
  }
  return n * sizeof(float);
}

void CpuForward::norm(const kernels::WeightView& weight, const kernels::WeightView& bias, const float* in, size_t m,
                      float* out) {
  norm_rows(arch_.norm, in, m, config_.hidden_size, vector_f32(weight, vec_a_), vector_f32(bias, vec_b_),
            arch_.norm_eps, out);
}

void CpuForward::embed(const int32_t* ids, size_t m, size_t start) {
  const size_t h = config_.hidden_size, e = arch_.embed_dim;
  float* tokens = arch_.project_in_out ? emb_.data() : x_.data();
  for (size_t t = 0; t < m; ++t) {
    kernels::dequantize_ref(weights_.embed, static_cast<size_t>(ids[t]) * e, e, tokens + t * e);
  }
  if (arch_.project_in_out) linear(pool_, emb_.data(), m, weights_.project_in, nullptr, x_.data());
  if (arch_.positions == PositionKind::kLearned) {
    for (size_t t = 0; t < m; ++t) {
      const size_t row = start + t + arch_.learned_offset;  // < rows: max_context checked at create
      kernels::dequantize_ref(weights_.pos_embed, row * h, h, xn_.data());
      add_inplace(x_.data() + t * h, xn_.data(), h);
    }
  }
  if (arch_.embed_norm) norm(weights_.embed_norm, weights_.embed_norm_b, x_.data(), m, x_.data());
  if (arch_.positions == PositionKind::kRope) {
    const size_t half = arch_.rotary_dim / 2;
    for (size_t t = 0; t < m; ++t) {
      rope_cos_sin(inv_freq_.data(), half, static_cast<int64_t>(start + t), cos_.data() + t * half, sin_.data() + t * half);
    }
  }
}

Status CpuForward::run(const int32_t* ids, size_t m, size_t start, bool all_logits, float* logits) {
  const size_t h = config_.hidden_size;
  embed(ids, m, start);
  for (size_t l = 0; l < config_.n_layers; ++l) block(l, m, start);
  // Only the rows whose logits are wanted go through the final norm, project_out and lm_head.
  const size_t first = all_logits ? 0 : m - 1, n_rows = m - first;
  const float* rows = x_.data() + first * h;
  if (arch_.final_norm) {
    norm(weights_.final_norm, weights_.final_norm_b, rows, n_rows, xn_.data());
    rows = xn_.data();
  }
  if (arch_.project_in_out) {
    linear(pool_, rows, n_rows, weights_.project_out, nullptr, emb_.data());
    rows = emb_.data();
  }
  if (logits != nullptr) linear(pool_, rows, n_rows, weights_.lm_head, nullptr, logits);
  return Status();
}

void CpuForward::block(size_t l, size_t m, size_t start) {
  const LayerWeights& w = weights_.layers[l];
  const size_t n = m * config_.hidden_size;
  float* x = x_.data();
  switch (arch_.residual) {
    case ResidualLayout::kSequential:
      norm(w.attn_norm, w.attn_norm_b, x, m, xn_.data());
      if (arch_.residual_from_norm) std::copy(xn_.begin(), xn_.begin() + static_cast<ptrdiff_t>(n), x_.begin());
      attention(l, xn_.data(), m, start, delta_.data());
      add_inplace(x, delta_.data(), n);
      norm(w.mlp_norm, w.mlp_norm_b, x, m, xn_.data());
      if (arch_.residual_from_norm) std::copy(xn_.begin(), xn_.begin() + static_cast<ptrdiff_t>(n), x_.begin());
      mlp(l, xn_.data(), m, delta_.data());
      add_inplace(x, delta_.data(), n);
      break;
    case ResidualLayout::kParallelSharedNorm:
    case ResidualLayout::kParallelTwoNorms: {
      // x + attn(n1(x)) + mlp(n2(x)), summed in that order as transformers does.
      norm(w.attn_norm, w.attn_norm_b, x, m, xn_.data());
      const float* mlp_in = xn_.data();
      if (arch_.residual == ResidualLayout::kParallelTwoNorms) {
        norm(w.mlp_norm, w.mlp_norm_b, x, m, xn2_.data());
        mlp_in = xn2_.data();
      }
      attention(l, xn_.data(), m, start, delta_.data());
      mlp(l, mlp_in, m, xn2_.data());  // mlp_in is read before xn2_ is written (mlp's first linear)
      add_inplace(x, delta_.data(), n);
      add_inplace(x, xn2_.data(), n);
      break;
    }
    case ResidualLayout::kPostNorm:
      attention(l, x, m, start, delta_.data());
      add_inplace(x, delta_.data(), n);
      norm(w.attn_norm, w.attn_norm_b, x, m, x);
      mlp(l, x, m, delta_.data());
      add_inplace(x, delta_.data(), n);
      norm(w.mlp_norm, w.mlp_norm_b, x, m, x);
      break;
  }
}

void CpuForward::attention(size_t l, const float* in, size_t m, size_t start, float* att_out) {
  const LayerWeights& w = weights_.layers[l];
  if (arch_.qkv == format::QkvLayout::kSeparate) {
    linear(pool_, in, m, w.wq, vector_f32(w.bq, vec_a_), q_.data());
    linear(pool_, in, m, w.wk, vector_f32(w.bk, vec_a_), k_.data());
    linear(pool_, in, m, w.wv, vector_f32(w.bv, vec_a_), v_.data());
  } else {
    linear(pool_, in, m, w.wqkv, vector_f32(w.bqkv, vec_a_), qkv_.data());
    split_qkv(arch_.qkv, qkv_.data(), m, config_.n_heads, config_.n_kv_heads, config_.head_dim, q_.data(), k_.data(),
              v_.data());
  }
  float* k_cache = k_cache_.data() + l * max_context_ * kv_dim_;
  float* v_cache = v_cache_.data() + l * max_context_ * kv_dim_;
  if (arch_.positions == PositionKind::kRope) {
    const size_t half = arch_.rotary_dim / 2;
    for (size_t t = 0; t < m; ++t) {
      const float* c = cos_.data() + t * half;
      const float* s = sin_.data() + t * half;
      apply_rope(q_.data() + t * q_dim_, config_.n_heads, config_.head_dim, arch_.rotary_dim, c, s);
      apply_rope(k_.data() + t * kv_dim_, config_.n_kv_heads, config_.head_dim, arch_.rotary_dim, c, s);
    }
  }
  std::copy(k_.begin(), k_.begin() + static_cast<ptrdiff_t>(m * kv_dim_), k_cache + start * kv_dim_);
  std::copy(v_.begin(), v_.begin() + static_cast<ptrdiff_t>(m * kv_dim_), v_cache + start * kv_dim_);
  AttentionShape shape;
  shape.n_heads = config_.n_heads;
  shape.n_kv_heads = config_.n_kv_heads;
  shape.head_dim = config_.head_dim;
  shape.sliding_window = config_.sliding_window;
  shape.scale = arch_.attn_scale;
  if (arch_.positions == PositionKind::kAlibi) {
    shape.alibi_slopes = alibi_slopes_.data();
    shape.alibi_scaled = arch_.alibi_scaled;
  }
  attention_cpu(pool_, shape, q_.data(), m, start, k_cache, v_cache, scores_.data(), att_.data());
  linear(pool_, att_.data(), m, w.wo, vector_f32(w.bo, vec_a_), att_out);
}

void CpuForward::mlp(size_t l, const float* in, size_t m, float* out) {
  const LayerWeights& w = weights_.layers[l];
  const size_t inter = config_.intermediate_size;
  if (arch_.mlp == format::MlpKind::kGated) {
    linear(pool_, in, m, w.w_gate, vector_f32(w.b_gate, vec_a_), gate_.data());
    linear(pool_, in, m, w.w_up, vector_f32(w.b_up, vec_b_), up_.data());
    activation_mul(arch_.activation, gate_.data(), up_.data(), m * inter);
  } else {
    linear(pool_, in, m, w.w_up, vector_f32(w.b_up, vec_a_), gate_.data());
    activation_mul(arch_.activation, gate_.data(), nullptr, m * inter);
  }
  linear(pool_, gate_.data(), m, w.w_down, vector_f32(w.b_down, vec_a_), out);
}

}  // namespace qmodel::runtime
