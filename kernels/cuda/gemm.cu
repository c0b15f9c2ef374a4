// Prefill GEMM: Y[m, n] = X[m, k] * W[n, k]^T (+ bias[n]), m = tokens, n = out features (W rows),
// k = in features. W is dequantized into a caller-owned scratch in the activation type
// (dequant.cu, one pass writing n*k 16-bit values, or fp32 for fp32 activations) and multiplied by
// cuBLASLt with fp32 accumulation; weights stored in the activation type are used in place.
// fp32 activations use CUBLAS_COMPUTE_32F with fp32 A/B/C: true fp32 products (TF32 would need
// CUBLAS_COMPUTE_32F_FAST_TF32 and would round W and X to 10 mantissa bits). Compute dominates
// at m >= 16 (2*m*n*k flops against n*k*2 scratch bytes written and read back), so the extra pass
// costs a few percent at m = 512 and keeps the file's blobs untouched.
//
// Layout mapping (cuBLAS is column-major): row-major Y[m, n] is column-major Yt[n, m] with ld n,
// so we compute Yt = W * Xt: A = W stored row-major [n, k] = column-major [k, n] (ld k) used
// transposed, B = X row-major [m, k] = column-major [k, m] (ld k) not transposed, C = D = Yt.
// The bias (one value per row of Yt = per output feature) goes in cuBLASLt's BIAS epilogue so it is
// added to the fp32 accumulator before the single rounding; when cuBLASLt offers no algorithm for
// an fp32 bias with 16-bit output, a small kernel adds it afterwards (one more rounding).
#include <cublasLt.h>

#include <string>
#include <utility>

#include "common.cuh"

namespace qmodel::kernels {

struct GemmContext::Impl {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  ~Impl() {
    // Destruction cannot report errors; a failing free at teardown has nothing left to protect.
    if (workspace != nullptr) (void)cudaFree(workspace);
    if (handle != nullptr) (void)cublasLtDestroy(handle);
  }
};

namespace {

Status cublas_status(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status();
  return Status(StatusCode::kCuda, std::string(what) + ": " + cublasLtGetStatusName(s) + ": " +
                                       cublasLtGetStatusString(s));
}

#define QMODEL_CUBLAS_RETURN_IF_ERROR(expr) QMODEL_RETURN_IF_ERROR(cublas_status((expr), #expr))

// RAII owners for the per-call cuBLASLt descriptors.
struct MatmulDesc {
  cublasLtMatmulDesc_t desc = nullptr;
  ~MatmulDesc() { if (desc != nullptr) (void)cublasLtMatmulDescDestroy(desc); }
};
struct MatrixLayout {
  cublasLtMatrixLayout_t layout = nullptr;
  ~MatrixLayout() { if (layout != nullptr) (void)cublasLtMatrixLayoutDestroy(layout); }
};
struct Preference {
  cublasLtMatmulPreference_t pref = nullptr;
  ~Preference() { if (pref != nullptr) (void)cublasLtMatmulPreferenceDestroy(pref); }
};

// Thread -> data: one thread per output element of row-major y[m, n], grid-stride.
template <typename ActT>
__global__ void add_bias_kernel(ActT* __restrict__ y, const float* __restrict__ bias, int64_t m, int64_t n) {
  const int64_t total = m * n;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    y[i] = detail::ActTraits<ActT>::from_float(detail::ActTraits<ActT>::to_float(y[i]) + bias[i % n]);
  }
}

Status launch_add_bias(ActType act, void* y, const float* bias, int64_t m, int64_t n, cudaStream_t stream) {
  int n_sms = 0;
  QMODEL_RETURN_IF_ERROR(current_sm_count(&n_sms));
  const int64_t total = m * n;
  const int64_t n_blocks = std::min<int64_t>((total + detail::kBlockThreads - 1) / detail::kBlockThreads,
                                             int64_t{8} * n_sms);
  const auto grid = static_cast<unsigned>(n_blocks);
  if (act == ActType::kBF16) {
    QMODEL_LAUNCH(grid, detail::kBlockThreads, 0, stream, add_bias_kernel<__nv_bfloat16>)(
        static_cast<__nv_bfloat16*>(y), bias, m, n);
  } else if (act == ActType::kF32) {
    QMODEL_LAUNCH(grid, detail::kBlockThreads, 0, stream, add_bias_kernel<float>)(static_cast<float*>(y), bias, m, n);
  } else {
    QMODEL_LAUNCH(grid, detail::kBlockThreads, 0, stream, add_bias_kernel<__half>)(static_cast<__half*>(y), bias, m, n);
  }
  return check_launch("add_bias_kernel", stream);
}

// One cuBLASLt matmul Yt[n, m] = op(A)[n, k] * B[k, m] with or without the fused bias. Sets
// *no_algo (and returns ok) when the heuristic has nothing for this configuration.
Status run_matmul(GemmContext::Impl& ctx, cudaDataType_t type, const void* a, const void* b, void* d,
                  int64_t m, int64_t n, int64_t k, const float* bias, bool* no_algo, cudaStream_t stream) {
  *no_algo = false;
  MatmulDesc op;
  QMODEL_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&op.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  QMODEL_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(op.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
  QMODEL_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(op.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
  if (bias != nullptr) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bias_type = CUDA_R_32F;
    QMODEL_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(op.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    QMODEL_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(op.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    QMODEL_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(op.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
  }
  MatrixLayout la, lb, ld;
  const auto u = [](int64_t v) { return static_cast<uint64_t>(v); };
  QMODEL_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&la.layout, type, u(k), u(n), k));
  QMODEL_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&lb.layout, type, u(k), u(m), k));
  QMODEL_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&ld.layout, type, u(n), u(m), n));
  Preference pref;
  QMODEL_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&pref.pref));
  QMODEL_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
      pref.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ctx.workspace_bytes, sizeof(ctx.workspace_bytes)));
  cublasLtMatmulHeuristicResult_t heuristic = {};
  int n_results = 0;
  const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(ctx.handle, op.desc, la.layout, lb.layout, ld.layout,
                                                           ld.layout, pref.pref, 1, &heuristic, &n_results);
  // With the fused fp32 bias any refusal means "try without it" (the caller falls back).
  if (hs == CUBLAS_STATUS_NOT_SUPPORTED || (hs == CUBLAS_STATUS_SUCCESS && n_results == 0) ||
      (hs != CUBLAS_STATUS_SUCCESS && bias != nullptr)) {
    *no_algo = true;
    return Status();
  }
  QMODEL_RETURN_IF_ERROR(cublas_status(hs, "cublasLtMatmulAlgoGetHeuristic"));
  const float alpha = 1.0f, beta = 0.0f;
  QMODEL_CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(ctx.handle, op.desc, &alpha, a, la.layout, b, lb.layout, &beta, d,
                                               ld.layout, d, ld.layout, &heuristic.algo, ctx.workspace,
                                               ctx.workspace_bytes, stream));
  return Status();
}

}  // namespace

GemmContext::GemmContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GemmContext::GemmContext(GemmContext&&) noexcept = default;
GemmContext& GemmContext::operator=(GemmContext&&) noexcept = default;
GemmContext::~GemmContext() = default;

Result<GemmContext> GemmContext::create(int64_t workspace_bytes) {
  if (workspace_bytes < 0) return Status(StatusCode::kInvalidArgument, "gemm: negative workspace size");
  auto impl = std::make_unique<Impl>();
  QMODEL_RETURN_IF_ERROR(cublas_status(cublasLtCreate(&impl->handle), "cublasLtCreate"));
  impl->workspace_bytes = static_cast<size_t>(workspace_bytes);
  if (workspace_bytes > 0) {
    QMODEL_CUDA_RETURN_IF_ERROR(cudaMalloc(&impl->workspace, impl->workspace_bytes));
  }
  return GemmContext(std::move(impl));
}

namespace {
// A weight stored in the activation type is the GEMM's A operand as it is.
bool weight_in_place(const DeviceWeightView& w, ActType act) {
  return (act == ActType::kBF16 && w.storage == StorageType::kBF16) ||
         (act == ActType::kF16 && w.storage == StorageType::kF16) ||
         (act == ActType::kF32 && w.storage == StorageType::kF32);
}
}  // namespace

int64_t gemm_scratch_bytes(const DeviceWeightView& w, ActType act) {
  const int64_t elem_bytes = act == ActType::kF32 ? 4 : 2;
  if (weight_in_place(w, act) || w.rows <= 0 || w.cols <= 0 || w.rows > INT64_MAX / w.cols / elem_bytes) return 0;
  return w.rows * w.cols * elem_bytes;
}

Status launch_gemm(GemmContext& ctx, ActType act, const void* x, int64_t m, const DeviceWeightView& w,
                   const float* bias, void* y, void* scratch, int64_t scratch_bytes, cudaStream_t stream) {
  QMODEL_RETURN_IF_ERROR(validate_device_weight(w));
  if (ctx.impl() == nullptr) return Status(StatusCode::kInvalidArgument, "gemm: moved-from GemmContext");
  if (m <= 0) return Status(StatusCode::kInvalidArgument, "gemm: m must be positive");
  if (act != ActType::kBF16 && act != ActType::kF16 && act != ActType::kF32) {
    return Status(StatusCode::kUnsupported, "gemm: activations must be bf16, f16 or f32");
  }
  // cuBLASLt takes 64-bit dims, but int32 keeps every index in its kernels safe.
  if (m > INT32_MAX || w.rows > INT32_MAX || w.cols > INT32_MAX) {
    return Status(StatusCode::kUnsupported, "gemm: a dimension exceeds int32");
  }
  if (x == nullptr || y == nullptr) return Status(StatusCode::kInvalidArgument, "gemm: x or y is null");
  const int64_t need = gemm_scratch_bytes(w, act);
  const void* a = w.data;
  if (!weight_in_place(w, act)) {
    if (need == 0) return Status(StatusCode::kUnsupported, "gemm: scratch size overflows int64");
    if (scratch == nullptr || scratch_bytes < need) {
      return Status(StatusCode::kInvalidArgument, "gemm: scratch of " + std::to_string(scratch_bytes) +
                                                      " bytes, need " + std::to_string(need));
    }
    QMODEL_RETURN_IF_ERROR(launch_dequantize(w, 0, w.rows * w.cols, act, scratch, stream));
    a = scratch;
  }
  const cudaDataType_t type = act == ActType::kBF16 ? CUDA_R_16BF : act == ActType::kF16 ? CUDA_R_16F : CUDA_R_32F;
  bool no_algo = false;
  QMODEL_RETURN_IF_ERROR(run_matmul(*ctx.impl(), type, a, x, y, m, w.rows, w.cols, bias, &no_algo, stream));
  if (no_algo && bias != nullptr) {
    // Fallback: plain GEMM, then the bias in a second pass.
    QMODEL_RETURN_IF_ERROR(run_matmul(*ctx.impl(), type, a, x, y, m, w.rows, w.cols, nullptr, &no_algo, stream));
    if (!no_algo) return launch_add_bias(act, y, bias, m, w.rows, stream);
  }
  if (no_algo) {
    return Status(StatusCode::kUnsupported, "gemm: cuBLASLt has no algorithm for m=" + std::to_string(m) +
                                                " n=" + std::to_string(w.rows) + " k=" + std::to_string(w.cols));
  }
  return Status();
}

}  // namespace qmodel::kernels
