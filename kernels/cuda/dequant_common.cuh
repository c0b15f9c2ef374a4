// Element and 8-element-group dequantization of a stored weight, shared by dequant.cu (flat ranges)
// and gather.cu (rows by id): one copy of the arithmetic, so both are bit-identical to
// dequantize_ref followed by one round-to-nearest-even conversion. A group [e0, e0 + 8) with
// e0 % 8 == 0 is one vector load and never straddles a 4-bit block (block_size >= 32 is a power of
// two); everything else goes element by element with the same arithmetic.
#pragma once

#include <cstring>
#include <type_traits>

#include "common.cuh"

namespace qmodel::kernels::detail {

inline constexpr int kGroup = 8;

// The block's copies of the 16-entry code table and, with double quantization, the 256-entry
// nested table (1 KiB: every absmax of the block looks it up). Callers __syncthreads() after.
template <bool kDoubleQuant>
__device__ __forceinline__ void load_dequant_tables(const DeviceWeightView& w, float* s_lut, float* s_dyn) {
  load_code_table(w, s_lut);
  if constexpr (kDoubleQuant) {
    for (int i = static_cast<int>(threadIdx.x); i < static_cast<int>(kDynamicMapSize);
         i += static_cast<int>(blockDim.x)) {
      s_dyn[i] = __ldg(w.nested_code_table + i);
    }
  }
}

// The dequantized value of flat element e, exactly as dequantize_ref (float32, bnb's order).
template <int kStorage, bool kDoubleQuant>
__device__ __forceinline__ float dequant_element(const DeviceWeightView& w, const float* s_lut,
                                                 const float* dyn, int log2_bs, int64_t e) {
  constexpr auto kSt = static_cast<StorageType>(kStorage);
  if constexpr (kSt == StorageType::kNF4 || kSt == StorageType::kFP4) {
    const uint8_t byte = __ldg(static_cast<const uint8_t*>(w.data) + (e >> 1));
    const uint32_t code = (e & 1) ? (byte & 0xfu) : (byte >> 4);  // element 2j: high nibble
    return __fmul_rn(s_lut[code], detail::block_absmax<kDoubleQuant>(w, dyn, e >> log2_bs));
  } else if constexpr (kSt == StorageType::kINT8) {
    const float q = static_cast<float>(__ldg(static_cast<const int8_t*>(w.data) + e));
    return __fmul_rn(__fmul_rn(q, __ldg(w.row_scale + e / w.cols)), detail::kInt8DequantScale);
  } else if constexpr (kSt == StorageType::kBF16) {
    return ActTraits<__nv_bfloat16>::to_float(static_cast<const __nv_bfloat16*>(w.data)[e]);
  } else if constexpr (kSt == StorageType::kF16) {
    return ActTraits<__half>::to_float(static_cast<const __half*>(w.data)[e]);
  } else {
    return static_cast<const float*>(w.data)[e];
  }
}

// Full aligned group [e0, e0 + 8): one vector load of the stored bytes.
template <int kStorage, bool kDoubleQuant>
__device__ __forceinline__ void dequant_group(const DeviceWeightView& w, const float* s_lut,
                                              const float* dyn, int log2_bs, int64_t e0,
                                              float (&v)[kGroup]) {
  constexpr auto kSt = static_cast<StorageType>(kStorage);
  if constexpr (kSt == StorageType::kNF4 || kSt == StorageType::kFP4) {
    // 8 codes = 4 bytes at e0/2 (e0 % 8 == 0, so 4-byte aligned); byte j = bits 8j..8j+7.
    const uint32_t word = __ldg(reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(w.data) + (e0 >> 1)));
    const float a = detail::block_absmax<kDoubleQuant>(w, dyn, e0 >> log2_bs);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t byte = (word >> (8 * j)) & 0xffu;
      v[2 * j] = __fmul_rn(s_lut[byte >> 4], a);
      v[2 * j + 1] = __fmul_rn(s_lut[byte & 0xfu], a);
    }
  } else if constexpr (kSt == StorageType::kINT8) {
    const uint2 q = __ldg(reinterpret_cast<const uint2*>(static_cast<const int8_t*>(w.data) + e0));
    // A group of 8 aligned to 8 can still cross a row when cols % 8 != 0: scale per element.
    const uint32_t words[2] = {q.x, q.y};
#pragma unroll
    for (int j = 0; j < kGroup; ++j) {
      const float qf = static_cast<float>(static_cast<int8_t>((words[j / 4] >> (8 * (j % 4))) & 0xffu));
      v[j] = __fmul_rn(__fmul_rn(qf, __ldg(w.row_scale + (e0 + j) / w.cols)), detail::kInt8DequantScale);
    }
  } else if constexpr (kSt == StorageType::kBF16 || kSt == StorageType::kF16) {
    using T = std::conditional_t<kSt == StorageType::kBF16, __nv_bfloat16, __half>;
    const uint4 q = __ldg(reinterpret_cast<const uint4*>(static_cast<const T*>(w.data) + e0));
    const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = ActTraits<T>::unpack2(words[j]);
      v[2 * j] = f.x;
      v[2 * j + 1] = f.y;
    }
  } else {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(w.data) + e0);
    const float4 a = __ldg(p), b = __ldg(p + 1);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
  }
}

template <typename OutT>
__device__ __forceinline__ void store_group(OutT* out, const float (&v)[kGroup]) {
  if constexpr (sizeof(OutT) == 4) {
    float4* p = reinterpret_cast<float4*>(out);
    p[0] = make_float4(v[0], v[1], v[2], v[3]);
    p[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
    uint32_t packed[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const OutT lo = ActTraits<OutT>::from_float(v[2 * j]);
      const OutT hi = ActTraits<OutT>::from_float(v[2 * j + 1]);
      uint16_t lo_bits, hi_bits;
      memcpy(&lo_bits, &lo, 2);
      memcpy(&hi_bits, &hi, 2);
      packed[j] = static_cast<uint32_t>(lo_bits) | (static_cast<uint32_t>(hi_bits) << 16);
    }
    *reinterpret_cast<uint4*>(out) = make_uint4(packed[0], packed[1], packed[2], packed[3]);
  }
}

// Bytes one aligned group loads, for the source-alignment check.
inline int64_t group_load_bytes(StorageType s) {
  switch (s) {
    case StorageType::kNF4:
    case StorageType::kFP4: return 4;
    case StorageType::kINT8: return 8;
    case StorageType::kBF16:
    case StorageType::kF16: return 16;
    case StorageType::kF32: return 16;  // two float4 loads
  }
  return 16;
}

}  // namespace qmodel::kernels::detail
