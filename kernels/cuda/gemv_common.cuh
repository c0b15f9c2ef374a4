// The two GEMV kernel skeletons every storage type shares; a Policy (gemv_4bit.cu, gemv_int8.cu,
// gemv_float.cu) says how a 16-byte chunk of stored weights is decoded. y[i, r] = sum_k x[i,k] W[r,k].
// Activations are bf16, fp16 or fp32 (ActVec: 8 activations are one 16-byte load, two for fp32).
//
// Batches (launch_gemv_multi): a launch takes up to kMaxGemvMulti weights that share x. The grid is
// the concatenation of the grids the weights would get alone (weight j owns blocks
// [first_block[j], first_block[j+1]), the last one up to the grid's end, each weight with its own
// warps_per_row), so every output is
// bit-identical to a single-weight launch; launch_gemv is a batch of one.
//
// gemv_aligned_kernel (rows 16-byte aligned, every chunk inside one scale block):
//   block = 8 warps; a row is handled by `warps_per_row` (1, 2, 4 or 8) warps of one block, so a
//   block covers 8 / warps_per_row rows. Lane l of the row's warp w reads 16-byte chunks
//   c = (w*32 + l) + j * (32*warps_per_row): consecutive lanes read consecutive 16 bytes, so one
//   warp load is 512 contiguous bytes (fully coalesced), every weight byte is read exactly once,
//   and kUnroll independent chunk loads per lane are in flight before the first is used.
//   Each lane keeps kM fp32 partial sums (one per activation row); the warp reduces with
//   shuffles, the row's warps through shared memory, and one lane per activation row adds the
//   bias and writes y (the epilogue is fused: no second pass over y).
// gemv_general_kernel (any k, any alignment, blocks straddling rows, a row starting mid-byte):
//   one warp per row, lane l handles k = l, l+32, ... decoding one element at a time with the
//   reference's exact arithmetic. Slow but correct by construction; only odd shapes take it.
#pragma once

#include "common.cuh"

namespace qmodel::kernels::detail {

// 4 independent 16-byte loads per lane: 64 bytes in flight per lane, 16 KiB per block; with 4+
// resident blocks per SM that covers Hopper's ~3 TB/s x ~1 us latency product (~23 KiB per SM).
inline constexpr int kUnroll = 4;
inline constexpr int kChunkBytes = 16;

// kN consecutive activations (kN * sizeof(ActT) bytes: 8, 16 or 32, aligned to min(16, that)) in
// registers, loaded with 8- or 16-byte loads; pair(p) = elements 2p, 2p+1 as floats. For 16-bit
// types element 2p is the low half of word p (little-endian), so unpack2 is a shift and a mask.
template <typename ActT, int kN>
struct ActVec {
  static constexpr int kWords = kN * static_cast<int>(sizeof(ActT)) / 4;
  static_assert(kWords == 2 || kWords % 4 == 0, "one 8-byte load or whole 16-byte loads");
  uint32_t w[kWords];

  __device__ __forceinline__ void load(const ActT* p) {
    if constexpr (kWords == 2) {
      const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
      w[0] = v.x;
      w[1] = v.y;
    } else {
#pragma unroll
      for (int j = 0; j < kWords / 4; ++j) {
        const uint4 v = __ldg(reinterpret_cast<const uint4*>(p) + j);
        w[4 * j] = v.x;
        w[4 * j + 1] = v.y;
        w[4 * j + 2] = v.z;
        w[4 * j + 3] = v.w;
      }
    }
  }
  __device__ __forceinline__ float2 pair(int p) const {
    if constexpr (sizeof(ActT) == 4) {
      return make_float2(__uint_as_float(w[2 * p]), __uint_as_float(w[2 * p + 1]));
    } else {
      return ActTraits<ActT>::unpack2(w[p]);
    }
  }
};

// The weights of one launch (kernel parameter, by value). Entries past the batch's count are
// unused: their first_block is INT64_MAX so no block selects them.
template <typename ActT>
struct GemvBatch {
  DeviceWeightView w[kMaxGemvMulti];
  const float* bias[kMaxGemvMulti];
  ActT* y[kMaxGemvMulti];
  int warps_per_row[kMaxGemvMulti];    // gemv_aligned_kernel only
  int64_t first_block[kMaxGemvMulti];  // first_block[0] == 0
};
static_assert(kMaxGemvMulti == 3, "the kernels' weight selection below is written out for 3");

// Runs body(w, bias, y, warps_per_row, block within the weight) for the weight that owns this
// block. The indices into the
// parameter are compile-time constants: a run-time index would copy the batch to local memory.
// Each call is inlined, so every branch reads its weight's fields straight from the parameter.
template <typename ActT, typename Body>
__device__ __forceinline__ void for_my_weight(const GemvBatch<ActT>& batch, Body&& body) {
  const int64_t blk = static_cast<int64_t>(blockIdx.x);
  if (blk < batch.first_block[1]) {
    body(batch.w[0], batch.bias[0], batch.y[0], batch.warps_per_row[0], blk);
  } else if (blk < batch.first_block[2]) {
    body(batch.w[1], batch.bias[1], batch.y[1], batch.warps_per_row[1], blk - batch.first_block[1]);
  } else {
    body(batch.w[2], batch.bias[2], batch.y[2], batch.warps_per_row[2], blk - batch.first_block[2]);
  }
}

// Block `block` (counted from the weight's first block) of one weight: 8 / warps_per_row rows.
template <typename Policy, typename ActT, int kM>
__device__ __forceinline__ void gemv_aligned_block(typename Policy::Shared& s_tab,
                                                   float (&s_partial)[kWarpsPerBlock][kM],
                                                   const DeviceWeightView& w, const ActT* __restrict__ x,
                                                   const float* __restrict__ bias, ActT* __restrict__ y,
                                                   int warps_per_row, int64_t block) {
  Policy::init(s_tab, w);
  __syncthreads();

  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int rows_per_block = kWarpsPerBlock / warps_per_row;
  const int64_t row = block * rows_per_block + warp / warps_per_row;
  const int wk = warp % warps_per_row;  // which slice of the row's chunks this warp takes
  const int64_t k = w.cols;
  const int64_t n_chunks = k / Policy::kElemsPerChunk;

  float acc[kM];
#pragma unroll
  for (int i = 0; i < kM; ++i) acc[i] = 0.0f;

  if (row < w.rows) {
    const uint8_t* wrow = static_cast<const uint8_t*>(w.data) + row * n_chunks * kChunkBytes;
    const int64_t stride = static_cast<int64_t>(kWarpSize) * warps_per_row;
    for (int64_t c0 = wk * kWarpSize + lane; c0 < n_chunks; c0 += stride * kUnroll) {
      // All loads first (weights + their scales), then the math: kUnroll chunks in flight.
      uint4 q[kUnroll];
      float scale[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t c = c0 + u * stride;
        q[u] = make_uint4(0, 0, 0, 0);
        scale[u] = 0.0f;
        if (c < n_chunks) {
          q[u] = load_stream_u4(wrow + c * kChunkBytes);
          scale[u] = Policy::chunk_scale(s_tab, w, row * k + c * Policy::kElemsPerChunk);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t c = c0 + u * stride;
        if (c < n_chunks) {
          float dot[kM];
          Policy::template chunk_dot<ActT, kM>(s_tab, q[u], x + c * Policy::kElemsPerChunk, k, dot);
#pragma unroll
          for (int i = 0; i < kM; ++i) acc[i] = fmaf(dot[i], scale[u], acc[i]);
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kM; ++i) acc[i] = warp_sum(acc[i]);
  if (lane == 0) {
#pragma unroll
    for (int i = 0; i < kM; ++i) s_partial[warp][i] = acc[i];
  }
  __syncthreads();
  if (row < w.rows && wk == 0 && lane < kM) {
    float sum = 0.0f;
    for (int j = 0; j < warps_per_row; ++j) sum += s_partial[warp + j][lane];
    sum *= Policy::row_factor(w, row);
    if (bias != nullptr) sum += bias[row];
    y[static_cast<int64_t>(lane) * w.rows + row] = ActTraits<ActT>::from_float(sum);
  }
}

template <typename Policy, typename ActT, int kM>
__global__ void __launch_bounds__(kBlockThreads)
    gemv_aligned_kernel(const GemvBatch<ActT> batch, const ActT* __restrict__ x) {
  __shared__ typename Policy::Shared s_tab;
  __shared__ float s_partial[kWarpsPerBlock][kM];
  for_my_weight(batch, [&](const DeviceWeightView& w, const float* bias, ActT* y, int warps_per_row,
                           int64_t block) {
    gemv_aligned_block<Policy, ActT, kM>(s_tab, s_partial, w, x, bias, y, warps_per_row, block);
  });
}

// Block `block` of one weight: one warp per row, 8 rows.
template <typename Policy, typename ActT>
__device__ __forceinline__ void gemv_general_block(typename Policy::Shared& s_tab, const DeviceWeightView& w,
                                                   const ActT* __restrict__ x, int m,
                                                   const float* __restrict__ bias, ActT* __restrict__ y,
                                                   int64_t block) {
  Policy::init(s_tab, w);
  __syncthreads();

  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int64_t row = block * kWarpsPerBlock + warp;
  if (row >= w.rows) return;  // no block-wide barrier follows
  const int64_t k = w.cols;

  float acc[kMaxGemvRows];
#pragma unroll
  for (int i = 0; i < kMaxGemvRows; ++i) acc[i] = 0.0f;
  for (int64_t kk = lane; kk < k; kk += kWarpSize) {
    const float v = Policy::element(s_tab, w, row * k + kk);
    // Unrolled to kMaxGemvRows with a run-time guard so acc[] stays in registers.
#pragma unroll
    for (int i = 0; i < kMaxGemvRows; ++i) {
      if (i < m) acc[i] = fmaf(v, ActTraits<ActT>::to_float(x[i * k + kk]), acc[i]);
    }
  }
#pragma unroll
  for (int i = 0; i < kMaxGemvRows; ++i) acc[i] = warp_sum(acc[i]);
  if (lane == 0) {
    const float b = bias != nullptr ? bias[row] : 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxGemvRows; ++i) {
      if (i < m) y[i * w.rows + row] = ActTraits<ActT>::from_float(acc[i] + b);
    }
  }
}

template <typename Policy, typename ActT>
__global__ void __launch_bounds__(kBlockThreads)
    gemv_general_kernel(const GemvBatch<ActT> batch, const ActT* __restrict__ x, int m) {
  __shared__ typename Policy::Shared s_tab;
  for_my_weight(batch, [&](const DeviceWeightView& w, const float* bias, ActT* y, int, int64_t block) {
    gemv_general_block<Policy, ActT>(s_tab, w, x, m, bias, y, block);
  });
}

// ---- host side --------------------------------------------------------------------------------

// Smallest warps_per_row (1..8) that puts >= 32 warps on every SM (a full wave at 50%
// occupancy) while leaving each lane at least two chunks: small N (1024) then still fills the GPU
// with split-K, large N (14336) keeps one warp per row and no cross-warp reduction.
inline int choose_warps_per_row(int64_t n_rows, int64_t n_chunks, int n_sms) {
  int wpr = 1;
  while (wpr < kWarpsPerBlock && n_rows * wpr < int64_t{32} * n_sms &&
         n_chunks >= int64_t{2} * kWarpSize * wpr * 2) {
    wpr *= 2;
  }
  return wpr;
}

template <typename Policy, typename ActT, int kM>
Status launch_aligned_m(const GemvBatch<ActT>& batch, const ActT* x, unsigned n_blocks, cudaStream_t stream) {
  QMODEL_LAUNCH(n_blocks, kBlockThreads, 0, stream, gemv_aligned_kernel<Policy, ActT, kM>)(batch, x);
  return check_launch("gemv_aligned_kernel", stream);
}

// Dispatches m (1..8) to the kernel instantiated for it (kM is a template argument so the
// per-lane accumulators are registers).
template <typename Policy, typename ActT>
Status launch_aligned(const GemvBatch<ActT>& batch, const ActT* x, int m, unsigned n_blocks,
                      cudaStream_t stream) {
  switch (m) {
    case 1: return launch_aligned_m<Policy, ActT, 1>(batch, x, n_blocks, stream);
    case 2: return launch_aligned_m<Policy, ActT, 2>(batch, x, n_blocks, stream);
    case 3: return launch_aligned_m<Policy, ActT, 3>(batch, x, n_blocks, stream);
    case 4: return launch_aligned_m<Policy, ActT, 4>(batch, x, n_blocks, stream);
    case 5: return launch_aligned_m<Policy, ActT, 5>(batch, x, n_blocks, stream);
    case 6: return launch_aligned_m<Policy, ActT, 6>(batch, x, n_blocks, stream);
    case 7: return launch_aligned_m<Policy, ActT, 7>(batch, x, n_blocks, stream);
    case 8: return launch_aligned_m<Policy, ActT, 8>(batch, x, n_blocks, stream);
    default: return Status(StatusCode::kUnsupported, "gemv: m must be 1..8");
  }
}

// Launches the weights of one call (already validated; at most kMaxGemvMulti): those marked
// `aligned` together in one gemv_aligned_kernel, the others in one gemv_general_kernel. Each
// weight's block geometry depends on that weight alone, which keeps batched results bit-identical
// to single ones.
template <typename Policy, typename ActT>
Status launch_gemv_typed(const void* x_raw, int m, const DeviceWeightView* ws, const float* const* biases,
                         void* const* ys, int count, const bool* aligned, cudaStream_t stream) {
  const auto* x = static_cast<const ActT*>(x_raw);
  int n_sms = 0;
  QMODEL_RETURN_IF_ERROR(current_sm_count(&n_sms));
  for (const bool fast : {true, false}) {
    GemvBatch<ActT> batch{};
    int n = 0;
    int64_t n_blocks = 0;
    for (int j = 0; j < count; ++j) {
      if (aligned[j] != fast) continue;
      const DeviceWeightView& w = ws[j];
      int wpr = 1;
      if (fast) wpr = choose_warps_per_row(w.rows, w.cols / Policy::kElemsPerChunk, n_sms);
      const int64_t rows_per_block = kWarpsPerBlock / wpr;
      batch.w[n] = w;
      batch.bias[n] = biases[j];
      batch.y[n] = static_cast<ActT*>(ys[j]);
      batch.warps_per_row[n] = wpr;
      batch.first_block[n] = n_blocks;
      n_blocks += (w.rows + rows_per_block - 1) / rows_per_block;
      ++n;
    }
    if (n == 0) continue;
    for (int j = n; j < kMaxGemvMulti; ++j) batch.first_block[j] = INT64_MAX;
    if (n_blocks > INT32_MAX) return Status(StatusCode::kUnsupported, "gemv: too many rows");
    const auto grid = static_cast<unsigned>(n_blocks);
    if (fast) {
      QMODEL_RETURN_IF_ERROR((launch_aligned<Policy, ActT>(batch, x, m, grid, stream)));
    } else {
      QMODEL_LAUNCH(grid, kBlockThreads, 0, stream, gemv_general_kernel<Policy, ActT>)(batch, x, m);
      QMODEL_RETURN_IF_ERROR(check_launch("gemv_general_kernel", stream));
    }
  }
  return Status();
}

// Picks the activation type. `aligned[j]` (may weight j take the aligned kernel) is decided by the
// family's launcher, which knows its chunk geometry.
template <typename Policy>
Status launch_gemv_family(ActType act, const void* x, int m, const DeviceWeightView* ws,
                          const float* const* biases, void* const* ys, int count, const bool* aligned,
                          cudaStream_t stream) {
  switch (act) {
    case ActType::kBF16:
      return launch_gemv_typed<Policy, __nv_bfloat16>(x, m, ws, biases, ys, count, aligned, stream);
    case ActType::kF16: return launch_gemv_typed<Policy, __half>(x, m, ws, biases, ys, count, aligned, stream);
    case ActType::kF32: return launch_gemv_typed<Policy, float>(x, m, ws, biases, ys, count, aligned, stream);
  }
  return Status(StatusCode::kUnsupported, "gemv: unknown activation type");
}

inline int64_t act_bytes(ActType act) { return act == ActType::kF32 ? 4 : 2; }

// The aligned kernel reads activations with loads of `load_bytes` (8 or 16) at multiples of
// load_bytes from each row's start: x must be aligned to it and every row (k elements) too.
inline bool activations_vector_ok(const void* x, int64_t k, ActType act, int64_t load_bytes) {
  return is_aligned(x, static_cast<uintptr_t>(load_bytes)) && (k * act_bytes(act)) % load_bytes == 0;
}

}  // namespace qmodel::kernels::detail
