// The two GEMV kernel skeletons every storage type shares; a Policy (gemv_4bit.cu, gemv_int8.cu,
// gemv_float.cu) says how a 16-byte chunk of stored weights is decoded. y[i, r] = sum_k x[i,k] W[r,k].
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

template <typename Policy, typename ActT, int kM>
__global__ void __launch_bounds__(kBlockThreads)
    gemv_aligned_kernel(const DeviceWeightView w, const ActT* __restrict__ x,
                        const float* __restrict__ bias, ActT* __restrict__ y, int warps_per_row) {
  __shared__ typename Policy::Shared s_tab;
  __shared__ float s_partial[kWarpsPerBlock][kM];
  Policy::init(s_tab, w);
  __syncthreads();

  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int rows_per_block = kWarpsPerBlock / warps_per_row;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * rows_per_block + warp / warps_per_row;
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

template <typename Policy, typename ActT>
__global__ void __launch_bounds__(kBlockThreads)
    gemv_general_kernel(const DeviceWeightView w, const ActT* __restrict__ x, int m,
                        const float* __restrict__ bias, ActT* __restrict__ y) {
  __shared__ typename Policy::Shared s_tab;
  Policy::init(s_tab, w);
  __syncthreads();

  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
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
Status launch_aligned_m(const DeviceWeightView& w, const ActT* x, const float* bias, ActT* y,
                        cudaStream_t stream) {
  int n_sms = 0;
  QMODEL_RETURN_IF_ERROR(current_sm_count(&n_sms));
  const int64_t n_chunks = w.cols / Policy::kElemsPerChunk;
  const int wpr = choose_warps_per_row(w.rows, n_chunks, n_sms);
  const int64_t rows_per_block = kWarpsPerBlock / wpr;
  const int64_t n_blocks = (w.rows + rows_per_block - 1) / rows_per_block;
  if (n_blocks > INT32_MAX) return Status(StatusCode::kUnsupported, "gemv: too many rows");
  QMODEL_LAUNCH(static_cast<unsigned>(n_blocks), kBlockThreads, 0, stream,
                gemv_aligned_kernel<Policy, ActT, kM>)(w, x, bias, y, wpr);
  return check_launch("gemv_aligned_kernel", stream);
}

// Dispatches m (1..8) to the kernel instantiated for it (kM is a template argument so the
// per-lane accumulators are registers).
template <typename Policy, typename ActT>
Status launch_aligned(const DeviceWeightView& w, const ActT* x, int m, const float* bias, ActT* y,
                      cudaStream_t stream) {
  switch (m) {
    case 1: return launch_aligned_m<Policy, ActT, 1>(w, x, bias, y, stream);
    case 2: return launch_aligned_m<Policy, ActT, 2>(w, x, bias, y, stream);
    case 3: return launch_aligned_m<Policy, ActT, 3>(w, x, bias, y, stream);
    case 4: return launch_aligned_m<Policy, ActT, 4>(w, x, bias, y, stream);
    case 5: return launch_aligned_m<Policy, ActT, 5>(w, x, bias, y, stream);
    case 6: return launch_aligned_m<Policy, ActT, 6>(w, x, bias, y, stream);
    case 7: return launch_aligned_m<Policy, ActT, 7>(w, x, bias, y, stream);
    case 8: return launch_aligned_m<Policy, ActT, 8>(w, x, bias, y, stream);
    default: return Status(StatusCode::kUnsupported, "gemv: m must be 1..8");
  }
}

template <typename Policy, typename ActT>
Status launch_general(const DeviceWeightView& w, const ActT* x, int m, const float* bias, ActT* y,
                      cudaStream_t stream) {
  const int64_t n_blocks = (w.rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (n_blocks > INT32_MAX) return Status(StatusCode::kUnsupported, "gemv: too many rows");
  QMODEL_LAUNCH(static_cast<unsigned>(n_blocks), kBlockThreads, 0, stream,
                gemv_general_kernel<Policy, ActT>)(w, x, m, bias, y);
  return check_launch("gemv_general_kernel", stream);
}

// Picks the aligned or general kernel and the activation type. `aligned` is decided by the
// family's launcher (it knows its chunk geometry).
template <typename Policy>
Status launch_gemv_family(ActType act, const void* x, int m, const DeviceWeightView& w,
                          const float* bias, void* y, bool aligned, cudaStream_t stream) {
  if (act == ActType::kBF16) {
    const auto* xa = static_cast<const __nv_bfloat16*>(x);
    auto* ya = static_cast<__nv_bfloat16*>(y);
    return aligned ? launch_aligned<Policy>(w, xa, m, bias, ya, stream)
                   : launch_general<Policy>(w, xa, m, bias, ya, stream);
  }
  if (act == ActType::kF16) {
    const auto* xa = static_cast<const __half*>(x);
    auto* ya = static_cast<__half*>(y);
    return aligned ? launch_aligned<Policy>(w, xa, m, bias, ya, stream)
                   : launch_general<Policy>(w, xa, m, bias, ya, stream);
  }
  return Status(StatusCode::kUnsupported, "gemv: activations must be bf16 or f16");
}

// x rows start every k elements; 16-byte activation loads need k * 2 bytes to be a multiple of 16
// and x itself 16-byte aligned.
inline bool activations_vector_ok(const void* x, int64_t k) {
  return is_aligned(x, 16) && (k % 8) == 0;
}

}  // namespace qmodel::kernels::detail
