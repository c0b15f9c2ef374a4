// MLP activations (ops.h: activation_mul): act(fn(gate) * up) or act(fn(gate)) for SiLU, GELU
// (exact and tanh forms) and ReLU, as runtime::activate. Grid-stride loop, one aligned 16-byte
// vector access per thread and step when every pointer allows it, scalar tail (or scalar
// everywhere otherwise). The function is a kernel argument: the switch is uniform over the grid
// and costs nothing next to the memory traffic.
#include <algorithm>

#include "act_traits.cuh"
#include "ops.h"

namespace qmodel::runtime::cuda {
namespace {

using detail::Act;
using detail::Pack;
using format::Activation;

constexpr int kThreads = 256;

unsigned grid_for(int64_t work) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((work + kThreads - 1) / kThreads, 4096)));
}

// runtime::activate's fp32 expressions, every product and sum rounded as written (no FMA
// contraction); expf / erff / tanhf are within 2 ulp of the CPU's libm.
__device__ __forceinline__ float activate(Activation fn, float x) {
  switch (fn) {
    case Activation::kSilu: return x / (1.0f + expf(-x));
    case Activation::kGeluExact:
      return __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, erff(__fmul_rn(x, 0.70710678118654752f))));
    case Activation::kGeluTanh: {
      const float cube = __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, x), x), x);
      const float inner = __fmul_rn(0.79788456080286536f, __fadd_rn(x, cube));
      return __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, tanhf(inner)));
    }
    case Activation::kRelu: return x > 0.0f ? x : 0.0f;
  }
  return x;
}

template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads) activation_mul_kernel(Activation fn, const T* gate, const T* up,
                                                                  int64_t count, T* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t n_vec = count / kVec;
  using P = Pack<T, kVec>;
  for (int64_t p = tid; p < n_vec; p += stride) {
    const P g = reinterpret_cast<const P*>(gate)[p];  // read before out (may alias) is written
    P u{};
    if (up != nullptr) u = reinterpret_cast<const P*>(up)[p];
    P o;
#pragma unroll
    for (int e = 0; e < kVec; ++e) {
      const float a = activate(fn, Act<T>::load(g.v[e]));
      o.v[e] = Act<T>::store(up != nullptr ? __fmul_rn(a, Act<T>::load(u.v[e])) : a);
    }
    reinterpret_cast<P*>(out)[p] = o;
  }
  for (int64_t i = n_vec * kVec + tid; i < count; i += stride) {
    const float a = activate(fn, Act<T>::load(gate[i]));
    out[i] = Act<T>::store(up != nullptr ? __fmul_rn(a, Act<T>::load(up[i])) : a);
  }
}

}  // namespace

Status activation_mul(ActType act, Activation fn, const void* gate, const void* up, int64_t count, void* out,
                      cudaStream_t stream) {
  if (!detail::valid_act(act)) return detail::invalid("activation_mul: unknown activation type");
  if (fn != Activation::kSilu && fn != Activation::kGeluExact && fn != Activation::kGeluTanh &&
      fn != Activation::kRelu) {
    return detail::invalid("activation_mul: unknown activation function");
  }
  if (gate == nullptr || out == nullptr) return detail::invalid("activation_mul: null pointer");
  if (count <= 0) return detail::invalid("activation_mul: count must be positive");
  const bool vec = detail::aligned_to(gate, 16) && (up == nullptr || detail::aligned_to(up, 16)) &&
                   detail::aligned_to(out, 16);
  return detail::dispatch_act(act, [&](auto tag) {
    using T = decltype(tag);
    constexpr int kVec = 16 / sizeof(T);
    const T* g = static_cast<const T*>(gate);
    const T* u = static_cast<const T*>(up);
    T* o = static_cast<T*>(out);
    if (vec) {
      QMODEL_LAUNCH(dim3(grid_for(count / kVec + 1)), dim3(kThreads), 0, stream, activation_mul_kernel<T, kVec>)
      (fn, g, u, count, o);
    } else {
      QMODEL_LAUNCH(dim3(grid_for(count)), dim3(kThreads), 0, stream, activation_mul_kernel<T, 1>)(fn, g, u, count, o);
    }
    return detail::check_launch("activation_mul_kernel", stream);
  });
}

}  // namespace qmodel::runtime::cuda
