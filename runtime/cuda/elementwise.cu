// Element-wise ops (ops.h: silu_mul, convert_to_f32): grid-stride loops, one aligned vector access
// per thread and step when every pointer allows it, scalar tail (or scalar everywhere otherwise).
#include <algorithm>

#include "act_traits.cuh"
#include "ops.h"

namespace qmodel::runtime::cuda {
namespace {

using detail::Act;
using detail::Pack;

constexpr int kThreads = 256;

// Enough blocks to fill the GPU several times over; the grid-stride loop covers the rest.
unsigned grid_for(int64_t work) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((work + kThreads - 1) / kThreads, 4096)));
}

__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads) silu_mul_kernel(const T* gate, const T* up, int64_t count, T* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t n_vec = count / kVec;
  using P = Pack<T, kVec>;
  for (int64_t p = tid; p < n_vec; p += stride) {
    const P g = reinterpret_cast<const P*>(gate)[p];  // both read before out (may alias) is written
    const P u = reinterpret_cast<const P*>(up)[p];
    P o;
#pragma unroll
    for (int e = 0; e < kVec; ++e) o.v[e] = Act<T>::store(silu_times(Act<T>::load(g.v[e]), Act<T>::load(u.v[e])));
    reinterpret_cast<P*>(out)[p] = o;
  }
  for (int64_t i = n_vec * kVec + tid; i < count; i += stride) {
    out[i] = Act<T>::store(silu_times(Act<T>::load(gate[i]), Act<T>::load(up[i])));
  }
}

template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads) convert_to_f32_kernel(const T* src, int64_t count, float* dst) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t n_vec = count / kVec;
  for (int64_t p = tid; p < n_vec; p += stride) {
    const Pack<T, kVec> s = reinterpret_cast<const Pack<T, kVec>*>(src)[p];
    Pack<float, kVec> d;
#pragma unroll
    for (int e = 0; e < kVec; ++e) d.v[e] = Act<T>::load(s.v[e]);
    reinterpret_cast<Pack<float, kVec>*>(dst)[p] = d;
  }
  for (int64_t i = n_vec * kVec + tid; i < count; i += stride) dst[i] = Act<T>::load(src[i]);
}

}  // namespace

Status silu_mul(ActType act, const void* gate, const void* up, int64_t count, void* out, cudaStream_t stream) {
  if (!detail::valid_act(act)) return detail::invalid("silu_mul: unknown activation type");
  if (gate == nullptr || up == nullptr || out == nullptr) return detail::invalid("silu_mul: null pointer");
  if (count <= 0) return detail::invalid("silu_mul: count must be positive");
  const bool vec = detail::aligned_to(gate, 16) && detail::aligned_to(up, 16) && detail::aligned_to(out, 16);
  return detail::dispatch_act(act, [&](auto tag) {
    using T = decltype(tag);
    constexpr int kVec = 16 / sizeof(T);
    const T* g = static_cast<const T*>(gate);
    const T* u = static_cast<const T*>(up);
    T* o = static_cast<T*>(out);
    if (vec) {
      QMODEL_LAUNCH(dim3(grid_for(count / kVec + 1)), dim3(kThreads), 0, stream, silu_mul_kernel<T, kVec>)
      (g, u, count, o);
    } else {
      QMODEL_LAUNCH(dim3(grid_for(count)), dim3(kThreads), 0, stream, silu_mul_kernel<T, 1>)(g, u, count, o);
    }
    return detail::check_launch("silu_mul_kernel", stream);
  });
}

Status convert_to_f32(ActType act, const void* src, int64_t count, float* dst, cudaStream_t stream) {
  if (!detail::valid_act(act)) return detail::invalid("convert_to_f32: unknown activation type");
  if (src == nullptr || dst == nullptr) return detail::invalid("convert_to_f32: null pointer");
  if (count <= 0) return detail::invalid("convert_to_f32: count must be positive");
  return detail::dispatch_act(act, [&](auto tag) {
    using T = decltype(tag);
    constexpr int kVec = 4;  // 8- or 16-byte loads, 16-byte stores
    const T* s = static_cast<const T*>(src);
    if (detail::aligned_to(src, kVec * sizeof(T)) && detail::aligned_to(dst, 16)) {
      QMODEL_LAUNCH(dim3(grid_for(count / kVec + 1)), dim3(kThreads), 0, stream, convert_to_f32_kernel<T, kVec>)
      (s, count, dst);
    } else {
      QMODEL_LAUNCH(dim3(grid_for(count)), dim3(kThreads), 0, stream, convert_to_f32_kernel<T, 1>)(s, count, dst);
    }
    return detail::check_launch("convert_to_f32_kernel", stream);
  });
}

}  // namespace qmodel::runtime::cuda
