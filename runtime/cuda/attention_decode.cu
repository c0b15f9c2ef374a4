// Decode attention (one query token) as flash-decoding: the context is cut into chunks of
// kDecodeChunkKeys keys; block (chunk, kv head) computes, for every query head of the group, the
// chunk's max score, sum of exponentials and unnormalised partial output in fp32 (workspace); a
// second kernel merges the chunks per query head. The grid depends on max_context only and the
// position is read on the device, so one captured graph serves every step: blocks whose chunk lies
// outside the visible keys exit at once, and the combine reads only the visible chunks.
//
// Bandwidth is the whole story at batch 1: each block reads its K and V rows once for all query
// heads of the group (GQA), in 16-byte loads, four rows per lane in flight. At 256 keys a chunk,
// a 1000-token context of an 8-KV-head model makes only 32 busy blocks, so latency (bytes in
// flight), not peak bandwidth, bounds short contexts; long ones fill the GPU.
#include <cmath>

#include "attention.h"
#include "attention_act.cuh"
#include "qmodel/kernels/cuda_launch.cuh"

namespace qmodel::runtime::cuda {
namespace {

using attn::ActIo;

constexpr int kThreads = 256;
constexpr int kUnroll = 4;  // key rows per team loaded before use
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = kDecodeChunkKeys;
// Query heads per pass over the chunk: a larger group takes several passes (K/V then come from L2).
constexpr int kMaxGroup = 8;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr float kLog2e = 1.4426950408889634f;

struct DecodeArgs {
  const void* q;
  const void* k;
  const void* v;
  const int32_t* position;
  float* part_o;  // [n_heads][n_chunks][head_dim]
  float* part_m;  // [n_heads][n_chunks], log2 domain
  float* part_l;  // [n_heads][n_chunks]
  void* out;
  int32_t n_heads, n_kv_heads, head_dim, group, max_context, window, n_chunks;
  float scale_log2;     // log2(e) * scale: scores live in the log2 domain (exp2f)
  const float* alibi;   // ALiBi slopes [n_heads] or nullptr
  int32_t alibi_scaled; // Falcon-RW's form (attention_act.cuh)
  float sqrt_d;         // sqrtf(head_dim), its divisor
};

// Visible keys [first, pos] of the step; identical in both kernels.
struct Visible {
  int first, pos;
};
__device__ __forceinline__ Visible visible_keys(const DecodeArgs& a) {
  const int pos = min(max(*a.position, 0), a.max_context - 1);
  const int first = a.window > 0 ? max(0, pos + 1 - a.window) : 0;
  return {first, pos};
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// A team of kTeam lanes (a power of two <= 32, aligned in the warp) shares one key row; lane lt of
// the team owns the kIters vectors of kVec elements starting at (i * kTeam + lt) * kVec.
// Vector path: kVec = 8, kIters = 1 (head_dim <= 8 * kTeam). Scalar path: kVec = 2, kTeam = 32.
// (kThreads, 2): at most 128 registers, so two blocks share an SM (sm_90a: the vector path does
// not spill, the scalar one spills 8 bytes with nvcc 13.0).
template <typename T, int kTeam, int kVec, int kIters>
__global__ void __launch_bounds__(kThreads, 2) decode_chunk_kernel(DecodeArgs a) {
  __shared__ float s_p[kMaxGroup][kChunk];               // scores, then exp2(score - max)
  __shared__ float s_o[kMaxGroup][attn::kMaxHeadDim];    // cross-warp sum of the partial output
  __shared__ float s_m[kMaxGroup], s_l[kMaxGroup];
  constexpr int kTeams = kThreads / kTeam;
  constexpr int kBatch = kUnroll * kTeams;  // keys per batch of the block

  const Visible vis = visible_keys(a);
  const int chunk = static_cast<int>(blockIdx.x), kvh = static_cast<int>(blockIdx.y);
  const int c0 = chunk * kChunk;
  const int j_begin = max(c0, vis.first), j_end = min(c0 + kChunk, vis.pos + 1);
  if (j_begin >= j_end) return;  // uniform over the block: the chunk is not visible at this step

  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const int lt = tid % kTeam, team = tid / kTeam;
  const int d = a.head_dim;
  const int64_t kv_stride = static_cast<int64_t>(a.n_kv_heads) * d;
  const T* k_base = static_cast<const T*>(a.k) + static_cast<int64_t>(kvh) * d;
  const T* v_base = static_cast<const T*>(a.v) + static_cast<int64_t>(kvh) * d;

  for (int g0 = 0; g0 < a.group; g0 += kMaxGroup) {
    const int gn = min(kMaxGroup, a.group - g0);  // uniform: branches on it never diverge
    const int h0 = kvh * a.group + g0;

    // ---- scores: each team dots one key row with the gn query heads held in registers ----
    float q[kMaxGroup][kIters][kVec];
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
#pragma unroll
      for (int i = 0; i < kIters; ++i) {
        const int e = (i * kTeam + lt) * kVec;
        if (g < gn && e < d) {
          attn::load_vec<T, kVec>(static_cast<const T*>(a.q) + static_cast<int64_t>(h0 + g) * d + e, q[g][i]);
        } else {
#pragma unroll
          for (int x = 0; x < kVec; ++x) q[g][i][x] = 0.0f;
        }
      }
    }
    // kUnroll rows per team in flight before any is used: decode is latency bound at batch 1, and
    // 256 threads x 4 x 16 B = 16 KiB of loads in flight per block is what keeps HBM busy.
    for (int jb = j_begin; jb < j_end; jb += kBatch) {  // uniform, so the shuffles below converge
      float kf[kUnroll][kIters][kVec];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int j = jb + u * kTeams + team;
#pragma unroll
        for (int i = 0; i < kIters; ++i) {
          const int e = (i * kTeam + lt) * kVec;
          if (j < j_end && e < d) {
            attn::load_vec<T, kVec>(k_base + j * kv_stride + e, kf[u][i]);
          } else {
#pragma unroll
            for (int x = 0; x < kVec; ++x) kf[u][i][x] = 0.0f;
          }
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int j = jb + u * kTeams + team;
#pragma unroll
        for (int g = 0; g < kMaxGroup; ++g) {
          if (g < gn) {
            float dot = 0.0f;
#pragma unroll
            for (int i = 0; i < kIters; ++i) {
#pragma unroll
              for (int x = 0; x < kVec; ++x) dot = fmaf(q[g][i][x], kf[u][i][x], dot);
            }
#pragma unroll
            for (int o = kTeam / 2; o > 0; o /= 2) dot += __shfl_xor_sync(kFullMask, dot, o);
            if (j < j_end && lt == 0) s_p[g][j - c0] = dot * a.scale_log2;
          }
        }
      }
    }
    __syncthreads();

    // ---- chunk softmax statistics: one warp per query head ----
    for (int g = warp; g < gn; g += kWarps) {
      float mx = -INFINITY;
      if (a.alibi != nullptr) {
        // ALiBi as bias(j) - bias(p) (attention_act.cuh), added here, out of the register-heavy
        // score loop; each lane rereads only its own entries below.
        const float slope = a.alibi[h0 + g];
        const int pos = visible_keys(a).pos;  // reread, not kept live through the score loop
        if (a.alibi_scaled != 0) {
          const float slope_bf16 = attn::round_bf16(slope);
          const float bias_p = attn::scaled_alibi_bias(slope_bf16, pos, a.sqrt_d);
          for (int j = j_begin + lane; j < j_end; j += 32) {
            const float bias = attn::scaled_alibi_bias(slope_bf16, j, a.sqrt_d) - bias_p;
            const float sc = fmaf(bias, kLog2e, s_p[g][j - c0]);
            s_p[g][j - c0] = sc;
            mx = fmaxf(mx, sc);
          }
        } else {
          const float slope_log2 = slope * kLog2e;
          for (int j = j_begin + lane; j < j_end; j += 32) {
            const float sc = fmaf(slope_log2, static_cast<float>(j - pos), s_p[g][j - c0]);
            s_p[g][j - c0] = sc;
            mx = fmaxf(mx, sc);
          }
        }
      } else {
        for (int j = j_begin + lane; j < j_end; j += 32) mx = fmaxf(mx, s_p[g][j - c0]);
      }
      mx = warp_max(mx);
      float sum = 0.0f;
      for (int j = j_begin + lane; j < j_end; j += 32) {
        const float p = exp2f(s_p[g][j - c0] - mx);
        s_p[g][j - c0] = p;
        sum += p;
      }
      sum = warp_sum(sum);
      if (lane == 0) {
        s_m[g] = mx;
        s_l[g] = sum;
      }
    }
    __syncthreads();

    // ---- partial output: teams stride over the keys, each V row read once for the group ----
    float acc[kMaxGroup][kIters][kVec];
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
#pragma unroll
      for (int i = 0; i < kIters; ++i) {
#pragma unroll
        for (int x = 0; x < kVec; ++x) acc[g][i][x] = 0.0f;
      }
    }
    for (int jb = j_begin; jb < j_end; jb += kBatch) {
      float vf[kUnroll][kIters][kVec];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int j = jb + u * kTeams + team;
#pragma unroll
        for (int i = 0; i < kIters; ++i) {
          const int e = (i * kTeam + lt) * kVec;
          if (j < j_end && e < d) {
            attn::load_vec<T, kVec>(v_base + j * kv_stride + e, vf[u][i]);
          } else {
#pragma unroll
            for (int x = 0; x < kVec; ++x) vf[u][i][x] = 0.0f;
          }
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int j = jb + u * kTeams + team;
        if (j >= j_end) continue;
#pragma unroll
        for (int g = 0; g < kMaxGroup; ++g) {
          if (g < gn) {
            const float p = s_p[g][j - c0];
#pragma unroll
            for (int i = 0; i < kIters; ++i) {
#pragma unroll
              for (int x = 0; x < kVec; ++x) acc[g][i][x] = fmaf(p, vf[u][i][x], acc[g][i][x]);
            }
          }
        }
      }
    }
    // Teams of one warp: butterfly over the lane bits above the team; then warps in turn (a fixed
    // order keeps the result deterministic, unlike shared-memory atomics).
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g < gn) {
#pragma unroll
        for (int o = kTeam; o < 32; o *= 2) {
#pragma unroll
          for (int i = 0; i < kIters; ++i) {
#pragma unroll
            for (int x = 0; x < kVec; ++x) acc[g][i][x] += __shfl_xor_sync(kFullMask, acc[g][i][x], o);
          }
        }
      }
    }
    for (int w = 0; w < kWarps; ++w) {
      if (warp == w && lane < kTeam) {
#pragma unroll
        for (int g = 0; g < kMaxGroup; ++g) {
          if (g < gn) {
#pragma unroll
            for (int i = 0; i < kIters; ++i) {
#pragma unroll
              for (int x = 0; x < kVec; ++x) {
                const int e = (i * kTeam + lt) * kVec + x;
                if (e < d) s_o[g][e] = (w == 0 ? 0.0f : s_o[g][e]) + acc[g][i][x];
              }
            }
          }
        }
      }
      __syncthreads();
    }
    for (int idx = tid; idx < gn * d; idx += kThreads) {
      const int g = idx / d, e = idx % d;
      a.part_o[(static_cast<int64_t>(h0 + g) * a.n_chunks + chunk) * d + e] = s_o[g][e];
    }
    if (tid < gn) {
      a.part_m[static_cast<int64_t>(h0 + tid) * a.n_chunks + chunk] = s_m[tid];
      a.part_l[static_cast<int64_t>(h0 + tid) * a.n_chunks + chunk] = s_l[tid];
    }
    __syncthreads();  // s_p / s_o / s_m / s_l are reused by the next pass
  }
}

// Block-wide reductions for the combine kernel (every thread gets the result).
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* s_tmp) {
  v = kMax ? warp_max(v) : warp_sum(v);
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  if (lane == 0) s_tmp[warp] = v;
  __syncthreads();
  float r = s_tmp[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) r = kMax ? fmaxf(r, s_tmp[w]) : r + s_tmp[w];
  __syncthreads();  // s_tmp is reused by the next reduction
  return r;
}

// One block per query head: out = sum_c 2^(m_c - M) o_c / sum_c 2^(m_c - M) l_c over the visible
// chunks (each holds at least one visible key, so every m_c is finite).
template <typename T>
__global__ void __launch_bounds__(kThreads) decode_combine_kernel(DecodeArgs a) {
  __shared__ float s_w[kThreads];
  __shared__ float s_tmp[kWarps];
  constexpr int kPerThread = attn::kMaxHeadDim / kThreads;
  const Visible vis = visible_keys(a);
  const int c_first = vis.first / kChunk, c_last = vis.pos / kChunk;
  const int h = static_cast<int>(blockIdx.x), tid = static_cast<int>(threadIdx.x), d = a.head_dim;
  const float* m = a.part_m + static_cast<int64_t>(h) * a.n_chunks;
  const float* l = a.part_l + static_cast<int64_t>(h) * a.n_chunks;
  const float* o = a.part_o + static_cast<int64_t>(h) * a.n_chunks * d;

  float mx = -INFINITY;
  for (int c = c_first + tid; c <= c_last; c += kThreads) mx = fmaxf(mx, m[c]);
  mx = block_reduce<true>(mx, s_tmp);
  float sum = 0.0f;
  for (int c = c_first + tid; c <= c_last; c += kThreads) sum += l[c] * exp2f(m[c] - mx);
  sum = block_reduce<false>(sum, s_tmp);

  float acc[kPerThread] = {};
  for (int cb = c_first; cb <= c_last; cb += kThreads) {
    const int c = cb + tid;
    s_w[tid] = c <= c_last ? exp2f(m[c] - mx) : 0.0f;
    __syncthreads();
    const int n = min(kThreads, c_last - cb + 1);
    for (int k = 0; k < n; ++k) {
      const float w = s_w[k];
      const float* oc = o + static_cast<int64_t>(cb + k) * d;
#pragma unroll
      for (int r = 0; r < kPerThread; ++r) {
        const int e = tid + r * kThreads;
        if (e < d) acc[r] = fmaf(w, oc[e], acc[r]);
      }
    }
    __syncthreads();
  }
  const float inv = 1.0f / sum;
  T* out = static_cast<T*>(a.out) + static_cast<int64_t>(h) * d;
#pragma unroll
  for (int r = 0; r < kPerThread; ++r) {
    const int e = tid + r * kThreads;
    if (e < d) ActIo<T>::store(out + e, acc[r] * inv);
  }
}

int32_t n_chunks_of(const DeviceAttentionShape& s) { return (s.max_context + kChunk - 1) / kChunk; }

template <typename T, int kTeam, int kVec, int kIters>
Status launch_decode(const DecodeArgs& a, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(a.n_chunks), static_cast<unsigned>(a.n_kv_heads));
  QMODEL_LAUNCH(grid, kThreads, 0, stream, decode_chunk_kernel<T, kTeam, kVec, kIters>)(a);
  QMODEL_RETURN_IF_ERROR(attn::check_launch("attention_decode_chunk", stream));
  QMODEL_LAUNCH(static_cast<unsigned>(a.n_heads), kThreads, 0, stream, decode_combine_kernel<T>)(a);
  return attn::check_launch("attention_decode_combine", stream);
}

template <typename T>
Status dispatch_decode(const DecodeArgs& a, bool vector_path, cudaStream_t stream) {
  if (!vector_path) return launch_decode<T, 32, 2, attn::kMaxHeadDim / 64>(a, stream);
  const int lanes = (a.head_dim + 7) / 8;  // 16-byte slices per row
  if (lanes <= 1) return launch_decode<T, 1, 8, 1>(a, stream);
  if (lanes <= 2) return launch_decode<T, 2, 8, 1>(a, stream);
  if (lanes <= 4) return launch_decode<T, 4, 8, 1>(a, stream);
  if (lanes <= 8) return launch_decode<T, 8, 8, 1>(a, stream);
  if (lanes <= 16) return launch_decode<T, 16, 8, 1>(a, stream);
  return launch_decode<T, 32, 8, 1>(a, stream);
}

}  // namespace

int64_t attention_decode_workspace_floats(const DeviceAttentionShape& shape) {
  if (shape.n_heads <= 0 || shape.head_dim <= 0 || shape.max_context <= 0) return 0;
  return static_cast<int64_t>(shape.n_heads) * n_chunks_of(shape) * (shape.head_dim + 2);
}

Status attention_decode(ActType act, const DeviceAttentionShape& shape, const void* q, const void* k_cache,
                        const void* v_cache, const int32_t* position, float* workspace, int64_t workspace_floats,
                        void* out, cudaStream_t stream) {
  QMODEL_RETURN_IF_ERROR(attn::validate_shape(act, shape));
  if (q == nullptr || k_cache == nullptr || v_cache == nullptr || position == nullptr || workspace == nullptr ||
      out == nullptr) {
    return Status(StatusCode::kInvalidArgument, "attention_decode: null pointer");
  }
  const int64_t need = attention_decode_workspace_floats(shape);
  if (workspace_floats < need) {
    return Status(StatusCode::kInvalidArgument, "attention_decode: workspace of " + std::to_string(workspace_floats) +
                                                    " floats, needs " + std::to_string(need));
  }
  DecodeArgs a{};
  a.q = q;
  a.k = k_cache;
  a.v = v_cache;
  a.position = position;
  a.n_chunks = n_chunks_of(shape);
  const int64_t heads_chunks = static_cast<int64_t>(shape.n_heads) * a.n_chunks;
  a.part_o = workspace;
  a.part_m = workspace + heads_chunks * shape.head_dim;
  a.part_l = a.part_m + heads_chunks;
  a.out = out;
  a.n_heads = shape.n_heads;
  a.n_kv_heads = shape.n_kv_heads;
  a.head_dim = shape.head_dim;
  a.group = shape.n_heads / shape.n_kv_heads;
  a.max_context = shape.max_context;
  a.window = shape.sliding_window;
  a.scale_log2 = shape.scale != 0.0f ? kLog2e * shape.scale : kLog2e / std::sqrt(static_cast<float>(shape.head_dim));
  a.alibi = shape.alibi_slopes;
  a.alibi_scaled = shape.alibi_scaled;
  a.sqrt_d = std::sqrt(static_cast<float>(shape.head_dim));
  // 16-byte row slices need 16-byte aligned bases; the row stride is then a multiple of 16 too.
  const bool vector_path =
      shape.head_dim % 8 == 0 && attn::aligned16(q) && attn::aligned16(k_cache) && attn::aligned16(v_cache);
  return attn::dispatch_act(act, [&](auto tag) { return dispatch_decode<decltype(tag)>(a, vector_path, stream); });
}

}  // namespace qmodel::runtime::cuda
