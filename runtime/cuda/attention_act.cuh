// Private helpers of attention_*.cu: element loads / stores in the compute dtype (bf16 / fp16 /
// fp32, always to and from fp32 registers), the host-side dtype dispatch, the shape checks shared by
// decode and prefill and the post-launch check. The same operations as the kernels' ActTraits and
// check_launch, kept here so the attention files depend only on the CUDA headers and public APIs.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "device_types.h"
#include "qmodel/format/status.h"
#include "qmodel/kernels/cuda.h"

namespace qmodel::runtime::cuda::attn {

template <typename T>
struct ActIo;

template <>
struct ActIo<__nv_bfloat16> {
  __device__ static float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
  __device__ static void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
  // 8 consecutive elements from a 16-byte aligned address. A bf16 is the top half of a float, so
  // unpacking is a shift and a mask (element 2i sits in the low half, little-endian).
  __device__ static void load8(const __nv_bfloat16* p, float* f) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      f[2 * i] = __uint_as_float(w[i] << 16);
      f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  }
};

template <>
struct ActIo<__half> {
  __device__ static float load(const __half* p) { return __half2float(*p); }
  __device__ static void store(__half* p, float v) { *p = __float2half_rn(v); }
  __device__ static void load8(const __half* p, float* f) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      __half2 h;
      memcpy(&h, &w[i], sizeof(h));
      const float2 x = __half22float2(h);
      f[2 * i] = x.x;
      f[2 * i + 1] = x.y;
    }
  }
};

template <>
struct ActIo<float> {
  __device__ static float load(const float* p) { return *p; }
  __device__ static void store(float* p, float v) { *p = v; }
  __device__ static void load8(const float* p, float* f) {
    const float4 a = reinterpret_cast<const float4*>(p)[0];
    const float4 b = reinterpret_cast<const float4*>(p)[1];
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w;
    f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
  }
};

// kVec = 8: one aligned 16- or 32-byte load; kVec = 1: scalar loads, any alignment.
template <typename T, int kVec>
__device__ __forceinline__ void load_vec(const T* p, float* f) {
  if constexpr (kVec == 8) {
    ActIo<T>::load8(p, f);
  } else {
#pragma unroll
    for (int i = 0; i < kVec; ++i) f[i] = ActIo<T>::load(p + i);
  }
}

// ALiBi: the bias of key j for a head of slope `slope` is slope * j (BLOOM) or, alibi_scaled,
// Falcon-RW's bf16(bf16(slope) * j) / sqrt(head_dim) (runtime::alibi_bias). The kernels add
// bias(j) - bias(p), p the query's position, in the log2 domain: the softmax of a row is unchanged by
// that shift, and the bias stays small for the keys that carry the mass. BLOOM's difference is
// slope * (j - p) (one fma); Falcon-RW's is the difference of the two rounded biases, each
// computed bit for bit as the CPU does.
__device__ __forceinline__ float round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// Falcon-RW's bias of key j; slope_bf16 = round_bf16(slope), sqrt_d = sqrtf(head_dim) (host).
__device__ __forceinline__ float scaled_alibi_bias(float slope_bf16, int j, float sqrt_d) {
  return __fdiv_rn(round_bf16(__fmul_rn(slope_bf16, static_cast<float>(j))), sqrt_d);
}

// Host side: the element type of an ActType, passed to a functor as a value of that type.
template <typename F>
decltype(auto) dispatch_act(ActType act, F&& f) {
  switch (act) {
    case ActType::kBF16: return f(__nv_bfloat16{});
    case ActType::kF16: return f(__half{});
    case ActType::kF32: break;
  }
  return f(float{});
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

inline constexpr int kMaxHeadDim = 256;

// The check after every launch, as kernels::check_launch (kernels/cuda/common.cuh, internal to the
// kernels library): the launch error, and with QMODEL_CUDA_SYNC_DEBUG the kernel's own fault.
inline Status check_launch(const char* kernel, cudaStream_t stream) {
  QMODEL_RETURN_IF_ERROR(kernels::cuda_status(cudaGetLastError(), kernel));
#ifdef QMODEL_CUDA_SYNC_DEBUG
  QMODEL_RETURN_IF_ERROR(kernels::cuda_status(cudaStreamSynchronize(stream), kernel));
#else
  (void)stream;
#endif
  return Status();
}

// Checks shared by decode and prefill (host side, before anything touches the device).
inline Status validate_shape(ActType act, const DeviceAttentionShape& s) {
  if (act != ActType::kBF16 && act != ActType::kF16 && act != ActType::kF32) {
    return Status(StatusCode::kInvalidArgument, "attention: unknown activation type");
  }
  if (s.n_heads <= 0 || s.n_kv_heads <= 0 || s.head_dim <= 0 || s.max_context <= 0 || s.sliding_window < 0) {
    return Status(StatusCode::kInvalidArgument, "attention: non-positive dimension in the shape");
  }
  if (s.n_heads % s.n_kv_heads != 0) {
    return Status(StatusCode::kInvalidArgument, "attention: n_heads is not a multiple of n_kv_heads");
  }
  if (!std::isfinite(s.scale)) return Status(StatusCode::kInvalidArgument, "attention: non-finite scale");
  if (s.n_kv_heads > 65535) return Status(StatusCode::kUnsupported, "attention: more than 65535 KV heads");
  if (s.head_dim % 2 != 0 || s.head_dim > kMaxHeadDim) {
    return Status(StatusCode::kUnsupported,
                  "attention: head_dim " + std::to_string(s.head_dim) + " (even and <= 256 only)");
  }
  return Status();
}

}  // namespace qmodel::runtime::cuda::attn
