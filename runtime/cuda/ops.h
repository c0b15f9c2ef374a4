// Device ops of the CUDA backend's forward pass besides the GEMVs / GEMMs (kernels/) and attention
// (attention.h): fused residual add + RMSNorm, RoPE + KV-cache store, SwiGLU, logits to fp32 and
// sampling, each with the semantics of the CPU backend (runtime/src/ops.cpp, rope.cpp, sampler.cpp)
// within the bounds stated below and in tests/gpu/test_device_ops_gpu.cpp.
//
// Every launcher validates its arguments on the host before touching the device (kInvalidArgument
// for null pointers / non-positive sizes / an unknown dtype, kUnsupported for a shape it does not
// handle) and checks the launch (kCuda). All work is asynchronous on `stream`: no allocation, no
// synchronisation, and values that change between decode steps (positions, sampling parameters)
// are read from device memory, so every call can be captured once into a CUDA graph.
// Pointers are device pointers unless stated otherwise; `act` tensors are bf16 / fp16 / fp32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "device_types.h"
#include "qmodel/format/architecture.h"
#include "qmodel/format/status.h"
#include "qmodel/kernels/cuda.h"

namespace qmodel::runtime::cuda {

// Per row t < m of the fp32 residual stream x [m, n]: if delta != nullptr, x[t,:] += delta[t,:]
// (delta in `act`, x updated in place); then out[t,:] = act(weight * (x * inv)) with
// inv = 1 / sqrt(mean(x^2) + eps) and weight fp32 [n]. The residual add is bit-identical to the
// CPU's add_inplace; mean(x^2) is an fp32 block reduction (the CPU sums in double): relative error
// <= (ceil(n / threads) + 5 + threads / 32) * 2^-24 with threads = min(1024, ~n / 8) (<= 1.8e-6
// at n = 4096), so fp32 outputs are within ~1.2e-6 relative of rmsnorm_rows (4e-6 tested) and
// bf16 / fp16 outputs within one ulp of the rounded CPU value.
// out must not alias x or delta.
Status add_rmsnorm(ActType act, float* x, const void* delta, int64_t m, int64_t n, const float* weight, float eps,
                   void* out, cudaStream_t stream);

// A norm of the architecture: RMSNorm (weight required, bias ignored) or LayerNorm (weight and
// bias optional: elementwise_affine), fp32 device vectors [n].
struct DeviceNorm {
  format::NormKind kind = format::NormKind::kRMSNorm;
  const float* weight = nullptr;
  const float* bias = nullptr;
  float eps = 1e-5f;
};

// The general form of add_rmsnorm for every residual layout: per row t < m of the fp32 residual
// stream x [m, n], x += delta (if not nullptr) then x += delta2 (if not nullptr) (two rounded fp32
// adds in that order, delta / delta2 in `act`, as the CPU's add_inplace twice); then y =
// norm(x) (norm == nullptr: y = x) computed as rmsnorm_rows / layernorm_rows do (fp32 sums here);
// out[t,:] = act(y); with write_back, x[t,:] = y too (post-norm layouts, BLOOM's residual from the
// norm). RMSNorm without write_back or delta2 gives add_rmsnorm's results bit for bit. out must not
// alias x, delta or delta2. Bounds as add_rmsnorm (LayerNorm: the same per pass).
Status add_norm(ActType act, const DeviceNorm* norm, float* x, const void* delta, const void* delta2, int64_t m,
                int64_t n, bool write_back, void* out, cudaStream_t stream);

// HF rotate_half RoPE on q [m, n_heads * head_dim] and k [m, n_kv_heads * head_dim] (act, in
// place); token t has position p = *start_position + t (a DEVICE int32) and angle
// float(p) * inv_freq[i] (fp32, inv_freq [head_dim / 2]); cos / sin are taken in double and rounded
// to float as rope_cos_sin does, and the rotation uses unfused fp32 products, so the result is
// rope_cos_sin + apply_rope followed by one rounding to act, bit for bit unless the device's and
// libm's double cos / sin (each within an ulp of double) round to different floats, which moves
// an output by at most one ulp of act (the tested bound). The rotated k row and
// the v row [m, n_kv_heads * head_dim] are then stored at row p of k_cache / v_cache
// ([max_context, n_kv_heads * head_dim], act; v copied bit for bit). The launcher cannot see p: the
// caller guarantees 0 <= p < shape.max_context for every token; rows outside are not written (q
// and k are still rotated). head_dim must be even and <= kMaxRopeHeadDim.
// Partial rotary (GPT-NeoX rotary_pct): only the first shape.rotary_dim dims of each head rotate
// (pairs i, i + rotary_dim / 2; inv_freq has rotary_dim / 2 entries), the rest pass unchanged.
// inv_freq == nullptr: no rotation at all (ALiBi / learned positions): k and v are only stored.
inline constexpr int32_t kMaxRopeHeadDim = 512;
Status rope_store_kv(ActType act, void* q, void* k, const void* v, int64_t m, const DeviceAttentionShape& shape,
                     const float* inv_freq, const int32_t* start_position, void* k_cache, void* v_cache,
                     cudaStream_t stream);

// out[i] = act(fn(gate[i]) * up[i]), or act(fn(gate[i])) when up == nullptr (plain MLP), fn as
// runtime::activate (SiLU, GELU exact with erff, GELU tanh with tanhf, ReLU) in fp32: within a few
// fp32 ulps of the CPU, one act ulp after rounding. out may alias gate (or up).
Status activation_mul(ActType act, format::Activation fn, const void* gate, const void* up, int64_t count, void* out,
                      cudaStream_t stream);

// Splits a fused qkv projection qkv [m, (n_heads + 2 n_kv) * head_dim] (act) into q [m, n_heads *
// head_dim], k and v [m, n_kv * head_dim] as runtime::split_qkv does (bit copies), for every
// layout but kSeparate (kInvalidArgument).
Status split_qkv(ActType act, format::QkvLayout layout, const void* qkv, int64_t m, const DeviceAttentionShape& shape,
                 void* q, void* k, void* v, cudaStream_t stream);

// Learned absolute positions: x[t, :] += float(table[*start_position + offset + t, :]) for t < m
// (x fp32 [m, n], table a float-stored DeviceWeightView [rows, n]; start_position a DEVICE int32,
// so the call can be captured in a graph). Rows outside the table are not added (the caller keeps
// positions in range; the CPU backend refuses them). kUnsupported for a quantized table.
Status add_position_rows(const kernels::DeviceWeightView& table, const int32_t* start_position, int32_t offset,
                         int64_t m, int64_t n, float* x, cudaStream_t stream);

// out[i] = act(silu(gate[i]) * up[i]), silu(x) = x / (1 + exp(-x)) in fp32 (expf: within a few
// fp32 ulps of the CPU's silu_mul, one act ulp after rounding). out may alias gate (or up).
// 16-byte vector accesses when all three pointers are 16-byte aligned.
Status silu_mul(ActType act, const void* gate, const void* up, int64_t count, void* out, cudaStream_t stream);

// dst[i] = float(src[i]) (exact). dst may not partially overlap src.
Status convert_to_f32(ActType act, const void* src, int64_t count, float* dst, cudaStream_t stream);

// Bytes of device scratch sample_token / sample_probabilities need for `vocab` logits (a few KB;
// no initialisation needed, contents are dead between calls).
int64_t sample_workspace_bytes(int64_t vocab);

// The next token for fp32 logits [vocab] with the CPU Sampler's semantics, parameters read from
// *params (device): temperature 0 (or not in (0, FLT_MAX]) -> argmax (lowest index on ties, NaN
// never wins, all NaN -> vocab - 1 like runtime::argmax); else logits / temperature -> top-k (ties
// with the k-th largest stay; k <= 0 or k >= vocab: off) -> softmax over the kept candidates (max
// subtracted) -> top-p nucleus when top_p < 1 (smallest prefix in descending order, ties in index
// order, whose mass reaches top_p, at least one) -> renormalise -> draw: walk the kept ids in index
// order accumulating probabilities, the first id whose cumulative probability exceeds
// params->uniform (the last kept id if rounding leaves uniform above the total). A non-finite max
// logit (the CPU's degenerate sums) falls back to argmax. *out_id is written on the device.
//
// Two kernels: a grid-wide partial argmax, then one block that finishes it (greedy stops there) or
// selects the top-k / top-p thresholds by radix select on the logits' bits (no sort), so vocab up
// to 2^23 works (designed for <= 256k). Differences from the CPU (doubles there): exp is fp32
// expf of (x - max) / T, and masses are summed exactly as 40-bit fixed-point integers of those fp32
// probabilities (deterministic, order-independent), so a probability differs from the CPU's by
// ~1e-6 relative; decisions that fall within that of a boundary (top_p against a cumulative mass,
// uniform against a cumulative probability) can differ, and a candidate whose probability is below
// 2^-40 of the max carries no mass (it cannot be drawn; the CPU would draw it with p < 1e-12).
Status sample_token(const float* logits, int64_t vocab, const DeviceStepParams* params, int32_t* out_id,
                    void* workspace, int64_t workspace_bytes, cudaStream_t stream);

// The distribution sample_token draws from, as Sampler::probabilities: probs [vocab] fp32 (device),
// 0 for filtered ids, one-hot for greedy. For tests and debugging; not on the decode path.
Status sample_probabilities(const float* logits, int64_t vocab, const DeviceStepParams* params, float* probs,
                            void* workspace, int64_t workspace_bytes, cudaStream_t stream);

}  // namespace qmodel::runtime::cuda
