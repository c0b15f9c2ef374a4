// Decode GEMV from unquantized stored weights (bf16, fp16, fp32 [rows, cols]): the bf16 baseline
// the quantized kernels are measured against, and the path for layers kept in 16/32-bit.
//
// Thread -> data (fast path, gemv_aligned_kernel in gemv_common.cuh): a lane owns one 16-byte
// chunk of one row per step (8 bf16/fp16 or 4 fp32 weights), consecutive lanes consecutive
// chunks, so each warp load is 512 contiguous bytes and each weight byte is read once.
// Conditions: cols * sizeof(weight) % 16 == 0 and a 16-byte aligned blob (rows start on 16-byte
// boundaries). Weights convert to fp32 (exact for every storage type) and accumulate in fp32.
// Other shapes take gemv_general_kernel, one element at a time.
#include "gemv_common.cuh"

namespace qmodel::kernels {
namespace {

using detail::ActTraits;

template <typename WeightT>
struct FloatPolicy {
  static constexpr int kElemsPerChunk = 16 / static_cast<int>(sizeof(WeightT));
  struct Shared {
    float unused;
  };

  __device__ static void init(Shared&, const DeviceWeightView&) {}
  __device__ static float chunk_scale(const Shared&, const DeviceWeightView&, int64_t) { return 1.0f; }
  __device__ static float row_factor(const DeviceWeightView&, int64_t) { return 1.0f; }

  // Weights 2p and 2p+1 of the chunk as floats.
  __device__ static float2 weight_pair(const uint32_t (&words)[4], int p) {
    if constexpr (sizeof(WeightT) == 4) {
      return make_float2(__uint_as_float(words[2 * p]), __uint_as_float(words[2 * p + 1]));
    } else {
      return ActTraits<WeightT>::unpack2(words[p]);
    }
  }

  template <typename ActT, int kM>
  __device__ static void chunk_dot(const Shared&, uint4 q, const ActT* x, int64_t ldx, float (&dot)[kM]) {
    constexpr int kPairs = kElemsPerChunk / 2;
    const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int i = 0; i < kM; ++i) {
      // The chunk's activations: 16 bytes (8 elements) for 16-bit weights, 8 bytes for fp32.
      uint32_t xw[4];
      if constexpr (kPairs == 4) {
        const uint4 v = __ldg(reinterpret_cast<const uint4*>(x + i * ldx));
        xw[0] = v.x; xw[1] = v.y; xw[2] = v.z; xw[3] = v.w;
      } else {
        const uint2 v = __ldg(reinterpret_cast<const uint2*>(x + i * ldx));
        xw[0] = v.x; xw[1] = v.y; xw[2] = 0; xw[3] = 0;
      }
      float d = 0.0f;
#pragma unroll
      for (int p = 0; p < kPairs; ++p) {
        const float2 wf = weight_pair(words, p);
        const float2 xf = ActTraits<ActT>::unpack2(xw[p]);
        d = fmaf(wf.x, xf.x, d);
        d = fmaf(wf.y, xf.y, d);
      }
      dot[i] = d;
    }
  }

  __device__ static float element(const Shared&, const DeviceWeightView& w, int64_t flat) {
    return ActTraits<WeightT>::to_float(static_cast<const WeightT*>(w.data)[flat]);
  }
};

template <typename WeightT>
Status launch_float_typed(ActType act, const void* x, int m, const DeviceWeightView& w,
                          const float* bias, void* y, cudaStream_t stream) {
  using Policy = FloatPolicy<WeightT>;
  // fp32 activations chunks are 8 bytes: x rows must start 8-byte aligned (k even); 16-bit
  // chunks need the 16-byte activation loads of activations_vector_ok.
  const bool x_ok = Policy::kElemsPerChunk == 8 ? detail::activations_vector_ok(x, w.cols)
                                                : (is_aligned(x, 8) && w.cols % 4 == 0);
  const bool aligned = (w.cols % Policy::kElemsPerChunk) == 0 && is_aligned(w.data, 16) && x_ok;
  return detail::launch_gemv_family<Policy>(act, x, m, w, bias, y, aligned, stream);
}

}  // namespace

Status launch_gemv_float(ActType act, const void* x, int m, const DeviceWeightView& w,
                         const float* bias, void* y, cudaStream_t stream) {
  switch (w.storage) {
    case StorageType::kBF16: return launch_float_typed<__nv_bfloat16>(act, x, m, w, bias, y, stream);
    case StorageType::kF16: return launch_float_typed<__half>(act, x, m, w, bias, y, stream);
    case StorageType::kF32: return launch_float_typed<float>(act, x, m, w, bias, y, stream);
    default: return Status(StatusCode::kInvalidArgument, "gemv_float: not a float storage type");
  }
}

}  // namespace qmodel::kernels
