// The decoder forward pass on the CPU backend, fp32 activations, executing the file's
// architecture description (format/architecture.h): token embedding (+ OPT project_in, + learned
// positions, + BLOOM's embedding norm); per block the residual layout (sequential pre-norm,
// parallel with one or two norms, post-norm) over attention (separate or fused q/k/v, RoPE full
// or partial, ALiBi, MHA/GQA/MQA over the KV cache) and the MLP (gated or plain, SiLU / GELU /
// ReLU); final norm (+ OPT project_out); lm_head. Every Linear reads its stored weight through
// kernels::matmul. Owns the KV cache and the workspace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "qmodel/format/status.h"
#include "qmodel/format/types.h"
#include "forward_backend.h"
#include "weights.h"

namespace qmodel {
class ThreadPool;
}  // namespace qmodel

namespace qmodel::runtime {

class CpuForward final : public ForwardBackend {
 public:
  // max_chunk = most tokens per run() (prefill chunk). `weights` and `pool` must outlive this.
  // kOutOfMemory when the cache or workspace cannot be allocated; rope errors as rope_inv_freq.
  static Result<std::unique_ptr<CpuForward>> create(const format::ModelConfig& config, const format::ArchSpec& arch,
                                                    const ModelWeights& weights, ThreadPool& pool,
                                                    size_t max_context, size_t max_chunk);

  // Runs ids[0..m) at positions [start, start + m) (m <= max_chunk, start + m <= max_context; the
  // caller checks ids are < vocab). Writes their K/V into the cache and the logits of the last
  // token ([vocab]) or, with all_logits, of every token ([m, vocab]) to `logits`.
  Status run(const int32_t* ids, size_t m, size_t start, bool all_logits, float* logits) override;

  size_t max_context() const override { return max_context_; }
  size_t max_chunk() const override { return max_chunk_; }
  void fill_memory_stats(Stats& stats) const override {
    stats.kv_cache_bytes = kv_cache_bytes();
    stats.scratch_bytes = scratch_bytes();
  }
  uint64_t kv_cache_bytes() const { return (k_cache_.size() + v_cache_.size()) * sizeof(float); }
  uint64_t scratch_bytes() const;

 private:
  CpuForward(const format::ModelConfig& config, const format::ArchSpec& arch, const ModelWeights& weights,
             ThreadPool& pool)
      : config_(config), arch_(arch), weights_(weights), pool_(pool) {}
  void embed(const int32_t* ids, size_t m, size_t start);
  // Norm of the description over m rows of `in` into `out` (nullptr weights: no affine part).
  void norm(const kernels::WeightView& weight, const kernels::WeightView& bias, const float* in, size_t m, float* out);
  // Attention of rows `in` [m, hidden] -> att_out [m, hidden] (o_proj applied, bias included).
  void attention(size_t layer, const float* in, size_t m, size_t start, float* att_out);
  // MLP of rows `in` [m, hidden] -> out [m, hidden].
  void mlp(size_t layer, const float* in, size_t m, float* out);
  void block(size_t layer, size_t m, size_t start);

  format::ModelConfig config_;
  format::ArchSpec arch_;
  const ModelWeights& weights_;
  ThreadPool& pool_;
  size_t max_context_ = 0, max_chunk_ = 0, q_dim_ = 0, kv_dim_ = 0;
  std::vector<float> inv_freq_, alibi_slopes_;
  std::vector<float> k_cache_, v_cache_;   // [n_layers, max_context, kv_dim]
  std::vector<float> x_, xn_, xn2_, q_, k_, v_, qkv_, att_, delta_, gate_, up_, emb_;  // [max_chunk, ...]
  std::vector<float> cos_, sin_;           // [max_chunk, rotary_dim / 2]
  std::vector<float> scores_;              // [pool threads, max_context]
  std::vector<float> vec_a_, vec_b_;       // 1-D weights not stored as F32, dequantized per use
};

}  // namespace qmodel::runtime
