// Row gather (the embedding lookup): out[i, :] = row row_ids[i] of a stored weight, dequantized to
// fp32 / fp16 / bf16 with dequant_common.cuh's arithmetic, so every value is bit-identical to
// dequantize_ref of that row plus one round-to-nearest-even conversion. The ids are read on the
// device, so a captured CUDA graph can replay the lookup with new ids.
//
// Thread -> data: blockIdx.y walks the ids (grid-stride, at most 65535 blocks in y); within a row,
// thread g of the x grid-stride loop owns column group [8g, 8g + 8). When cols % 8 == 0 every
// row starts on a group boundary, so (with aligned pointers) a group is one vector load and one
// 16-byte store (two for fp32), as in dequant.cu; otherwise rows start mid-group (4-bit rows may
// start mid-byte or mid-block) and every element takes the scalar path. An id outside [0, rows)
// fills its output row with NaN: a bad token id shows up in the logits instead of reading (or
// faulting on) memory outside the weight.
#include <algorithm>
#include <string>

#include "dequant_common.cuh"

namespace qmodel::kernels {
namespace {

using detail::ActTraits;
using detail::kGroup;

// y grid limit of CUDA (65535); more ids are handled by the grid-stride loop.
constexpr int64_t kMaxGridY = 65535;

template <int kStorage, bool kDoubleQuant, typename OutT>
__global__ void __launch_bounds__(detail::kBlockThreads)
    gather_rows_kernel(const DeviceWeightView w, const int32_t* __restrict__ row_ids, int64_t n_ids,
                       OutT* __restrict__ out, bool vector_ok) {
  __shared__ float s_lut[16];
  __shared__ float s_dyn[kDoubleQuant ? kDynamicMapSize : 1];
  detail::load_dequant_tables<kDoubleQuant>(w, s_lut, s_dyn);
  __syncthreads();
  const int log2_bs = w.block_size > 0 ? __ffsll(static_cast<long long>(w.block_size)) - 1 : 0;

  const int64_t cols = w.cols;
  const int64_t n_groups = (cols + kGroup - 1) / kGroup;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.y; i < n_ids; i += gridDim.y) {
    const int64_t id = __ldg(row_ids + i);  // the same address for the whole block: one broadcast
    const bool valid = id >= 0 && id < w.rows;
    const int64_t first = valid ? id * cols : 0;  // flat index of the row's first element
    OutT* orow = out + i * cols;
    for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < n_groups; g += step) {
      const int64_t c0 = g * kGroup;
      const int64_t n = min(static_cast<int64_t>(kGroup), cols - c0);
      if (!valid) {
        for (int64_t j = 0; j < n; ++j) orow[c0 + j] = ActTraits<OutT>::from_float(__uint_as_float(0x7fc00000u));
      } else if (vector_ok && n == kGroup) {
        float v[kGroup];
        detail::dequant_group<kStorage, kDoubleQuant>(w, s_lut, s_dyn, log2_bs, first + c0, v);
        detail::store_group(orow + c0, v);
      } else {
        for (int64_t j = 0; j < n; ++j) {
          orow[c0 + j] = ActTraits<OutT>::from_float(
              detail::dequant_element<kStorage, kDoubleQuant>(w, s_lut, s_dyn, log2_bs, first + c0 + j));
        }
      }
    }
  }
}

template <int kStorage, bool kDoubleQuant, typename OutT>
Status launch_typed(const DeviceWeightView& w, const int32_t* row_ids, int64_t n_ids, OutT* out,
                    cudaStream_t stream) {
  // Vector path: every row starts on a group (cols % 8 == 0), so output rows stay 16-byte aligned
  // (8 elements of 2 or 4 bytes) and the stored groups aligned for their load width.
  const bool vector_ok = (w.cols % kGroup) == 0 && is_aligned(out, 16) &&
                         is_aligned(w.data, static_cast<uintptr_t>(detail::group_load_bytes(w.storage)));
  const int64_t n_groups = (w.cols + kGroup - 1) / kGroup;
  // One pass over a row per block row; rows of more than 2^31 groups are covered by the stride.
  const int64_t grid_x = std::min<int64_t>((n_groups + detail::kBlockThreads - 1) / detail::kBlockThreads, INT32_MAX);
  const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(std::min(n_ids, kMaxGridY)));
  QMODEL_LAUNCH(grid, detail::kBlockThreads, 0, stream,
                gather_rows_kernel<kStorage, kDoubleQuant, OutT>)(w, row_ids, n_ids, out, vector_ok);
  return check_launch("gather_rows_kernel", stream);
}

template <typename OutT>
Status launch_for_out(const DeviceWeightView& w, const int32_t* row_ids, int64_t n_ids, OutT* out,
                      cudaStream_t stream) {
  constexpr int kNf4 = static_cast<int>(StorageType::kNF4);  // NF4 and FP4 differ only by table
  switch (w.storage) {
    case StorageType::kNF4:
    case StorageType::kFP4:
      return w.double_quant() ? launch_typed<kNf4, true>(w, row_ids, n_ids, out, stream)
                              : launch_typed<kNf4, false>(w, row_ids, n_ids, out, stream);
    case StorageType::kINT8:
      return launch_typed<static_cast<int>(StorageType::kINT8), false>(w, row_ids, n_ids, out, stream);
    case StorageType::kBF16:
      return launch_typed<static_cast<int>(StorageType::kBF16), false>(w, row_ids, n_ids, out, stream);
    case StorageType::kF16:
      return launch_typed<static_cast<int>(StorageType::kF16), false>(w, row_ids, n_ids, out, stream);
    case StorageType::kF32:
      return launch_typed<static_cast<int>(StorageType::kF32), false>(w, row_ids, n_ids, out, stream);
  }
  return Status(StatusCode::kInvalidArgument, "gather_rows: unknown storage type");
}

}  // namespace

Status launch_gather_rows(const DeviceWeightView& w, const int32_t* row_ids, int64_t n_ids,
                          ActType out_dtype, void* out, cudaStream_t stream) {
  QMODEL_RETURN_IF_ERROR(validate_device_weight(w));
  if (n_ids < 0) return Status(StatusCode::kInvalidArgument, "gather_rows: negative n_ids");
  if (n_ids == 0) return Status();
  if (row_ids == nullptr || out == nullptr) {
    return Status(StatusCode::kInvalidArgument, "gather_rows: row_ids or out is null");
  }
  if (n_ids > INT64_MAX / w.cols) return Status(StatusCode::kUnsupported, "gather_rows: n_ids*cols overflows");
  switch (out_dtype) {
    case ActType::kF32: return launch_for_out(w, row_ids, n_ids, static_cast<float*>(out), stream);
    case ActType::kF16: return launch_for_out(w, row_ids, n_ids, static_cast<__half*>(out), stream);
    case ActType::kBF16: return launch_for_out(w, row_ids, n_ids, static_cast<__nv_bfloat16*>(out), stream);
  }
  return Status(StatusCode::kUnsupported, "gather_rows: unknown output type");
}

}  // namespace qmodel::kernels
