// Decode GEMV straight from LLM.int8 row-format weights (int8 [rows, cols], fp32 SCB per row):
// y[i, r] = (sum_k x[i, k] * q[r, k]) * SCB[r] * (1/127) (+ bias[r]). Weight-only int8: the
// activations stay bf16/fp16/fp32, so bnb's outlier decomposition has nothing to do here.
//
// Thread -> data (fast path, gemv_aligned_kernel in gemv_common.cuh): a lane owns one 16-byte
// chunk = 16 consecutive int8 weights of one row per step, consecutive lanes consecutive chunks
// (512 contiguous bytes per warp load). Conditions: cols % 16 == 0 and a 16-byte aligned blob, so
// every row starts on a 16-byte boundary. The scale is per row, so the chunk's dot is accumulated
// unscaled and the row is scaled once at the end: one multiply per row instead of one per weight
// (the reference rounds q*SCB*c per weight; the difference is fp32 rounding only).
// Other shapes take gemv_general_kernel with the reference's exact per-element dequant.
#include "gemv_common.cuh"

namespace qmodel::kernels {
namespace {

using detail::ActTraits;

struct Int8Policy {
  static constexpr int kElemsPerChunk = 16;
  struct Shared {
    float unused;  // no tables: the scale is read once per row
  };

  __device__ static void init(Shared&, const DeviceWeightView&) {}
  __device__ static float chunk_scale(const Shared&, const DeviceWeightView&, int64_t) { return 1.0f; }
  __device__ static float row_factor(const DeviceWeightView& w, int64_t row) {
    return __fmul_rn(__ldg(w.row_scale + row), detail::kInt8DequantScale);
  }

  // Signed byte b of a 32-bit word as float (the I2F converts exactly: |q| <= 127).
  __device__ static float s8(uint32_t word, int b) {
    return static_cast<float>(static_cast<int8_t>((word >> (8 * b)) & 0xffu));
  }

  template <typename ActT, int kM>
  __device__ static void chunk_dot(const Shared&, uint4 q, const ActT* x, int64_t ldx, float (&dot)[kM]) {
#pragma unroll
    for (int i = 0; i < kM; ++i) dot[i] = 0.0f;
    const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int v = 0; v < 2; ++v) {
      // Activation vector v (8 elements) pairs with weight words 2v and 2v+1.
      detail::ActVec<ActT, 8> xv[kM];
#pragma unroll
      for (int i = 0; i < kM; ++i) xv[i].load(x + i * ldx + 8 * v);
#pragma unroll
      for (int p = 0; p < 4; ++p) {  // element pair p of vector v = bytes 2p, 2p+1 of those words
        const uint32_t word = words[2 * v + p / 2];
        const float w0 = s8(word, (2 * p) % 4);
        const float w1 = s8(word, (2 * p) % 4 + 1);
#pragma unroll
        for (int i = 0; i < kM; ++i) {
          const float2 xf = xv[i].pair(p);
          dot[i] = fmaf(w0, xf.x, dot[i]);
          dot[i] = fmaf(w1, xf.y, dot[i]);
        }
      }
    }
  }

  // As dequantize_ref: (q * SCB) * c, two roundings.
  __device__ static float element(const Shared&, const DeviceWeightView& w, int64_t flat) {
    const float q = static_cast<float>(__ldg(static_cast<const int8_t*>(w.data) + flat));
    return __fmul_rn(__fmul_rn(q, __ldg(w.row_scale + flat / w.cols)), detail::kInt8DequantScale);
  }
};

}  // namespace

Status launch_gemv_int8(ActType act, const void* x, int m, const DeviceWeightView* ws,
                        const float* const* biases, void* const* ys, int count, cudaStream_t stream) {
  bool aligned[kMaxGemvMulti];
  for (int j = 0; j < count; ++j) {
    aligned[j] = (ws[j].cols % Int8Policy::kElemsPerChunk) == 0 && is_aligned(ws[j].data, 16) &&
                 detail::activations_vector_ok(x, ws[j].cols, act, 16);
  }
  return detail::launch_gemv_family<Int8Policy>(act, x, m, ws, biases, ys, count, aligned, stream);
}

}  // namespace qmodel::kernels
