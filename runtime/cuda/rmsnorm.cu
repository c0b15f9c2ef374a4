// Fused residual add + RMSNorm (ops.h: add_rmsnorm). One block per row: the row (<= 32 KB of fp32
// at hidden 8192) stays in L1 between the sum-of-squares pass and the normalising pass, so the
// kernel reads x once from DRAM; it is latency-bound, not worth vector accesses.
#include <algorithm>

#include "act_traits.cuh"
#include "ops.h"

namespace qmodel::runtime::cuda {
namespace {

using detail::Act;

template <typename T>
__global__ void __launch_bounds__(1024) add_rmsnorm_kernel(float* x, const T* delta, int64_t n, const float* weight,
                                                           float eps, T* out) {
  __shared__ float s_red[detail::kWarp];
  const int64_t row = blockIdx.x;
  float* xr = x + row * n;
  const T* dr = delta != nullptr ? delta + row * n : nullptr;
  T* o = out + row * n;
  float sum_sq = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float v = xr[i];
    if (dr != nullptr) {
      v = __fadd_rn(v, Act<T>::load(dr[i]));  // the CPU's add_inplace, bit for bit
      xr[i] = v;
    }
    sum_sq += v * v;
  }
  sum_sq = detail::block_sum(sum_sq, s_red);
  // As rmsnorm_rows: variance rounded to fp32, then 1 / sqrt(variance + eps) with IEEE sqrt and
  // division (no rsqrtf: 2 ulp), then weight * (x * inv) unfused.
  const float inv = 1.0f / sqrtf(sum_sq / static_cast<float>(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    o[i] = Act<T>::store(__fmul_rn(weight[i], __fmul_rn(xr[i], inv)));  // xr[i]: this thread's own write
  }
}

}  // namespace

Status add_rmsnorm(ActType act, float* x, const void* delta, int64_t m, int64_t n, const float* weight, float eps,
                   void* out, cudaStream_t stream) {
  if (!detail::valid_act(act)) return detail::invalid("add_rmsnorm: unknown activation type");
  if (x == nullptr || weight == nullptr || out == nullptr) return detail::invalid("add_rmsnorm: null pointer");
  if (m <= 0 || n <= 0) return detail::invalid("add_rmsnorm: m and n must be positive");
  if (m > INT32_MAX) return Status(StatusCode::kUnsupported, "add_rmsnorm: more than 2^31 - 1 rows");
  // ~8 elements per thread: enough loads in flight per thread, and a hidden size of 4096 still
  // spreads over 512 threads.
  const int64_t want = (n + 7) / 8;
  const int threads = static_cast<int>(std::min<int64_t>(1024, std::max<int64_t>(32, (want + 31) / 32 * 32)));
  return detail::dispatch_act(act, [&](auto tag) {
    using T = decltype(tag);
    QMODEL_LAUNCH(dim3(static_cast<unsigned>(m)), dim3(threads), 0, stream, add_rmsnorm_kernel<T>)
    (x, static_cast<const T*>(delta), n, weight, eps, static_cast<T*>(out));
    return detail::check_launch("add_rmsnorm_kernel", stream);
  });
}

}  // namespace qmodel::runtime::cuda
