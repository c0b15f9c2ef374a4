// Learned absolute position embeddings (ops.h: add_position_rows): x[t, :] += table[row(t), :]
// with row(t) = *start_position + offset + t read on the device, so one captured graph serves every
// decode step. One block per token; the fp32 adds are the CPU's add_inplace bit for bit.
#include <algorithm>

#include "act_traits.cuh"
#include "ops.h"

namespace qmodel::runtime::cuda {
namespace {

using detail::Act;

constexpr int kThreads = 256;

template <typename S>
__global__ void __launch_bounds__(kThreads) add_position_rows_kernel(const S* table, int64_t rows, int64_t n,
                                                                     const int32_t* start_position, int32_t offset,
                                                                     float* x) {
  const int64_t t = blockIdx.x;
  const int64_t r = static_cast<int64_t>(*start_position) + offset + t;
  if (r < 0 || r >= rows) return;  // the caller keeps positions in range; never read outside
  const S* src = table + r * n;
  float* xr = x + t * n;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) xr[i] = __fadd_rn(xr[i], Act<S>::load(src[i]));
}

}  // namespace

Status add_position_rows(const kernels::DeviceWeightView& table, const int32_t* start_position, int32_t offset,
                         int64_t m, int64_t n, float* x, cudaStream_t stream) {
  if (table.data == nullptr || start_position == nullptr || x == nullptr) {
    return detail::invalid("add_position_rows: null pointer");
  }
  if (m <= 0 || n <= 0 || table.rows <= 0) return detail::invalid("add_position_rows: non-positive size");
  if (table.cols != n) return detail::invalid("add_position_rows: the table's width is not n");
  if (m > INT32_MAX) return Status(StatusCode::kUnsupported, "add_position_rows: more than 2^31 - 1 rows");
  const int threads = static_cast<int>(std::min<int64_t>(kThreads, (n + 31) / 32 * 32));
  const dim3 grid(static_cast<unsigned>(m));
  switch (table.storage) {
    case StorageType::kF32:
      QMODEL_LAUNCH(grid, dim3(threads), 0, stream, add_position_rows_kernel<float>)
      (static_cast<const float*>(table.data), table.rows, n, start_position, offset, x);
      break;
    case StorageType::kF16:
      QMODEL_LAUNCH(grid, dim3(threads), 0, stream, add_position_rows_kernel<__half>)
      (static_cast<const __half*>(table.data), table.rows, n, start_position, offset, x);
      break;
    case StorageType::kBF16:
      QMODEL_LAUNCH(grid, dim3(threads), 0, stream, add_position_rows_kernel<__nv_bfloat16>)
      (static_cast<const __nv_bfloat16*>(table.data), table.rows, n, start_position, offset, x);
      break;
    default:
      return Status(StatusCode::kUnsupported, "add_position_rows: a quantized position table");
  }
  return detail::check_launch("add_position_rows_kernel", stream);
}

}  // namespace qmodel::runtime::cuda
