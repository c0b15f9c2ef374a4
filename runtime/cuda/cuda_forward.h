// The decoder forward pass on a CUDA device, executing the file's architecture description as the
// CPU backend does (runtime/src/forward.h): embedding (+ project_in, learned positions, embedding
// norm); per block the residual layout, each pending sublayer output added into the fp32 residual
// stream by the next fused residual-add + norm (RMSNorm or LayerNorm); attention: q/k/v in one
// multi-GEMV (decode) or GEMMs (prefill), or one fused qkv projection split on the device -> RoPE
// (full or partial) + KV-cache append -> attention with optional ALiBi (flash decoding for one
// token, tiled flash attention for a chunk) -> o_proj; MLP gated or plain with SiLU / GELU / ReLU;
// final norm (+ project_out); lm_head. Activations, KV cache and GEMM inputs are in the compute
// dtype. A decode step (embedding lookup to sampled id) is captured once
// in a CUDA graph and replayed: its per-step inputs (token, position, sampling parameters, the
// uniform draw) come from a pinned host struct copied by the graph's first node.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "cuda/device_model.h"
#include "cuda/device_types.h"
#include "cuda/ops.h"
#include "forward_backend.h"
#include "qmodel/format/types.h"
#include "qmodel/kernels/cuda.h"

namespace qmodel::runtime::cuda {

class CudaForward final : public ForwardBackend {
 public:
  // kOutOfMemory names what does not fit (KV cache for max_context tokens, workspace) and the
  // free device memory; kUnsupported for a head_dim / config the kernels do not handle.
  static Result<std::unique_ptr<CudaForward>> create(const format::ModelConfig& config, const format::ArchSpec& arch,
                                                     const CudaDeviceModel& weights, ActType act, size_t max_context,
                                                     size_t max_chunk);
  ~CudaForward() override;

  Status run(const int32_t* ids, size_t m, size_t start, bool all_logits, float* logits) override;
  bool samples_on_device() const override { return true; }
  Result<int32_t> sample_last(const SamplingOptions& options, double uniform) override;
  Result<int32_t> decode_and_sample(int32_t id, size_t position, const SamplingOptions& options,
                                    double uniform) override;
  size_t max_context() const override { return max_context_; }
  size_t max_chunk() const override { return max_chunk_; }
  void fill_memory_stats(Stats& stats) const override;

 private:
  CudaForward(const format::ModelConfig& config, const format::ArchSpec& arch, const CudaDeviceModel& weights,
              ActType act)
      : config_(config), arch_(arch), weights_(weights), act_(act) {}
  Status allocate(size_t max_context, size_t max_chunk);
  // Enqueues the layers for m tokens whose ids are at ids_dev, the first at position *position_dev
  // (== start on the host; decode reads it from the step params so the graph is position-free).
  Status enqueue_layers(const int32_t* ids_dev, size_t m, size_t start, bool decode);
  // Final norm + lm_head + fp32 conversion for rows [first, first + n) of the chunk (n <= 8).
  Status enqueue_logits(size_t first, size_t n, float* logits_f32_dev);
  Status enqueue_embedding(const int32_t* ids_dev, size_t m);
  // Streamed blocks: the copy of streamed block i into its slot on copy_stream_, after the block
  // that last used that slot has finished computing.
  Status enqueue_block_copy(size_t i);
  Status enqueue_attention(size_t layer, const void* in, size_t m, size_t start, bool decode, void* out);
  Status enqueue_mlp(size_t layer, const void* in, size_t m, void* out);
  DeviceNorm norm_of(const float* weight, const float* bias) const;
  Status enqueue_decode_step();
  Status ensure_decode_graph();
  Status run_decode_graph(int32_t id, size_t position, const SamplingOptions& options, double uniform);
  Status linear(const void* x, size_t m, const kernels::DeviceWeightView& w, const float* bias, void* y);
  // count GEMVs / GEMMs sharing x (q/k/v, gate/up): one launch for decode when the kernels allow.
  Status linear_multi(const void* x, size_t m, const kernels::DeviceWeightView* ws, const float* const* biases,
                      void* const* ys, int count);
  void set_step_params(int32_t token, size_t position, const SamplingOptions& options, double uniform);
  void* kv_layer(void* cache, size_t layer) const;

  format::ModelConfig config_;
  format::ArchSpec arch_;
  const CudaDeviceModel& weights_;
  ActType act_;
  DeviceAttentionShape shape_;
  size_t max_context_ = 0, max_chunk_ = 0, q_dim_ = 0, kv_dim_ = 0;

  cudaStream_t stream_ = nullptr;
  // Streaming (weights_.streamed() not empty): copies run on copy_stream_; slot_ready_[s] marks a
  // slot's block copied, slot_free_[s] the end of the compute that read it, fork_ the start of a
  // forward pass (so a captured graph forks the copy stream from the compute stream).
  cudaStream_t copy_stream_ = nullptr;
  cudaEvent_t slot_ready_[2] = {nullptr, nullptr}, slot_free_[2] = {nullptr, nullptr}, fork_ = nullptr;
  std::unique_ptr<kernels::GemmContext> gemm_;
  cudaGraphExec_t decode_graph_ = nullptr;

  // One device allocation for everything below (offsets 256-byte aligned).
  void* device_block_ = nullptr;
  uint64_t device_block_bytes_ = 0, kv_bytes_ = 0, gemm_scratch_bytes_ = 0;
  float* x_ = nullptr;                       // fp32 residual stream [max_chunk, hidden]
  void *xn_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *att_ = nullptr, *delta_ = nullptr;
  void *xn2_ = nullptr, *delta2_ = nullptr;  // parallel layouts: the MLP's input and output
  void* qkv_ = nullptr;                      // fused qkv projection [max_chunk, q_dim + 2 kv_dim]
  void* emb_ = nullptr;                      // project_in input / project_out output [max_chunk, embed_dim]
  const void *pending_ = nullptr, *pending2_ = nullptr;  // sublayer outputs not yet added into x_
  float* alibi_slopes_ = nullptr;            // [n_heads]
  void *gate_ = nullptr, *up_ = nullptr;     // [max_chunk, intermediate]
  void* logits_act_ = nullptr;               // [8, vocab] lm_head output in the compute dtype
  float* logits_f32_ = nullptr;              // [8, vocab]
  void *k_cache_ = nullptr, *v_cache_ = nullptr;  // [layers, max_context, kv_dim]
  float* inv_freq_ = nullptr;                // [head_dim / 2]
  int32_t* ids_ = nullptr;                   // [max_chunk]
  DeviceStepParams* params_ = nullptr;
  int32_t* next_id_ = nullptr;
  float* attention_workspace_ = nullptr;
  int64_t attention_workspace_floats_ = 0;
  void* sample_workspace_ = nullptr;
  int64_t sample_workspace_bytes_ = 0;
  void* gemm_scratch_ = nullptr;
  const float* last_logits_ = nullptr;       // fp32 logits of the last position run

  // Pinned host memory: step params (read by the graph's first copy), sampled id, prompt ids.
  DeviceStepParams* params_host_ = nullptr;
  int32_t* id_host_ = nullptr;
  int32_t* ids_host_ = nullptr;
};

}  // namespace qmodel::runtime::cuda
