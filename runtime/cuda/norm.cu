// Residual adds + the architecture's norm (ops.h: add_norm, add_rmsnorm). One block per row: the
// row (<= 32 KB of fp32 at hidden 8192) stays in L1 between the reduction pass(es) and the
// normalising pass, so the kernel reads x once from DRAM; it is latency-bound, not worth vector
// accesses. RMSNorm takes one block reduction (sum of squares), LayerNorm two (the mean, then the
// sum of squared deviations from it, as layernorm_rows; a one-pass E[x^2] - mean^2 would cancel).
#include <algorithm>

#include "act_traits.cuh"
#include "ops.h"

namespace qmodel::runtime::cuda {
namespace {

using detail::Act;

enum class Kind { kNone, kRms, kLayer };

template <typename T, Kind kKind>
__global__ void __launch_bounds__(1024) add_norm_kernel(float* x, const T* delta, const T* delta2, int64_t n,
                                                        const float* weight, const float* bias, float eps,
                                                        bool write_back, T* out) {
  const int64_t row = blockIdx.x;
  float* xr = x + row * n;
  const T* dr = delta != nullptr ? delta + row * n : nullptr;
  const T* dr2 = delta2 != nullptr ? delta2 + row * n : nullptr;
  T* o = out + row * n;
  // Residual adds, each the CPU's add_inplace (one rounded fp32 add) bit for bit; the same pass
  // accumulates what the norm needs first (RMSNorm: sum of squares; LayerNorm: sum).
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float v = xr[i];
    if (dr != nullptr) v = __fadd_rn(v, Act<T>::load(dr[i]));
    if (dr2 != nullptr) v = __fadd_rn(v, Act<T>::load(dr2[i]));
    if (dr != nullptr || dr2 != nullptr) xr[i] = v;
    if constexpr (kKind == Kind::kRms) {
      acc += v * v;  // (the expression add_rmsnorm always used: its results stay bit for bit)
    } else if constexpr (kKind == Kind::kLayer) {
      acc += v;
    } else {
      o[i] = Act<T>::store(v);  // no norm: y = x
    }
  }
  if constexpr (kKind == Kind::kRms) {
    __shared__ float s_red[detail::kWarp];
    acc = detail::block_sum(acc, s_red);
    // As rmsnorm_rows: variance rounded to fp32, then 1 / sqrt(variance + eps) with IEEE sqrt and
    // division (no rsqrtf: 2 ulp), then weight * (x * inv) unfused.
    const float inv = 1.0f / sqrtf(acc / static_cast<float>(n) + eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const float y = __fmul_rn(weight[i], __fmul_rn(xr[i], inv));  // xr[i]: this thread's own write
      o[i] = Act<T>::store(y);
      if (write_back) xr[i] = y;
    }
  } else if constexpr (kKind == Kind::kLayer) {
    __shared__ float s_red[detail::kWarp];
    const float mean = detail::block_sum(acc, s_red) / static_cast<float>(n);
    float sq = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const float dv = __fsub_rn(xr[i], mean);
      sq += dv * dv;
    }
    sq = detail::block_sum(sq, s_red);
    const float inv = 1.0f / sqrtf(sq / static_cast<float>(n) + eps);
    // layernorm_rows: (x - mean) * inv, then * weight, then + bias, each rounded (no FMA).
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      float y = __fmul_rn(__fsub_rn(xr[i], mean), inv);
      if (weight != nullptr) y = __fmul_rn(y, weight[i]);
      if (bias != nullptr) y = __fadd_rn(y, bias[i]);
      o[i] = Act<T>::store(y);
      if (write_back) xr[i] = y;
    }
  }
}

}  // namespace

Status add_norm(ActType act, const DeviceNorm* norm, float* x, const void* delta, const void* delta2, int64_t m,
                int64_t n, bool write_back, void* out, cudaStream_t stream) {
  if (!detail::valid_act(act)) return detail::invalid("add_norm: unknown activation type");
  if (x == nullptr || out == nullptr) return detail::invalid("add_norm: null pointer");
  if (m <= 0 || n <= 0) return detail::invalid("add_norm: m and n must be positive");
  if (m > INT32_MAX) return Status(StatusCode::kUnsupported, "add_norm: more than 2^31 - 1 rows");
  Kind kind = Kind::kNone;
  if (norm != nullptr) {
    if (norm->kind == format::NormKind::kRMSNorm) {
      if (norm->weight == nullptr) return detail::invalid("add_norm: RMSNorm without a weight");
      kind = Kind::kRms;
    } else if (norm->kind == format::NormKind::kLayerNorm) {
      kind = Kind::kLayer;
    } else {
      return detail::invalid("add_norm: unknown norm kind");
    }
  }
  const float* weight = norm != nullptr ? norm->weight : nullptr;
  const float* bias = kind == Kind::kLayer ? norm->bias : nullptr;
  const float eps = norm != nullptr ? norm->eps : 0.0f;
  // ~8 elements per thread: enough loads in flight per thread, and a hidden size of 4096 still
  // spreads over 512 threads.
  const int64_t want = (n + 7) / 8;
  const int threads = static_cast<int>(std::min<int64_t>(1024, std::max<int64_t>(32, (want + 31) / 32 * 32)));
  return detail::dispatch_act(act, [&](auto tag) {
    using T = decltype(tag);
    const dim3 grid(static_cast<unsigned>(m));
    const T* d1 = static_cast<const T*>(delta);
    const T* d2 = static_cast<const T*>(delta2);
    T* o = static_cast<T*>(out);
    switch (kind) {
      case Kind::kRms:
        QMODEL_LAUNCH(grid, dim3(threads), 0, stream, add_norm_kernel<T, Kind::kRms>)
        (x, d1, d2, n, weight, bias, eps, write_back, o);
        break;
      case Kind::kLayer:
        QMODEL_LAUNCH(grid, dim3(threads), 0, stream, add_norm_kernel<T, Kind::kLayer>)
        (x, d1, d2, n, weight, bias, eps, write_back, o);
        break;
      case Kind::kNone:
        QMODEL_LAUNCH(grid, dim3(threads), 0, stream, add_norm_kernel<T, Kind::kNone>)
        (x, d1, d2, n, weight, bias, eps, write_back, o);
        break;
    }
    return detail::check_launch("add_norm_kernel", stream);
  });
}

Status add_rmsnorm(ActType act, float* x, const void* delta, int64_t m, int64_t n, const float* weight, float eps,
                   void* out, cudaStream_t stream) {
  if (weight == nullptr) return detail::invalid("add_rmsnorm: null weight");
  DeviceNorm norm;
  norm.kind = format::NormKind::kRMSNorm;
  norm.weight = weight;
  norm.eps = eps;
  return add_norm(act, &norm, x, delta, nullptr, m, n, false, out, stream);
}

}  // namespace qmodel::runtime::cuda
