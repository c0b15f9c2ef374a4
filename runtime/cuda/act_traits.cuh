// Private helpers of the device ops (norm.cu, rope.cu, elementwise.cu, activation.cu, qkv_split.cu,
// positions.cu, sampling.cu): element loads / stores in the compute dtype (to / from fp32, round
// to nearest even), the host-side dtype dispatch, block reductions / scans and the launch check.
// Only intrinsics the CPU emulator of CUDA provides (no inline PTX, no dynamic shared memory).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "device_types.h"
#include "qmodel/format/status.h"
#include "qmodel/kernels/cuda.h"
#include "qmodel/kernels/cuda_launch.cuh"

namespace qmodel::runtime::cuda::detail {

inline constexpr int kWarp = 32;

template <typename T>
struct Act;

template <>
struct Act<__nv_bfloat16> {
  __device__ static float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};

template <>
struct Act<__half> {
  __device__ static float load(__half v) { return __half2float(v); }
  __device__ static __half store(float v) { return __float2half_rn(v); }
};

template <>
struct Act<float> {
  __device__ static float load(float v) { return v; }
  __device__ static float store(float v) { return v; }
};

// kVec consecutive elements moved as one aligned vector access (16 bytes for kVec * sizeof(T)).
template <typename T, int kVec>
struct alignas(sizeof(T) * kVec) Pack {
  T v[kVec];
};

// Host side: calls f(T{}) with T the element type of `act`.
template <typename F>
decltype(auto) dispatch_act(ActType act, F&& f) {
  switch (act) {
    case ActType::kBF16: return f(__nv_bfloat16{});
    case ActType::kF16: return f(__half{});
    case ActType::kF32: break;
  }
  return f(float{});
}

inline bool valid_act(ActType act) {
  return act == ActType::kBF16 || act == ActType::kF16 || act == ActType::kF32;
}

inline bool aligned_to(const void* p, uintptr_t n) { return reinterpret_cast<uintptr_t>(p) % n == 0; }

// cudaGetLastError after a launch; with QMODEL_CUDA_SYNC_DEBUG also waits, so an asynchronous
// fault is reported at the launch that caused it (never defined in a graph-capturing build).
inline Status check_launch(const char* kernel, cudaStream_t stream) {
  QMODEL_RETURN_IF_ERROR(kernels::cuda_status(cudaGetLastError(), kernel));
#ifdef QMODEL_CUDA_SYNC_DEBUG
  QMODEL_RETURN_IF_ERROR(kernels::cuda_status(cudaStreamSynchronize(stream), kernel));
#else
  (void)stream;
#endif
  return Status();
}

inline Status invalid(const char* what) { return Status(StatusCode::kInvalidArgument, what); }

// ---- block-wide collectives (every thread of the block must call them) -----------------------
// `s` is kWarp elements of static shared memory owned by the caller; the trailing barrier lets
// the caller reuse it at once.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float block_sum(float v, float* s) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp, warp = static_cast<int>(threadIdx.x) / kWarp;
  const int n_warps = (static_cast<int>(blockDim.x) + kWarp - 1) / kWarp;
  v = warp_sum(v);
  if (lane == 0) s[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < n_warps; ++w) total += s[w];  // same order in every thread: one result
  __syncthreads();
  return total;
}

// __shfl_up_sync of a 32- or 64-bit integer (64-bit as two 32-bit shuffles: portable to every
// shuffle implementation).
template <typename T>
__device__ __forceinline__ T shfl_up(T v, int delta) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "32- or 64-bit integers");
  if constexpr (sizeof(T) == 8) {
    const uint32_t lo = __shfl_up_sync(0xffffffffu, static_cast<uint32_t>(v), delta);
    const uint32_t hi = __shfl_up_sync(0xffffffffu, static_cast<uint32_t>(v >> 32), delta);
    return static_cast<T>((static_cast<uint64_t>(hi) << 32) | lo);
  } else {
    return static_cast<T>(__shfl_up_sync(0xffffffffu, static_cast<uint32_t>(v), delta));
  }
}

// Exclusive prefix sum over the block in thread order (integers: exact, deterministic); *total
// receives the block's sum. blockDim.x must be a multiple of 32.
template <typename T>
__device__ __forceinline__ T block_exclusive_scan(T v, T* s, T* total) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp, warp = static_cast<int>(threadIdx.x) / kWarp;
  const int n_warps = static_cast<int>(blockDim.x) / kWarp;
  T incl = v;
#pragma unroll
  for (int o = 1; o < kWarp; o *= 2) {
    const T up = shfl_up(incl, o);
    if (lane >= o) incl += up;
  }
  if (lane == kWarp - 1) s[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    T w = lane < n_warps ? s[lane] : T(0);
#pragma unroll
    for (int o = 1; o < kWarp; o *= 2) {
      const T up = shfl_up(w, o);
      if (lane >= o) w += up;
    }
    s[lane] = w;  // inclusive prefix of warp totals
  }
  __syncthreads();
  const T before = warp > 0 ? s[warp - 1] : T(0);
  *total = s[n_warps - 1];
  __syncthreads();
  return before + incl - v;
}

}  // namespace qmodel::runtime::cuda::detail
