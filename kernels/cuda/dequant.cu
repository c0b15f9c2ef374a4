// Dequantization of any flat range [first, first + count) of a stored weight, every storage type,
// to fp32 / fp16 / bf16: the first half of the prefill GEMM (into a reused scratch buffer) and a
// debugging aid. Bit-identical to dequantize_ref followed by one round-to-nearest-even cast.
//
// Thread -> data: thread g of the grid-stride loop owns output group g = elements
// [8g, 8g + 8) of the range. When the range starts on a multiple of 8 and the pointers allow it,
// a full group is one vector load (4 bytes of 4-bit codes, 8 bytes of int8, 16 bytes of 16-bit
// values, 2 x 16 bytes of fp32) and one 16-byte store per 2-byte output (two for fp32): writing
// the output is the dominant traffic (4x the 4-bit input), so the stores are what must be wide.
// A group of 8 aligned elements never straddles a 4-bit block (block_size >= 32 is a power of two)
// or needs more than one absmax, so the scale is computed once per group. Groups at the ends, or
// every group when the range starts mid-byte / mid-block, take the scalar path element by
// element (same arithmetic, so results do not depend on the path).
#include <algorithm>
#include <string>
#include <type_traits>

#include "common.cuh"

namespace qmodel::kernels {
namespace {

using detail::ActTraits;

constexpr int kGroup = 8;

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

template <int kStorage, bool kDoubleQuant, typename OutT>
__global__ void __launch_bounds__(detail::kBlockThreads)
    dequantize_kernel(const DeviceWeightView w, int64_t first, int64_t count, OutT* __restrict__ out,
                      bool vector_ok) {
  __shared__ float s_lut[16];
  __shared__ float s_dyn[kDoubleQuant ? kDynamicMapSize : 1];
  detail::load_code_table(w, s_lut);
  if constexpr (kDoubleQuant) {
    for (int i = static_cast<int>(threadIdx.x); i < static_cast<int>(kDynamicMapSize);
         i += static_cast<int>(blockDim.x)) {
      s_dyn[i] = __ldg(w.nested_code_table + i);
    }
  }
  __syncthreads();
  const int log2_bs = w.block_size > 0 ? __ffsll(static_cast<long long>(w.block_size)) - 1 : 0;

  const int64_t n_groups = (count + kGroup - 1) / kGroup;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < n_groups; g += step) {
    const int64_t i0 = g * kGroup;  // offset into the output
    if (vector_ok && i0 + kGroup <= count) {
      float v[kGroup];
      dequant_group<kStorage, kDoubleQuant>(w, s_lut, s_dyn, log2_bs, first + i0, v);
      store_group(out + i0, v);
    } else {
      const int64_t n = min(static_cast<int64_t>(kGroup), count - i0);
      for (int64_t j = 0; j < n; ++j) {
        out[i0 + j] = ActTraits<OutT>::from_float(
            dequant_element<kStorage, kDoubleQuant>(w, s_lut, s_dyn, log2_bs, first + i0 + j));
      }
    }
  }
}

// Bytes one aligned group loads, for the source-alignment check.
int64_t group_load_bytes(StorageType s) {
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

template <int kStorage, bool kDoubleQuant, typename OutT>
Status launch_typed(const DeviceWeightView& w, int64_t first, int64_t count, OutT* out,
                    cudaStream_t stream) {
  // Vector path: the range starts on a group boundary, the output group is 16-byte aligned, and
  // the stored group is aligned for its load width (element offset first is a multiple of 8).
  const bool vector_ok = (first % kGroup) == 0 && is_aligned(out, 16) &&
                         is_aligned(w.data, static_cast<uintptr_t>(group_load_bytes(w.storage)));
  int n_sms = 0;
  QMODEL_RETURN_IF_ERROR(current_sm_count(&n_sms));
  const int64_t n_groups = (count + kGroup - 1) / kGroup;
  // Grid-stride: at most 16 blocks (4096 threads) per SM is plenty to saturate the store path.
  const int64_t max_blocks = int64_t{16} * n_sms;
  const int64_t n_blocks = std::min<int64_t>((n_groups + detail::kBlockThreads - 1) / detail::kBlockThreads, max_blocks);
  QMODEL_LAUNCH(static_cast<unsigned>(n_blocks), detail::kBlockThreads, 0, stream,
                dequantize_kernel<kStorage, kDoubleQuant, OutT>)(w, first, count, out, vector_ok);
  return check_launch("dequantize_kernel", stream);
}

template <typename OutT>
Status launch_for_out(const DeviceWeightView& w, int64_t first, int64_t count, OutT* out,
                      cudaStream_t stream) {
  constexpr int kNf4 = static_cast<int>(StorageType::kNF4);  // NF4 and FP4 differ only by table
  switch (w.storage) {
    case StorageType::kNF4:
    case StorageType::kFP4:
      return w.double_quant() ? launch_typed<kNf4, true>(w, first, count, out, stream)
                              : launch_typed<kNf4, false>(w, first, count, out, stream);
    case StorageType::kINT8:
      return launch_typed<static_cast<int>(StorageType::kINT8), false>(w, first, count, out, stream);
    case StorageType::kBF16:
      return launch_typed<static_cast<int>(StorageType::kBF16), false>(w, first, count, out, stream);
    case StorageType::kF16:
      return launch_typed<static_cast<int>(StorageType::kF16), false>(w, first, count, out, stream);
    case StorageType::kF32:
      return launch_typed<static_cast<int>(StorageType::kF32), false>(w, first, count, out, stream);
  }
  return Status(StatusCode::kInvalidArgument, "dequantize: unknown storage type");
}

}  // namespace

Status launch_dequantize(const DeviceWeightView& w, int64_t first, int64_t count, ActType out_dtype,
                         void* out, cudaStream_t stream) {
  QMODEL_RETURN_IF_ERROR(validate_device_weight(w));
  const int64_t n_elems = w.rows * w.cols;
  if (first < 0 || count < 0 || first > n_elems || count > n_elems - first) {
    return Status(StatusCode::kInvalidArgument, "dequantize: range [" + std::to_string(first) + ", +" +
                                                    std::to_string(count) + ") outside the weight");
  }
  if (count == 0) return Status();
  if (out == nullptr) return Status(StatusCode::kInvalidArgument, "dequantize: out is null");
  switch (out_dtype) {
    case ActType::kF32: return launch_for_out(w, first, count, static_cast<float*>(out), stream);
    case ActType::kF16: return launch_for_out(w, first, count, static_cast<__half*>(out), stream);
    case ActType::kBF16: return launch_for_out(w, first, count, static_cast<__nv_bfloat16*>(out), stream);
  }
  return Status(StatusCode::kUnsupported, "dequantize: unknown output type");
}

}  // namespace qmodel::kernels
