// Shared device helpers for the CUDA kernels: activation element traits (bf16 / fp16 <-> fp32,
// round to nearest even), streaming loads, warp reductions, the per-block absmax of 4-bit weights
// (double quantization resolved in bnb's two roundings) and the launch-check helper. Internal to
// kernels/cuda; the public API is qmodel/kernels/cuda.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "qmodel/format/quant_blocks.h"
#include "qmodel/kernels/cuda.h"
#include "qmodel/kernels/cuda_launch.cuh"

namespace qmodel::kernels::detail {

inline constexpr int kWarpSize = 32;
// 8 warps per block everywhere: enough warps per SM for latency hiding at 8 resident blocks
// (2048 threads, Hopper's limit) and small enough that a grid covers 132 SMs for N >= 1024.
inline constexpr int kBlockThreads = 256;
inline constexpr int kWarpsPerBlock = kBlockThreads / kWarpSize;
// bnb's int8 dequant constant (the python float 1/127 as float32), kept identical to the CPU ref.
inline constexpr float kInt8DequantScale = 7.874015718698502e-3f;

// ---- activation element traits ------------------------------------------------------------
template <typename T>
struct ActTraits;

template <>
struct ActTraits<__nv_bfloat16> {
  // Two packed bf16 (element 2j in the low half, little-endian) -> two floats: a bf16 is the top
  // half of a float, so this is a shift and a mask, no conversion instruction.
  __device__ static float2 unpack2(uint32_t v) {
    return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
  }
  __device__ static float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
};

template <>
struct ActTraits<__half> {
  __device__ static float2 unpack2(uint32_t v) {
    __half2 h;
    static_assert(sizeof(h) == sizeof(v), "half2 is 4 bytes");
    memcpy(&h, &v, sizeof(v));
    return __half22float2(h);
  }
  __device__ static float to_float(__half v) { return __half2float(v); }
  __device__ static __half from_float(float v) { return __float2half_rn(v); }
};

template <>
struct ActTraits<float> {
  __device__ static float to_float(float v) { return v; }
  __device__ static float from_float(float v) { return v; }
};

// ---- loads ----------------------------------------------------------------------------------
// Weights are streamed exactly once per launch: the non-coherent path with L1::no_allocate keeps
// them from evicting the activations, which every warp of the SM re-reads from L1.
__device__ __forceinline__ uint4 load_stream_u4(const void* p) {
#if defined(QMODEL_CUDA_EMULATION)
  return __ldg(static_cast<const uint4*>(p));  // same read-only 16-byte load, alignment checked
#else
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
#endif
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// ---- 4-bit block scale ------------------------------------------------------------------------
// absmax of 4-bit block b. With double quantization: dyn[q] * nested[b / 256] + offset as two
// separately rounded float ops (bnb runs dequantize_blockwise, then a separate `+ offset`), so the
// result is bit-identical to block_absmax_ref; __fmul_rn / __fadd_rn forbid contraction to FMA.
// `dyn` is the 256-entry nested code table (shared or global memory).
template <bool kDoubleQuant>
__device__ __forceinline__ float block_absmax(const DeviceWeightView& w, const float* dyn, int64_t b) {
  if constexpr (kDoubleQuant) {
    const float scaled = __fmul_rn(dyn[__ldg(w.absmax_codes + b)], __ldg(w.nested_absmax + (b >> 8)));
    return __fadd_rn(scaled, w.nested_offset);
  } else {
    return __ldg(w.absmax + b);
  }
}

// Copies the by-value 16-entry code table into shared memory. Indexing a kernel-parameter array
// with a run-time index would make the compiler copy the whole parameter to local memory, so
// each of the first 16 threads picks its entry through an unrolled compare.
__device__ __forceinline__ void load_code_table(const DeviceWeightView& w, float* s_lut) {
  const int t = static_cast<int>(threadIdx.x);
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    if (t == i) s_lut[i] = w.code_table[i];
  }
}

}  // namespace qmodel::kernels::detail

namespace qmodel::kernels {

// Checks the launch just made (cudaGetLastError), and with QMODEL_CUDA_SYNC_DEBUG also waits for
// it so an asynchronous fault is reported at the launch that caused it.
inline Status check_launch(const char* kernel, cudaStream_t stream) {
  QMODEL_RETURN_IF_ERROR(cuda_status(cudaGetLastError(), kernel));
#ifdef QMODEL_CUDA_SYNC_DEBUG
  QMODEL_RETURN_IF_ERROR(cuda_status(cudaStreamSynchronize(stream), kernel));
#else
  (void)stream;
#endif
  return Status();
}

inline bool is_aligned(const void* p, uintptr_t n_bytes) {
  return (reinterpret_cast<uintptr_t>(p) % n_bytes) == 0;
}

inline int log2_exact(int64_t v) {
  int s = 0;
  while ((int64_t{1} << s) < v) ++s;
  return s;
}

// Internal GEMV launchers, one per kernel family: `count` (1..kMaxGemvMulti) weights sharing x,
// all of the family's storage type and double-quant-ness; biases[j] may be null. Validation of
// the views, m, act and the pointers is done by the caller (launch.cu).
Status launch_gemv_4bit(ActType act, const void* x, int m, const DeviceWeightView* ws,
                        const float* const* biases, void* const* ys, int count, cudaStream_t stream);
Status launch_gemv_int8(ActType act, const void* x, int m, const DeviceWeightView* ws,
                        const float* const* biases, void* const* ys, int count, cudaStream_t stream);
Status launch_gemv_float(ActType act, const void* x, int m, const DeviceWeightView* ws,
                         const float* const* biases, void* const* ys, int count, cudaStream_t stream);

// Number of SMs of the current device (for grid sizing); 132 on an H100 SXM.
Status current_sm_count(int* n_sms);

}  // namespace qmodel::kernels
