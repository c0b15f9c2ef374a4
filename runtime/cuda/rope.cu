// RoPE on q / k and the KV-cache store (ops.h: rope_store_kv). One block per token: the block
// computes the token's rotary_dim / 2 cos / sin once into shared memory (every head uses the same
// angles), rotates each (i, i + rotary_dim/2) pair of every q and k head (partial rotary: the dims
// past rotary_dim pass through; no inv_freq: nothing rotates), and copies the k row (rotated and
// passed-through dims) and the v row into the cache row of the token's position.
#include <algorithm>
#include <string>

#include "act_traits.cuh"
#include "ops.h"

namespace qmodel::runtime::cuda {
namespace {

using detail::Act;

template <typename T>
__global__ void __launch_bounds__(256) rope_store_kv_kernel(T* q, T* k, const T* v, DeviceAttentionShape s,
                                                            int rotary_dim, const float* inv_freq,
                                                            const int32_t* start_position, T* k_cache, T* v_cache) {
  __shared__ float s_cos[kMaxRopeHeadDim / 2], s_sin[kMaxRopeHeadDim / 2];
  const int64_t t = blockIdx.x;
  const int half = inv_freq != nullptr ? rotary_dim / 2 : 0;  // rotated pairs per head
  const int64_t pos = static_cast<int64_t>(*start_position) + t;
  // rope_cos_sin: the angle is an fp32 product, cos / sin are taken in double and rounded to float
  // (a handful of double evaluations per token; cosf / sinf would differ by up to 2 ulp).
  const float p = static_cast<float>(pos);
  for (int i = static_cast<int>(threadIdx.x); i < half; i += static_cast<int>(blockDim.x)) {
    const double angle = static_cast<double>(__fmul_rn(p, inv_freq[i]));
    s_cos[i] = static_cast<float>(cos(angle));
    s_sin[i] = static_cast<float>(sin(angle));
  }
  __syncthreads();

  const bool store = pos >= 0 && pos < s.max_context;  // the caller guarantees it; never write outside
  const int64_t q_row = static_cast<int64_t>(s.n_heads) * s.head_dim;
  const int64_t kv_row = static_cast<int64_t>(s.n_kv_heads) * s.head_dim;
  T* qt = q + t * q_row;
  T* kt = k + t * kv_row;
  T* kc = k_cache + (store ? pos : 0) * kv_row;
  const int pairs = (s.n_heads + s.n_kv_heads) * half;
  for (int j = static_cast<int>(threadIdx.x); j < pairs; j += static_cast<int>(blockDim.x)) {
    const int h = j / half, i = j - h * half;
    const bool is_q = h < s.n_heads;
    const int64_t off = static_cast<int64_t>(is_q ? h : h - s.n_heads) * s.head_dim;
    T* x = (is_q ? qt : kt) + off;
    const float x1 = Act<T>::load(x[i]), x2 = Act<T>::load(x[i + half]);
    const float c = s_cos[i], sn = s_sin[i];
    // apply_rope's x1 c - x2 s and x2 c + x1 s with every product rounded (no FMA contraction).
    const T y1 = Act<T>::store(__fadd_rn(__fmul_rn(x1, c), -__fmul_rn(x2, sn)));
    const T y2 = Act<T>::store(__fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, sn)));
    x[i] = y1;
    x[i + half] = y2;
    if (!is_q && store) {
      kc[off + i] = y1;
      kc[off + i + half] = y2;
    }
  }
  if (store) {
    // The k dims that do not rotate (all of them without inv_freq): only read here, never written,
    // so no barrier is needed against the rotation above.
    const int rotated = 2 * half;
    if (rotated < s.head_dim) {
      for (int64_t e = threadIdx.x; e < kv_row; e += blockDim.x) {
        if (static_cast<int>(e % s.head_dim) >= rotated) kc[e] = kt[e];
      }
    }
    const T* vt = v + t * kv_row;
    T* vc = v_cache + pos * kv_row;
    for (int64_t e = threadIdx.x; e < kv_row; e += blockDim.x) vc[e] = vt[e];
  }
}

}  // namespace

Status rope_store_kv(ActType act, void* q, void* k, const void* v, int64_t m, const DeviceAttentionShape& shape,
                     const float* inv_freq, const int32_t* start_position, void* k_cache, void* v_cache,
                     cudaStream_t stream) {
  if (!detail::valid_act(act)) return detail::invalid("rope_store_kv: unknown activation type");
  if (q == nullptr || k == nullptr || v == nullptr || start_position == nullptr || k_cache == nullptr ||
      v_cache == nullptr) {
    return detail::invalid("rope_store_kv: null pointer");
  }
  if (m <= 0) return detail::invalid("rope_store_kv: m must be positive");
  if (shape.n_heads <= 0 || shape.n_kv_heads <= 0 || shape.head_dim <= 0 || shape.max_context <= 0) {
    return detail::invalid("rope_store_kv: non-positive dimension in the shape");
  }
  if (shape.head_dim % 2 != 0 || shape.head_dim > kMaxRopeHeadDim) {
    return Status(StatusCode::kUnsupported, "rope_store_kv: head_dim " + std::to_string(shape.head_dim) +
                                                " (even and <= " + std::to_string(kMaxRopeHeadDim) + " only)");
  }
  if (shape.rotary_dim < 0 || shape.rotary_dim % 2 != 0 || shape.rotary_dim > shape.head_dim) {
    return detail::invalid("rope_store_kv: rotary_dim must be even and in [0, head_dim]");
  }
  const int32_t rotary_dim = shape.rotary_dim == 0 ? shape.head_dim : shape.rotary_dim;
  const int64_t pairs =
      (static_cast<int64_t>(shape.n_heads) + shape.n_kv_heads) * (inv_freq != nullptr ? rotary_dim / 2 : 0);
  if (pairs > INT32_MAX || m > INT32_MAX) return Status(StatusCode::kUnsupported, "rope_store_kv: too many heads or rows");
  const int64_t kv_row = static_cast<int64_t>(shape.n_kv_heads) * shape.head_dim;
  const int threads = static_cast<int>(std::min<int64_t>(256, (std::max(pairs, kv_row) + 31) / 32 * 32));
  return detail::dispatch_act(act, [&](auto tag) {
    using T = decltype(tag);
    QMODEL_LAUNCH(dim3(static_cast<unsigned>(m)), dim3(threads), 0, stream, rope_store_kv_kernel<T>)
    (static_cast<T*>(q), static_cast<T*>(k), static_cast<const T*>(v), shape, rotary_dim, inv_freq, start_position,
     static_cast<T*>(k_cache), static_cast<T*>(v_cache));
    return detail::check_launch("rope_store_kv_kernel", stream);
  });
}

}  // namespace qmodel::runtime::cuda
