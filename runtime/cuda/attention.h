// Causal grouped-query attention of the CUDA backend over one layer's KV cache, with the semantics
// of runtime/src/attention.cpp (HF eager attention): scores = q·k * scale (shape.scale, 0 =
// 1 / sqrt(head_dim)), softmax in fp32 with the max subtracted, out = sum p·v; query head h reads KV
// head h / (n_heads / n_kv_heads); optional sliding window; optional ALiBi (shape.alibi_slopes,
// device fp32 [n_heads]): + runtime::alibi_bias(slopes[h], j), i.e. slopes[h] * j (BLOOM) or with
// alibi_scaled Falcon-RW's bf16(bf16(slopes[h]) * j) / sqrt(head_dim). The kernels add
// bias(j) - bias(p), p the query's position: the same softmax in real arithmetic (a per-row
// shift), with a small bias for the keys that carry the mass instead of one of bias(p), so the
// fp32 rounding of the biased scores is smaller than the CPU reference's (~ulp(bias(p)) there;
// the tested bound). The cache is [max_context, n_kv_heads * head_dim] row-major, q / out are [tokens, n_heads *
// head_dim], all in the compute dtype `act`; accumulation is fp32 throughout.
//
// head_dim: even and <= 256; a multiple of 8 with 16-byte aligned pointers takes the vectorised
// path, other even sizes a scalar one; odd or larger sizes are kUnsupported. n_heads not a
// multiple of n_kv_heads, or a non-finite scale, is kInvalidArgument. Launches are asynchronous on
// `stream`; nothing is allocated and nothing synchronises.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "device_types.h"
#include "qmodel/format/status.h"

namespace qmodel::runtime::cuda {

// Keys per block of the decode kernel (flash-decoding split); exposed for the tests' chunk edges.
inline constexpr int32_t kDecodeChunkKeys = 256;

// fp32 scratch of attention_decode: per query head and chunk, a partial output, a max and a sum.
int64_t attention_decode_workspace_floats(const DeviceAttentionShape& shape);

// One query token (decode). q / out: [n_heads * head_dim]. `position` is a DEVICE pointer to the
// query's position p: it attends to keys 0..p (or the window). The launch configuration depends on
// `shape` only, so the call can be captured once in a CUDA graph and replayed for every p written
// to *position. p is clamped to [0, max_context - 1] on the device (the caller keeps it in range).
Status attention_decode(ActType act, const DeviceAttentionShape& shape, const void* q, const void* k_cache,
                        const void* v_cache, const int32_t* position, float* workspace, int64_t workspace_floats,
                        void* out, cudaStream_t stream);

// m query tokens at positions start .. start + m - 1 (prefill), causal over keys 0 .. start + m - 1,
// which must fit the cache (start + m <= max_context). q / out: [m, n_heads * head_dim].
Status attention_prefill(ActType act, const DeviceAttentionShape& shape, const void* q, int64_t m, int64_t start,
                         const void* k_cache, const void* v_cache, void* out, cudaStream_t stream);

}  // namespace qmodel::runtime::cuda
