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

#include "dequant_common.cuh"

namespace qmodel::kernels {
namespace {

using detail::ActTraits;
using detail::dequant_element;
using detail::dequant_group;
using detail::group_load_bytes;
using detail::kGroup;
using detail::store_group;

template <int kStorage, bool kDoubleQuant, typename OutT>
__global__ void __launch_bounds__(detail::kBlockThreads)
    dequantize_kernel(const DeviceWeightView w, int64_t first, int64_t count, OutT* __restrict__ out,
                      bool vector_ok) {
  __shared__ float s_lut[16];
  __shared__ float s_dyn[kDoubleQuant ? kDynamicMapSize : 1];
  detail::load_dequant_tables<kDoubleQuant>(w, s_lut, s_dyn);
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
