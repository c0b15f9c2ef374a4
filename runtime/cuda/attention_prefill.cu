// Prefill attention (m query tokens), flash-style on CUDA cores: no m x context score matrix ever
// exists. A block owns kBM rows of one KV head's group, a row being a (token, query head) pair
// flattened as token * group + head, so every K/V tile staged in shared memory is reused by all the
// group's heads and all tokens of the tile (GQA costs no extra K/V traffic). Per key tile of kBN:
//   S = Q K^T by register micro-tiles (kTM x kTN per thread, float4 reads of padded rows),
//   online softmax per row in fp32 (running max / sum in the registers of the row's 8 threads),
//   O = alpha O + P V by register micro-tiles (kOM rows x kOD columns per thread).
// Scores live in the log2 domain (q pre-scaled by log2(e) * scale) so exp is one exp2f; an ALiBi
// bias is added to the scores of the tile before the mask's max.
//
// Tensor cores (estimates: no GPU measured this code): this path is bound by fp32 FMA issue and
// shared-memory bandwidth (~1 LDS.128 per 5-8 FMAs), ~10-25 of H100's 67 fp32 TFLOP/s. An
// mma.sync version (FlashAttention-2 style: bf16 m16n8k16 fragments, fp32 accumulators, P kept in
// registers) reaches ~300-350 TFLOP/s, wgmma + TMA (FlashAttention-3) ~500-600. Causal attention
// costs 2 * m^2 * head_dim * n_heads flops per layer; for Llama-3-8B geometry (32 heads, 8 KV
// heads, head_dim 128, 32 layers):
//   512 tokens:  2.1 GFLOP/layer, ~0.1-0.2 ms here vs ~10 us with mma (launch / occupancy bound):
//                ~3-6 ms of a ~15-18 ms prefill (the weight GEMMs take ~12 ms), so ~1.2-1.4x overall;
//   2048 tokens: 34 GFLOP/layer, ~1.4-3.4 ms here vs ~0.1 ms: 45-110 ms of attention next to ~50 ms
//                of GEMMs becomes ~3 ms, so ~2-3x faster prefill; the gap grows as m^2 beyond.
#include <climits>
#include <cmath>

#include "attention.h"
#include "attention_act.cuh"
#include "qmodel/kernels/cuda_launch.cuh"

namespace qmodel::runtime::cuda {
namespace {

using attn::ActIo;

constexpr int kThreads = 128;
constexpr int kKeyThreads = 8;  // threads sharing one S row: their lanes differ in the low 3 bits
constexpr unsigned kFullMask = 0xffffffffu;
constexpr float kLog2e = 1.4426950408889634f;

// Tile geometry per padded head dim kD (head_dim <= kD; padding columns hold zeros). Static shared
// memory is capped at 48 KiB, so the larger head dims take fewer rows and, from 128 on, stage V in
// the K buffer after S is done (kSharedKV).
template <int kD>
struct Cfg;
template <>
struct Cfg<32> {
  static constexpr int kBM = 64, kBN = 32, kTM = 4, kTN = 4, kOM = 4, kOD = 4;
  static constexpr bool kSharedKV = false;
};
template <>
struct Cfg<64> {
  static constexpr int kBM = 64, kBN = 32, kTM = 4, kTN = 4, kOM = 4, kOD = 8;
  static constexpr bool kSharedKV = false;
};
template <>
struct Cfg<128> {
  static constexpr int kBM = 32, kBN = 32, kTM = 2, kTN = 4, kOM = 4, kOD = 8;
  static constexpr bool kSharedKV = true;
};
template <>
struct Cfg<256> {
  static constexpr int kBM = 16, kBN = 16, kTM = 1, kTN = 2, kOM = 4, kOD = 8;
  static constexpr bool kSharedKV = true;
};

struct PrefillArgs {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  int32_t n_heads, n_kv_heads, head_dim, group, window;
  int32_t m, start;
  int32_t rows;          // m * group: flattened (token, head-in-group) rows per KV head
  float scale_log2;      // log2(e) * scale
  const float* alibi;    // ALiBi slopes [n_heads] or nullptr
  int32_t alibi_scaled;  // Falcon-RW's form (attention_act.cuh)
  float sqrt_d;          // sqrtf(head_dim), its divisor
};

// Copies `n_rows` rows of head_dim elements (row r at src + r * stride) into dst[r][0..kD) as fp32
// times `scale`; rows with !row_ok and columns >= head_dim become 0 (so they add nothing to a dot).
template <typename T, int kD, bool kVec, typename RowPtr>
__device__ __forceinline__ void stage_rows(float* dst, int n_rows, int head_dim, float scale, RowPtr row_ptr) {
  constexpr int kStride = kD + 4;
  constexpr int kSlices = kD / 8;
  for (int idx = static_cast<int>(threadIdx.x); idx < n_rows * kSlices; idx += kThreads) {
    const int r = idx / kSlices, c = (idx % kSlices) * 8;
    const T* src = row_ptr(r);
    float f[8];
    if (src != nullptr && kVec && c < head_dim) {
      ActIo<T>::load8(src + c, f);
    } else {
#pragma unroll
      for (int x = 0; x < 8; ++x) f[x] = (src != nullptr && c + x < head_dim) ? ActIo<T>::load(src + c + x) : 0.0f;
    }
    float4* d4 = reinterpret_cast<float4*>(dst + r * kStride + c);
    d4[0] = make_float4(f[0] * scale, f[1] * scale, f[2] * scale, f[3] * scale);
    d4[1] = make_float4(f[4] * scale, f[5] * scale, f[6] * scale, f[7] * scale);
  }
}

template <typename T, int kD, bool kVec>
__global__ void __launch_bounds__(kThreads) prefill_kernel(PrefillArgs a) {
  using C = Cfg<kD>;
  constexpr int kBM = C::kBM, kBN = C::kBN, kTM = C::kTM, kTN = C::kTN, kOM = C::kOM, kOD = C::kOD;
  constexpr int kStride = kD + 4;   // +4 floats: float4 reads of neighbouring rows hit distinct banks
  constexpr int kPStride = kBN + 8; // +8: the 4 rows a warp writes to s_p land in distinct banks
  constexpr int kSRowThreads = kBM / kTM, kORowThreads = kBM / kOM, kOColThreads = kD / kOD;
  static_assert(kSRowThreads * kKeyThreads == kThreads && kTN * kKeyThreads == kBN, "S tiling");
  static_assert(kORowThreads * kOColThreads == kThreads && kOD % 4 == 0, "O tiling");

  __shared__ __align__(16) float s_q[kBM * kStride];
  __shared__ __align__(16) float s_k[kBN * kStride];
  __shared__ __align__(16) float s_v_own[C::kSharedKV ? 1 : kBN * kStride];
  __shared__ float s_p[kBM * kPStride];
  __shared__ float s_alpha[kBM], s_l[kBM];
  // Per row, ALiBi: BLOOM: the slope in the log2 domain; Falcon-RW: bf16(slope) and the bias of the
  // row's own position (shared memory: no registers held through the tile loop).
  __shared__ float s_slope[kBM], s_bias_p[kBM];
  float* s_v = C::kSharedKV ? s_k : s_v_own;

  const int tid = static_cast<int>(threadIdx.x);
  const int kvh = static_cast<int>(blockIdx.y);
  const int r0 = static_cast<int>(blockIdx.x) * kBM;
  const int d = a.head_dim, g = a.group;
  const int64_t q_stride = static_cast<int64_t>(a.n_heads) * d;
  const int64_t kv_stride = static_cast<int64_t>(a.n_kv_heads) * d;
  const T* q = static_cast<const T*>(a.q);
  const T* k_base = static_cast<const T*>(a.k) + static_cast<int64_t>(kvh) * d;
  const T* v_base = static_cast<const T*>(a.v) + static_cast<int64_t>(kvh) * d;

  // Keys any row of the block can see: [k_lo, k_hi].
  const int r_last = min(r0 + kBM, a.rows) - 1;
  const int k_hi = a.start + r_last / g;
  const int k_lo = a.window > 0 ? max(0, a.start + r0 / g + 1 - a.window) : 0;

  if (a.alibi != nullptr) {  // published by the barrier after the first K/V tile is staged
    for (int r = tid; r < kBM; r += kThreads) {
      const int row = r0 + r;
      const float slope = row < a.rows ? a.alibi[kvh * g + row % g] : 0.0f;
      if (a.alibi_scaled != 0) {
        s_slope[r] = attn::round_bf16(slope);
        s_bias_p[r] = attn::scaled_alibi_bias(s_slope[r], a.start + row / g, a.sqrt_d);
      } else {
        s_slope[r] = slope * kLog2e;
      }
    }
  }
  stage_rows<T, kD, kVec>(s_q, kBM, d, a.scale_log2, [&](int r) -> const T* {
    const int row = r0 + r;
    if (row >= a.rows) return nullptr;
    return q + static_cast<int64_t>(row / g) * q_stride + static_cast<int64_t>(kvh * g + row % g) * d;
  });

  // S-phase ownership: rows srow + i * kSRowThreads, keys kc + j * kKeyThreads.
  const int srow = tid / kKeyThreads, kc = tid % kKeyThreads;
  // O-phase ownership: rows orow + i * kORowThreads, columns (c * kOColThreads + ocol) * 4 + 0..3.
  const int orow = tid / kOColThreads, ocol = tid % kOColThreads;
  int vis_hi[kTM], vis_lo[kTM];  // per S row: visible keys [vis_lo, vis_hi]; rows past the end see none
  float m_run[kTM], l_run[kTM];
#pragma unroll
  for (int i = 0; i < kTM; ++i) {
    const int row = r0 + srow + i * kSRowThreads;
    vis_hi[i] = row < a.rows ? a.start + row / g : -1;
    vis_lo[i] = a.window > 0 ? vis_hi[i] + 1 - a.window : INT_MIN;
    m_run[i] = -INFINITY;
    l_run[i] = 0.0f;
  }
  float o[kOM][kOD];
#pragma unroll
  for (int i = 0; i < kOM; ++i) {
#pragma unroll
    for (int c = 0; c < kOD; ++c) o[i][c] = 0.0f;
  }
  const int d_pad = (d + 3) & ~3;

  for (int j0 = k_lo; j0 <= k_hi; j0 += kBN) {
    const int n_keys = min(kBN, k_hi - j0 + 1);
    auto key_row = [&](const T* base) {
      return [=](int r) -> const T* { return r < n_keys ? base + (j0 + r) * kv_stride : nullptr; };
    };
    stage_rows<T, kD, kVec>(s_k, kBN, d, 1.0f, key_row(k_base));
    if constexpr (!C::kSharedKV) stage_rows<T, kD, kVec>(s_v, kBN, d, 1.0f, key_row(v_base));
    __syncthreads();

    // ---- S = Q K^T on this tile ----
    float s[kTM][kTN];
#pragma unroll
    for (int i = 0; i < kTM; ++i) {
#pragma unroll
      for (int j = 0; j < kTN; ++j) s[i][j] = 0.0f;
    }
#pragma unroll 2
    for (int c = 0; c < d_pad; c += 4) {
      float4 qv[kTM], kv[kTN];
#pragma unroll
      for (int i = 0; i < kTM; ++i) qv[i] = *reinterpret_cast<const float4*>(s_q + (srow + i * kSRowThreads) * kStride + c);
#pragma unroll
      for (int j = 0; j < kTN; ++j) kv[j] = *reinterpret_cast<const float4*>(s_k + (kc + j * kKeyThreads) * kStride + c);
#pragma unroll
      for (int i = 0; i < kTM; ++i) {
#pragma unroll
        for (int j = 0; j < kTN; ++j) {
          s[i][j] = fmaf(qv[i].x, kv[j].x, s[i][j]);
          s[i][j] = fmaf(qv[i].y, kv[j].y, s[i][j]);
          s[i][j] = fmaf(qv[i].z, kv[j].z, s[i][j]);
          s[i][j] = fmaf(qv[i].w, kv[j].w, s[i][j]);
        }
      }
    }

    // ---- online softmax: mask, new running max, P to shared memory, rescale factor ----
#pragma unroll
    for (int i = 0; i < kTM; ++i) {
      const int r = srow + i * kSRowThreads;
      float t_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < kTN; ++j) {
        const int key = j0 + kc + j * kKeyThreads;
        if (key > vis_hi[i] || key < vis_lo[i]) {
          s[i][j] = -INFINITY;
        } else if (a.alibi != nullptr) {  // bias(key) - bias(p), p the row's position (attention_act.cuh)
          if (a.alibi_scaled != 0) {
            s[i][j] = fmaf(attn::scaled_alibi_bias(s_slope[r], key, a.sqrt_d) - s_bias_p[r], kLog2e, s[i][j]);
          } else {
            s[i][j] = fmaf(s_slope[r], static_cast<float>(key - vis_hi[i]), s[i][j]);
          }
        }
        t_max = fmaxf(t_max, s[i][j]);
      }
#pragma unroll
      for (int off = kKeyThreads / 2; off > 0; off /= 2) t_max = fmaxf(t_max, __shfl_xor_sync(kFullMask, t_max, off));
      const float m_new = fmaxf(m_run[i], t_max);
      float t_sum = 0.0f;
#pragma unroll
      for (int j = 0; j < kTN; ++j) {
        const float p = s[i][j] == -INFINITY ? 0.0f : exp2f(s[i][j] - m_new);  // a finite s means finite m_new
        s_p[r * kPStride + kc + j * kKeyThreads] = p;
        t_sum += p;
      }
#pragma unroll
      for (int off = kKeyThreads / 2; off > 0; off /= 2) t_sum += __shfl_xor_sync(kFullMask, t_sum, off);
      const float alpha = m_run[i] == -INFINITY ? 0.0f : exp2f(m_run[i] - m_new);
      l_run[i] = l_run[i] * alpha + t_sum;
      m_run[i] = m_new;
      if (kc == 0) s_alpha[r] = alpha;
    }
    __syncthreads();
    if constexpr (C::kSharedKV) {
      stage_rows<T, kD, kVec>(s_v, kBN, d, 1.0f, key_row(v_base));
      __syncthreads();
    }

    // ---- O = alpha O + P V ----
#pragma unroll
    for (int i = 0; i < kOM; ++i) {
      const float alpha = s_alpha[orow + i * kORowThreads];
#pragma unroll
      for (int c = 0; c < kOD; ++c) o[i][c] *= alpha;
    }
#pragma unroll 2
    for (int n = 0; n < n_keys; ++n) {
      float p[kOM];
#pragma unroll
      for (int i = 0; i < kOM; ++i) p[i] = s_p[(orow + i * kORowThreads) * kPStride + n];
#pragma unroll
      for (int c4 = 0; c4 < kOD / 4; ++c4) {
        const float4 v = *reinterpret_cast<const float4*>(s_v + n * kStride + (c4 * kOColThreads + ocol) * 4);
#pragma unroll
        for (int i = 0; i < kOM; ++i) {
          o[i][c4 * 4 + 0] = fmaf(p[i], v.x, o[i][c4 * 4 + 0]);
          o[i][c4 * 4 + 1] = fmaf(p[i], v.y, o[i][c4 * 4 + 1]);
          o[i][c4 * 4 + 2] = fmaf(p[i], v.z, o[i][c4 * 4 + 2]);
          o[i][c4 * 4 + 3] = fmaf(p[i], v.w, o[i][c4 * 4 + 3]);
        }
      }
    }
    __syncthreads();  // the next tile overwrites s_k / s_v / s_p / s_alpha
  }

  // ---- out = O / l ----
  if (kc == 0) {
#pragma unroll
    for (int i = 0; i < kTM; ++i) s_l[srow + i * kSRowThreads] = l_run[i];
  }
  __syncthreads();
  T* out = static_cast<T*>(a.out);
#pragma unroll
  for (int i = 0; i < kOM; ++i) {
    const int r = orow + i * kORowThreads, row = r0 + r;
    if (row >= a.rows) continue;
    const float inv = 1.0f / s_l[r];  // >= 1: every row sees its own position
    T* dst = out + static_cast<int64_t>(row / g) * q_stride + static_cast<int64_t>(kvh * g + row % g) * d;
#pragma unroll
    for (int c4 = 0; c4 < kOD / 4; ++c4) {
#pragma unroll
      for (int x = 0; x < 4; ++x) {
        const int col = (c4 * kOColThreads + ocol) * 4 + x;
        if (col < d) ActIo<T>::store(dst + col, o[i][c4 * 4 + x] * inv);
      }
    }
  }
}

template <typename T, int kD>
Status launch_prefill(const PrefillArgs& a, bool vector_path, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.rows + Cfg<kD>::kBM - 1) / Cfg<kD>::kBM), static_cast<unsigned>(a.n_kv_heads));
  if (vector_path) {
    QMODEL_LAUNCH(grid, kThreads, 0, stream, prefill_kernel<T, kD, true>)(a);
  } else {
    QMODEL_LAUNCH(grid, kThreads, 0, stream, prefill_kernel<T, kD, false>)(a);
  }
  return attn::check_launch("attention_prefill", stream);
}

template <typename T>
Status dispatch_prefill(const PrefillArgs& a, bool vector_path, cudaStream_t stream) {
  if (a.head_dim <= 32) return launch_prefill<T, 32>(a, vector_path, stream);
  if (a.head_dim <= 64) return launch_prefill<T, 64>(a, vector_path, stream);
  if (a.head_dim <= 128) return launch_prefill<T, 128>(a, vector_path, stream);
  return launch_prefill<T, 256>(a, vector_path, stream);
}

}  // namespace

Status attention_prefill(ActType act, const DeviceAttentionShape& shape, const void* q, int64_t m, int64_t start,
                         const void* k_cache, const void* v_cache, void* out, cudaStream_t stream) {
  QMODEL_RETURN_IF_ERROR(attn::validate_shape(act, shape));
  if (q == nullptr || k_cache == nullptr || v_cache == nullptr || out == nullptr) {
    return Status(StatusCode::kInvalidArgument, "attention_prefill: null pointer");
  }
  if (m < 0 || start < 0 || start + m > shape.max_context) {
    return Status(StatusCode::kInvalidArgument, "attention_prefill: tokens [" + std::to_string(start) + ", +" +
                                                    std::to_string(m) + ") outside the cache of " +
                                                    std::to_string(shape.max_context));
  }
  if (m == 0) return Status();
  const int32_t group = shape.n_heads / shape.n_kv_heads;
  if (m * group > INT32_MAX) return Status(StatusCode::kUnsupported, "attention_prefill: m * group past int32");
  PrefillArgs a{};
  a.q = q;
  a.k = k_cache;
  a.v = v_cache;
  a.out = out;
  a.n_heads = shape.n_heads;
  a.n_kv_heads = shape.n_kv_heads;
  a.head_dim = shape.head_dim;
  a.group = group;
  a.window = shape.sliding_window;
  a.m = static_cast<int32_t>(m);
  a.start = static_cast<int32_t>(start);
  a.rows = static_cast<int32_t>(m * group);
  a.scale_log2 = shape.scale != 0.0f ? kLog2e * shape.scale : kLog2e / std::sqrt(static_cast<float>(shape.head_dim));
  a.alibi = shape.alibi_slopes;
  a.alibi_scaled = shape.alibi_scaled;
  a.sqrt_d = std::sqrt(static_cast<float>(shape.head_dim));
  const bool vector_path =
      shape.head_dim % 8 == 0 && attn::aligned16(q) && attn::aligned16(k_cache) && attn::aligned16(v_cache);
  return attn::dispatch_act(act, [&](auto tag) { return dispatch_prefill<decltype(tag)>(a, vector_path, stream); });
}

}  // namespace qmodel::runtime::cuda
