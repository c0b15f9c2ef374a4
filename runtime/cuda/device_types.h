// Types shared by the CUDA backend's device ops (runtime/cuda/*.cu) and the backend that drives
// them. Activations are kernels::ActType (bf16 / fp16 / fp32 compute dtype); the residual stream
// stays fp32; the KV cache is stored in the compute dtype.
#pragma once

#include <cstdint>

#include "qmodel/kernels/ref.h"

namespace qmodel::runtime::cuda {

using kernels::ActType;

inline int64_t act_bytes(ActType act) { return act == ActType::kF32 ? 4 : 2; }

// Grouped-query attention geometry. The KV cache of one layer is [max_context, n_kv_heads *
// head_dim] row-major in the compute dtype; query head h reads KV head h / (n_heads / n_kv_heads).
struct DeviceAttentionShape {
  int32_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int32_t max_context = 0;     // rows of the KV cache
  int32_t sliding_window = 0;  // 0 = none; else a query at p sees keys at p - window < j <= p
  int32_t rotary_dim = 0;      // rope_store_kv: dims rotated per head (even); 0 = head_dim
  float scale = 0.0f;          // multiplier of q.k; 0 = 1 / sqrt(head_dim)
  // ALiBi (nullptr = none; DEVICE fp32 [n_heads]): score(h, j) = q.k * scale + alibi_bias(slopes[h],
  // j) as runtime/src/attention.h defines it: slopes[h] * j (BLOOM), or with alibi_scaled Falcon's
  // bf16(bf16(slopes[h]) * j) / sqrt(head_dim).
  const float* alibi_slopes = nullptr;
  int32_t alibi_scaled = 0;
};

// Per-step inputs of a decode step, written by the host into pinned memory and copied to the
// device by the first node of the captured graph, so one graph serves every step.
struct DeviceStepParams {
  int32_t token = 0;        // input token id
  int32_t position = 0;     // its position (= tokens already in the KV cache)
  float temperature = 0.0f; // 0 = greedy
  int32_t top_k = 0;        // 0 = off
  float top_p = 1.0f;       // 1 = off
  float uniform = 0.0f;     // the draw in [0, 1) (host RNG, same stream of draws as the CPU Sampler)
};

}  // namespace qmodel::runtime::cuda
