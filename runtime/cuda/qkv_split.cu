// Fused qkv projection output -> q, k, v (ops.h: split_qkv), as runtime::split_qkv: bit copies of
// head_dim-element slices. The copy unit U is the widest of 16 / 8 / 4 / 2 bytes that divides a
// head's bytes and every pointer's alignment; a grid-stride loop over the units of the destination
// rows computes each unit's source column from the layout.
#include <algorithm>
#include <string>

#include "act_traits.cuh"
#include "ops.h"

namespace qmodel::runtime::cuda {
namespace {

using format::QkvLayout;

constexpr int kThreads = 256;

struct SplitArgs {
  int64_t m;
  int64_t d;  // units per head
  int32_t n_heads, n_kv;
  QkvLayout layout;
};

template <typename U>
__global__ void __launch_bounds__(kThreads) split_qkv_kernel(const U* qkv, SplitArgs a, U* q, U* k, U* v) {
  const int64_t q_dim = a.n_heads * a.d, kv_dim = a.n_kv * a.d, row = q_dim + 2 * kv_dim;
  const int64_t total = a.m * row;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  // Walks the destination units in the order q row, k row, v row of each token (the source
  // column is the layout's gather; writes are coalesced, reads contiguous per head slice).
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const int64_t t = idx / row, c = idx - t * row;
    U* dst;
    int64_t src;  // column in the qkv row
    if (c < q_dim) {
      dst = q + t * q_dim + c;
      const int64_t h = c / a.d, i = c - h * a.d;
      switch (a.layout) {
        case QkvLayout::kPerHead: src = 3 * h * a.d + i; break;
        case QkvLayout::kGroupedKv: {
          const int64_t group = a.n_heads / a.n_kv, g = h / group;
          src = g * (group + 2) * a.d + (h - g * group) * a.d + i;
          break;
        }
        default: src = c; break;
      }
    } else {
      const bool is_k = c < q_dim + kv_dim;
      const int64_t e = c - q_dim - (is_k ? 0 : kv_dim);  // element of the k / v row
      dst = (is_k ? k : v) + t * kv_dim + e;
      const int64_t h = e / a.d, i = e - h * a.d;
      switch (a.layout) {
        case QkvLayout::kPerHead: src = (3 * h + (is_k ? 1 : 2)) * a.d + i; break;
        case QkvLayout::kGroupedKv: {
          const int64_t group = a.n_heads / a.n_kv;
          src = (h * (group + 2) + group + (is_k ? 0 : 1)) * a.d + i;
          break;
        }
        default: src = c; break;
      }
    }
    *dst = qkv[t * row + src];
  }
}

template <typename U>
Status launch_split(const void* qkv, const SplitArgs& a, void* q, void* k, void* v, cudaStream_t stream) {
  const int64_t total = a.m * (static_cast<int64_t>(a.n_heads) + 2 * a.n_kv) * a.d;
  const unsigned grid =
      static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((total + kThreads - 1) / kThreads, 4096)));
  QMODEL_LAUNCH(dim3(grid), dim3(kThreads), 0, stream, split_qkv_kernel<U>)
  (static_cast<const U*>(qkv), a, static_cast<U*>(q), static_cast<U*>(k), static_cast<U*>(v));
  return detail::check_launch("split_qkv_kernel", stream);
}

}  // namespace

Status split_qkv(ActType act, QkvLayout layout, const void* qkv, int64_t m, const DeviceAttentionShape& shape,
                 void* q, void* k, void* v, cudaStream_t stream) {
  if (!detail::valid_act(act)) return detail::invalid("split_qkv: unknown activation type");
  if (layout != QkvLayout::kConcat && layout != QkvLayout::kPerHead && layout != QkvLayout::kGroupedKv) {
    return detail::invalid("split_qkv: the layout is not a fused one");
  }
  if (qkv == nullptr || q == nullptr || k == nullptr || v == nullptr) return detail::invalid("split_qkv: null pointer");
  if (m <= 0) return detail::invalid("split_qkv: m must be positive");
  if (shape.n_heads <= 0 || shape.n_kv_heads <= 0 || shape.head_dim <= 0) {
    return detail::invalid("split_qkv: non-positive dimension in the shape");
  }
  if (layout == QkvLayout::kPerHead && shape.n_kv_heads != shape.n_heads) {
    return detail::invalid("split_qkv: the per-head layout needs n_kv_heads == n_heads");
  }
  if (layout == QkvLayout::kGroupedKv && shape.n_heads % shape.n_kv_heads != 0) {
    return detail::invalid("split_qkv: n_heads is not a multiple of n_kv_heads");
  }
  const int64_t eb = act_bytes(act), head_bytes = shape.head_dim * eb;
  int64_t unit = 16;
  while (unit > eb && (head_bytes % unit != 0 || !detail::aligned_to(qkv, static_cast<uintptr_t>(unit)) ||
                       !detail::aligned_to(q, static_cast<uintptr_t>(unit)) ||
                       !detail::aligned_to(k, static_cast<uintptr_t>(unit)) ||
                       !detail::aligned_to(v, static_cast<uintptr_t>(unit)))) {
    unit /= 2;
  }
  SplitArgs a{};
  a.m = m;
  a.d = head_bytes / unit;
  a.n_heads = shape.n_heads;
  a.n_kv = shape.n_kv_heads;
  a.layout = layout;
  switch (unit) {
    case 16: return launch_split<uint4>(qkv, a, q, k, v, stream);
    case 8: return launch_split<uint2>(qkv, a, q, k, v, stream);
    case 4: return launch_split<uint32_t>(qkv, a, q, k, v, stream);
    default: return launch_split<uint16_t>(qkv, a, q, k, v, stream);
  }
}

}  // namespace qmodel::runtime::cuda
