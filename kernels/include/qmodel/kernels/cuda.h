// CUDA kernels' host API: a device-side mirror of WeightView (the weight exactly as stored in the
// .qmodel file, blobs already copied to the GPU, never repacked) and launchers for dequantize,
// row gather (embedding lookup), decode GEMV (m = 1..8, also batched over up to 3 weights sharing
// x) and prefill GEMM (dequantize into caller scratch + cuBLASLt). Every
// launcher validates its preconditions on the host first and returns kUnsupported for a shape,
// block size or alignment it does not handle (never a silent no-op), kInvalidArgument for a bad
// argument and kCuda (with the CUDA / cuBLAS error string) when the runtime fails. All launches are
// asynchronous on `stream`; no launcher allocates device memory or synchronises.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>

#include "qmodel/format/quant_blocks.h"
#include "qmodel/format/status.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {

// Turns a CUDA runtime error into a Status (kCuda, "what: cudaErrorName: description").
Status cuda_status(cudaError_t error, const char* what);

}  // namespace qmodel::kernels

// `QMODEL_CUDA_CHECK(cudaMemcpyAsync(...))` yields a Status; QMODEL_CUDA_RETURN_IF_ERROR returns it.
#define QMODEL_CUDA_CHECK(expr) ::qmodel::kernels::cuda_status((expr), #expr)
#define QMODEL_CUDA_RETURN_IF_ERROR(expr) QMODEL_RETURN_IF_ERROR(QMODEL_CUDA_CHECK(expr))

namespace qmodel::kernels {

// A stored weight [rows = out features n, cols = in features k] in device memory. Pointers are
// device pointers owned by the caller and must outlive every launch that uses the view. The
// 16-entry 4-bit code table travels by value (kernels copy it to shared memory); the 256-entry
// nested (dynamic) table stays in device memory. Fields mirror kernels::WeightView.
struct DeviceWeightView {
  StorageType storage = StorageType::kF32;
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;               // f32/f16/bf16 values, packed 4-bit codes, or int8
  // NF4 / FP4 (blocks of block_size over the flat row-major index; they may straddle rows)
  int64_t block_size = 0;
  float code_table[16] = {};                // the stored quant_map, index = 4-bit code
  const float* absmax = nullptr;            // ceil(n/block_size) floats, without double quant
  const uint8_t* absmax_codes = nullptr;    // ceil(n/block_size) codes, with double quant
  const float* nested_absmax = nullptr;     // ceil(n_blocks/nested_block_size) floats
  const float* nested_code_table = nullptr; // 256 floats (device memory)
  int64_t nested_block_size = 0;            // kernels support kNestedBlockSize (256) only
  float nested_offset = 0.0f;
  // INT8 (LLM.int8 row format)
  const float* row_scale = nullptr;         // SCB, one float per row

  bool double_quant() const { return absmax_codes != nullptr; }
};

// Checks that the view is complete and that the kernels handle it: kInvalidArgument for missing
// pointers or non-positive dims, kUnsupported for a block size outside bnb's {32..4096} powers of
// two, a nested block size other than 256, or rows*cols past int64.
Status validate_device_weight(const DeviceWeightView& w);

// out[i] = W.flat[first + i] for i in [0, count), any storage type, any range (a range may start in
// the middle of a byte, a block or a row), bit-identical to dequantize_ref followed by one
// round-to-nearest-even conversion to out_dtype (kF32, kF16 or kBF16). `out` is device memory.
Status launch_dequantize(const DeviceWeightView& w, int64_t first, int64_t count, ActType out_dtype,
                         void* out, cudaStream_t stream);

// Largest activation row count the decode GEMV handles (speculative / small-batch decode).
inline constexpr int64_t kMaxGemvRows = 8;

// out[i, :] = row row_ids[i] of W dequantized (i < n_ids; out is [n_ids, cols] row-major, densely
// packed, of type out_dtype: kF32, kF16 or kBF16), bit-identical to dequantize_ref of that row
// followed by one round-to-nearest-even conversion; any storage type, any cols (4-bit rows may
// start mid-byte or mid-block). row_ids (int32, device memory) are read by the kernel, so the
// launch can sit in a captured CUDA graph whose ids change between replays. An id outside
// [0, rows) writes NaN to every element of its output row (never an out-of-bounds read).
// n_ids == 0 is a no-op.
Status launch_gather_rows(const DeviceWeightView& w, const int32_t* row_ids, int64_t n_ids,
                          ActType out_dtype, void* out, cudaStream_t stream);

// Decode GEMV: y[i, r] = sum_k x[i, k] * W[r, k] (+ bias[r]) for i < m, r < rows, with m in
// 1..kMaxGemvRows. x is [m, cols] and y [m, rows], both row-major, densely packed, of type `act`
// (kBF16, kF16 or kF32); bias is fp32 [rows] or nullptr. fp32 accumulation, one rounding at the
// end (none for kF32). Reads each stored weight byte once. Matches matmul_ref within the bounds
// stated in tests/gpu/test_kernels_gpu.cpp (fp32: test_kernels_ext_gpu.cpp). x and y must not
// alias.
Status launch_gemv(ActType act, const void* x, int64_t m, const DeviceWeightView& w,
                   const float* bias, void* y, cudaStream_t stream);

// Most GEMVs one launch_gemv_multi call takes (q/k/v projections).
inline constexpr int kMaxGemvMulti = 3;

// `count` (1..kMaxGemvMulti) GEMVs that share the activations x in one launch (q/k/v, gate/up):
// ys[j] = x * ws[j]^T (+ biases[j]) with launch_gemv's contract for each j. The weights must have
// the same cols; `biases` may be nullptr (no bias anywhere) or hold nullptr entries. The grid
// covers the concatenated rows and every weight keeps the block geometry launch_gemv would give
// it, so each ys[j] is bit-identical to launch_gemv(act, x, m, ws[j], biases[j], ys[j]). Saves
// count-1 launches and their tails in decode. kUnsupported when the weights differ in storage
// type or in double quantization (the caller then launches them one by one) or count > 3;
// kInvalidArgument for count < 1, a null array or pointer, or different cols. (A weight whose
// shape or alignment needs the general kernel is run by a second launch within the call.)
Status launch_gemv_multi(ActType act, const void* x, int64_t m, const DeviceWeightView* ws,
                         const float* const* biases, void* const* ys, int count,
                         cudaStream_t stream);

// Bytes of scratch launch_gemm needs for this weight: rows*cols elements of `act` type (2 bytes
// for kBF16 / kF16, 4 for kF32), or 0 when the weight is already stored in the activation type
// (then it is used in place: bf16 for kBF16, f16 for kF16, f32 for kF32).
int64_t gemm_scratch_bytes(const DeviceWeightView& w, ActType act);

// Owns the cuBLASLt handle and its device workspace (RAII, move-only). One per stream that runs
// GEMMs concurrently; not thread-safe. Create with GemmContext::create().
class GemmContext {
 public:
  // 32 MiB: what cuBLAS recommends for Hopper's largest kernels.
  static constexpr int64_t kDefaultWorkspaceBytes = int64_t{32} << 20;
  // kCuda when the handle or the workspace cannot be created (e.g. no GPU).
  static Result<GemmContext> create(int64_t workspace_bytes = kDefaultWorkspaceBytes);

  GemmContext(GemmContext&&) noexcept;
  GemmContext& operator=(GemmContext&&) noexcept;
  GemmContext(const GemmContext&) = delete;
  GemmContext& operator=(const GemmContext&) = delete;
  ~GemmContext();

  struct Impl;
  Impl* impl() const { return impl_.get(); }

 private:
  explicit GemmContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Prefill GEMM, same contract as launch_gemv for any m >= 1 (tuned for 16..4096): dequantizes W
// into `scratch` (device memory, at least gemm_scratch_bytes(w, act) bytes, reused by the caller
// one matrix at a time; never kept) and runs cuBLASLt in fp32 accumulation with the bias added
// in the epilogue. kF32 activations run a true fp32 GEMM (CUBLAS_COMPUTE_32F: no TF32), with W
// dequantized to fp32. kUnsupported when a dim exceeds int32 or cuBLASLt has no algorithm for it;
// kInvalidArgument when scratch is missing or too small.
Status launch_gemm(GemmContext& ctx, ActType act, const void* x, int64_t m, const DeviceWeightView& w,
                   const float* bias, void* y, void* scratch, int64_t scratch_bytes,
                   cudaStream_t stream);

}  // namespace qmodel::kernels
