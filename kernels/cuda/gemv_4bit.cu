// Decode GEMV straight from stored NF4 / FP4 blocks (with or without double-quantized absmax):
// y[i, r] = sum_k x[i, k] * lut[code(r, k)] * absmax(block of (r, k)) (+ bias[r]).
//
// Thread -> data (fast path, gemv_aligned_kernel in gemv_common.cuh): a lane owns one 16-byte
// chunk = 32 consecutive weights of one row per step; consecutive lanes own consecutive chunks.
// Conditions: k % block_size == 0 (every row starts on a block) and k % 32 == 0 (every row starts
// on a 16-byte boundary), so a chunk never straddles a block (block_size >= 32 is a power of two)
// and needs exactly one absmax: each absmax (or absmax code + nested absmax) is read once per
// chunk, and lanes that share a block (block_size 64+) coalesce into one transaction. All Llama
// shapes (k = 4096, 14336) take it.
// Everything else (k = 172, odd k, k % block_size != 0, a row starting mid-byte or mid-block)
// takes gemv_general_kernel: element by element, the reference's exact dequant arithmetic.
//
// Decode of a chunk: byte j of the chunk holds weights 2j (high nibble) and 2j+1 (low nibble), as
// bnb packs. The 16-entry code table sits in shared memory: 16 consecutive floats occupy 16
// distinct banks, so any pattern of 32 lookups is conflict-free (same entry = broadcast). The dot
// over the chunk is accumulated unscaled in fp32 and multiplied by absmax once per chunk, which
// saves 31 of 32 multiplies; it differs from the reference (which rounds lut*absmax per weight)
// only by fp32 rounding. The activation chunk (32 bf16/fp16 = 64 bytes, or 32 fp32 = 128 bytes) is
// read with four (eight) 16-byte loads that stay in L1 for all warps of the SM.
#include "gemv_common.cuh"

namespace qmodel::kernels {
namespace {

using detail::ActTraits;

template <bool kDoubleQuant>
struct FourBitPolicy {
  static constexpr int kElemsPerChunk = 32;
  struct Shared {
    float lut[16];
    // Nested code table (1 KiB, loaded once per block), a dummy entry without double quant.
    float dyn[kDoubleQuant ? kDynamicMapSize : 1];
  };

  __device__ static void init(Shared& s, const DeviceWeightView& w) {
    detail::load_code_table(w, s.lut);
    if constexpr (kDoubleQuant) {
      for (int i = static_cast<int>(threadIdx.x); i < static_cast<int>(kDynamicMapSize);
           i += static_cast<int>(blockDim.x)) {
        s.dyn[i] = __ldg(w.nested_code_table + i);
      }
    }
  }

  // block_size is a power of two (validated), so the block index is a shift, not a division.
  __device__ static float chunk_scale(const Shared& s, const DeviceWeightView& w, int64_t flat) {
    const int log2_bs = __ffsll(static_cast<long long>(w.block_size)) - 1;
    return detail::block_absmax<kDoubleQuant>(w, s.dyn, flat >> log2_bs);
  }

  __device__ static float row_factor(const DeviceWeightView&, int64_t) { return 1.0f; }

  // dot[i] = sum over the chunk's 32 weights of lut[code] * x[i, .]; x points at the chunk's
  // first column of activation row 0, rows are ldx elements apart.
  template <typename ActT, int kM>
  __device__ static void chunk_dot(const Shared& s, uint4 q, const ActT* x, int64_t ldx,
                                   float (&dot)[kM]) {
#pragma unroll
    for (int i = 0; i < kM; ++i) dot[i] = 0.0f;
    const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int v = 0; v < 4; ++v) {
      // Word v of the chunk holds weights 8v..8v+7; so does activation vector v (8 elements).
      detail::ActVec<ActT, 8> xv[kM];
#pragma unroll
      for (int i = 0; i < kM; ++i) xv[i].load(x + i * ldx + 8 * v);
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        const uint32_t byte = (words[v] >> (8 * b)) & 0xffu;
        const float hi = s.lut[byte >> 4];   // weight 8v + 2b
        const float lo = s.lut[byte & 0xfu]; // weight 8v + 2b + 1
#pragma unroll
        for (int i = 0; i < kM; ++i) {
          const float2 xf = xv[i].pair(b);
          dot[i] = fmaf(hi, xf.x, dot[i]);
          dot[i] = fmaf(lo, xf.y, dot[i]);
        }
      }
    }
  }

  // One dequantized weight exactly as dequantize_ref computes it: lut[nibble] * absmax, rounded.
  __device__ static float element(const Shared& s, const DeviceWeightView& w, int64_t flat) {
    const uint8_t byte = __ldg(static_cast<const uint8_t*>(w.data) + (flat >> 1));
    const uint32_t code = (flat & 1) ? (byte & 0xfu) : (byte >> 4);
    const int log2_bs = __ffsll(static_cast<long long>(w.block_size)) - 1;
    return __fmul_rn(s.lut[code], detail::block_absmax<kDoubleQuant>(w, s.dyn, flat >> log2_bs));
  }
};

}  // namespace

Status launch_gemv_4bit(ActType act, const void* x, int m, const DeviceWeightView* ws,
                        const float* const* biases, void* const* ys, int count, cudaStream_t stream) {
  bool aligned[kMaxGemvMulti];
  for (int j = 0; j < count; ++j) {
    const DeviceWeightView& w = ws[j];
    const int64_t k = w.cols;
    // Activation vectors of 8 elements: 16 bytes, or two 16-byte loads for fp32.
    aligned[j] = (k % w.block_size) == 0 && (k % 32) == 0 && is_aligned(w.data, 16) &&
                 detail::activations_vector_ok(x, k, act, 16);
  }
  // The caller guarantees one storage type and one double-quant-ness per call.
  if (ws[0].double_quant()) {
    return detail::launch_gemv_family<FourBitPolicy<true>>(act, x, m, ws, biases, ys, count, aligned, stream);
  }
  return detail::launch_gemv_family<FourBitPolicy<false>>(act, x, m, ws, biases, ys, count, aligned, stream);
}

}  // namespace qmodel::kernels
