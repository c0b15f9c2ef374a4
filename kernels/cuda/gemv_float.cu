// Decode GEMV from unquantized stored weights (bf16, fp16, fp32 [rows, cols]): the bf16 baseline
// the quantized kernels are measured against, and the path for layers kept in 16/32-bit.
//
// Thread -> data (fast path, gemv_aligned_kernel in gemv_common.cuh): a lane owns one 16-byte
// chunk of one row per step (8 bf16/fp16 or 4 fp32 weights), consecutive lanes consecutive
// chunks, so each warp load is 512 contiguous bytes and each weight byte is read once.
// Conditions: cols * sizeof(weight) % 16 == 0 and a 16-byte aligned blob (rows start on 16-byte
// boundaries). Weights convert to fp32 (exact for every storage type) and accumulate in fp32.
// Other shapes take gemv_general_kernel, one element at a time.
#include <algorithm>

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
      // The chunk's activations: kElemsPerChunk (8 for 16-bit weights, 4 for fp32) elements.
      detail::ActVec<ActT, kElemsPerChunk> xv;
      xv.load(x + i * ldx);
      float d = 0.0f;
#pragma unroll
      for (int p = 0; p < kPairs; ++p) {
        const float2 wf = weight_pair(words, p);
        const float2 xf = xv.pair(p);
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
Status launch_float_typed(ActType act, const void* x, int m, const DeviceWeightView* ws,
                          const float* const* biases, void* const* ys, int count, cudaStream_t stream) {
  using Policy = FloatPolicy<WeightT>;
  // A chunk's activations are one load of kElemsPerChunk elements: 8 bytes for fp32 weights with
  // 16-bit activations, 16 bytes otherwise (two 16-byte loads for bf16 weights, fp32 activations).
  const int64_t load_bytes = std::min<int64_t>(16, Policy::kElemsPerChunk * detail::act_bytes(act));
  bool aligned[kMaxGemvMulti];
  for (int j = 0; j < count; ++j) {
    aligned[j] = (ws[j].cols % Policy::kElemsPerChunk) == 0 && is_aligned(ws[j].data, 16) &&
                 detail::activations_vector_ok(x, ws[j].cols, act, load_bytes);
  }
  return detail::launch_gemv_family<Policy>(act, x, m, ws, biases, ys, count, aligned, stream);
}

}  // namespace

Status launch_gemv_float(ActType act, const void* x, int m, const DeviceWeightView* ws,
                         const float* const* biases, void* const* ys, int count, cudaStream_t stream) {
  switch (ws[0].storage) {  // one storage type per call (checked by the caller)
    case StorageType::kBF16: return launch_float_typed<__nv_bfloat16>(act, x, m, ws, biases, ys, count, stream);
    case StorageType::kF16: return launch_float_typed<__half>(act, x, m, ws, biases, ys, count, stream);
    case StorageType::kF32: return launch_float_typed<float>(act, x, m, ws, biases, ys, count, stream);
    default: return Status(StatusCode::kInvalidArgument, "gemv_float: not a float storage type");
  }
}

}  // namespace qmodel::kernels
