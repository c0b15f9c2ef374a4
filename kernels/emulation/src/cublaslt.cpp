// The emulated cuBLASLt: descriptors as plain structs, one "algorithm", and a reference matmul
// (fp32 accumulation in 8 interleaved partial sums, one rounding to D's type) run over the thread
// pool. The validation mirrors cuBLASLt's: a layout that does not match op(A) / op(B) / D is
// CUBLAS_STATUS_INVALID_VALUE, a combination cuBLASLt lacks or the emulator does not model is
// CUBLAS_STATUS_NOT_SUPPORTED.
#include <cublasLt.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cuda_emu/fp16.h"
#include "errors.h"
#include "memory.h"
#include "stream.h"
#include "thread_pool.h"

struct cuda_emu_cublaslt_context {
  int unused = 0;
};
struct cuda_emu_cublaslt_matmul_desc {
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cudaDataType_t scale = CUDA_R_32F;
  int32_t pointer_mode = CUBLASLT_POINTER_MODE_HOST;
  int32_t trans_a = CUBLAS_OP_N;
  int32_t trans_b = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int32_t bias_type = -1;  // -1: D's type
};
struct cuda_emu_cublaslt_layout {
  cudaDataType_t type = CUDA_R_32F;
  uint64_t rows = 0, cols = 0;
  int64_t ld = 0;
  int32_t order = CUBLASLT_ORDER_COL;
  int32_t batch = 1;
  int64_t stride = 0;
};
struct cuda_emu_cublaslt_preference {
  uint64_t max_workspace = 0;
  uint32_t search_mode = 0;
};

namespace {

using cuda_emu::detail::Fault;
using Desc = cuda_emu_cublaslt_matmul_desc;
using Layout = cuda_emu_cublaslt_layout;

constexpr uint64_t kAlgoMagic = 0x63756461656d754cull;  // "cudaemuL"

// The problem a validated matmul solves: D[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C (+ bias).
struct Problem {
  Desc op;
  Layout a, b, c, d;
  uint64_t m = 0, n = 0, k = 0;
  cudaDataType_t bias_type = CUDA_R_32F;
};

bool is_float_type(cudaDataType_t t) { return t == CUDA_R_16F || t == CUDA_R_16BF || t == CUDA_R_32F; }

size_t type_bytes(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

std::string describe(const char* name, const Layout& l) {
  return std::string(name) + " " + std::to_string(l.rows) + " x " + std::to_string(l.cols) + " (ld " +
         std::to_string(l.ld) + ")";
}

cublasStatus_t invalid(const std::string& why) {
  cuda_emu::detail::print_message("cuBLASLt: " + why);
  return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t check_problem(const Desc* op, const Layout* a, const Layout* b, const Layout* c, const Layout* d,
                             Problem* p) {
  if (op == nullptr || a == nullptr || b == nullptr || c == nullptr || d == nullptr) {
    return invalid("null matmul or layout descriptor");
  }
  if (a->order != CUBLASLT_ORDER_COL || b->order != CUBLASLT_ORDER_COL || c->order != CUBLASLT_ORDER_COL ||
      d->order != CUBLASLT_ORDER_COL) {
    return CUBLAS_STATUS_NOT_SUPPORTED;  // the emulator models column-major layouts only
  }
  if (op->compute == CUBLAS_COMPUTE_16F) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (op->scale != CUDA_R_32F) return invalid("32-bit compute needs CUDA_R_32F scale type");
  if (!is_float_type(a->type) || a->type != b->type || c->type != d->type ||
      !(d->type == a->type || d->type == CUDA_R_32F)) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (op->trans_a < CUBLAS_OP_N || op->trans_a > CUBLAS_OP_C || op->trans_b < CUBLAS_OP_N || op->trans_b > CUBLAS_OP_C) {
    return invalid("unknown cublasOperation_t");
  }
  const bool ta = op->trans_a != CUBLAS_OP_N, tb = op->trans_b != CUBLAS_OP_N;
  p->m = d->rows;
  p->n = d->cols;
  p->k = ta ? a->rows : a->cols;
  if (c->rows != d->rows || c->cols != d->cols) return invalid(describe("C", *c) + " but " + describe("D", *d));
  if ((ta ? a->cols : a->rows) != p->m) {
    return invalid(describe("A", *a) + (ta ? " transposed" : "") + " does not give op(A) with " +
                   std::to_string(p->m) + " rows (D's rows)");
  }
  const uint64_t b_k = tb ? b->cols : b->rows, b_n = tb ? b->rows : b->cols;
  if (b_k != p->k || b_n != p->n) {
    return invalid(describe("B", *b) + (tb ? " transposed" : "") + " is not op(B) = " + std::to_string(p->k) +
                   " x " + std::to_string(p->n) + " (k from op(A), n from D)");
  }
  for (const auto& [name, l] : {std::pair<const char*, const Layout*>{"A", a}, {"B", b}, {"C", c}, {"D", d}}) {
    if (l->ld < 1 || static_cast<uint64_t>(l->ld) < l->rows) return invalid(describe(name, *l) + ": ld < rows");
    if (l->batch < 1 || l->stride < 0) return invalid(std::string(name) + ": bad batch count or stride");
  }
  if (a->batch != d->batch || b->batch != d->batch || c->batch != d->batch) {
    return invalid("batch counts differ between A, B, C and D");
  }
  if (op->epilogue != CUBLASLT_EPILOGUE_DEFAULT && op->epilogue != CUBLASLT_EPILOGUE_BIAS) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  p->bias_type = op->bias_type == -1 ? d->type : static_cast<cudaDataType_t>(op->bias_type);
  if (op->epilogue == CUBLASLT_EPILOGUE_BIAS && p->bias_type != d->type && p->bias_type != CUDA_R_32F) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  p->op = *op;
  p->a = *a;
  p->b = *b;
  p->c = *c;
  p->d = *d;
  return CUBLAS_STATUS_SUCCESS;
}

// The matmul's inner loops read and write the operands through these helpers; the operands'
// extents were checked against device-accessible memory before the matmul runs, so they are
// left uninstrumented (they dominate emulated GEMM time).
#define CUDA_EMU_UNCHECKED __attribute__((no_sanitize("address", "undefined")))

// Uninstrumented copies of the exact 16-bit -> float conversions (GCC does not inline the
// instrumented ones from cuda_emu/fp16.h into these functions).
CUDA_EMU_UNCHECKED inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
CUDA_EMU_UNCHECKED inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (mant << 13));
  if (exp != 0) return bits_to_float(sign | ((exp + 112) << 23) | (mant << 13));
  // Zero or subnormal: mant * 2^-24, exact in float.
  const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
  return sign != 0 ? -v : v;
}

CUDA_EMU_UNCHECKED inline float load(const void* base, cudaDataType_t t, uint64_t index) {
  if (t == CUDA_R_32F) return static_cast<const float*>(base)[index];
  const uint16_t h = static_cast<const uint16_t*>(base)[index];
  return t == CUDA_R_16F ? half_to_float(h) : bits_to_float(static_cast<uint32_t>(h) << 16);
}

CUDA_EMU_UNCHECKED inline void store(void* base, cudaDataType_t t, uint64_t index, float v) {
  if (t == CUDA_R_32F) {
    static_cast<float*>(base)[index] = v;
  } else {
    static_cast<uint16_t*>(base)[index] =
        t == CUDA_R_16F ? cuda_emu::fp16::float_to_half_bits(v) : cuda_emu::fp16::float_to_bf16_bits(v);
  }
}

// Bytes a strided-batched column-major operand spans.
uint64_t extent_bytes(const Layout& l) {
  if (l.rows == 0 || l.cols == 0) return 0;
  const uint64_t elems =
      static_cast<uint64_t>(l.batch - 1) * static_cast<uint64_t>(l.stride) + (l.cols - 1) * static_cast<uint64_t>(l.ld) + l.rows;
  return elems * type_bytes(l.type);
}

// out[l] = element start + l * step of a column-major operand, as float, for l < n.
CUDA_EMU_UNCHECKED void gather(const void* base, cudaDataType_t t, uint64_t start, uint64_t step, uint64_t n,
                               float* out) {
  for (uint64_t l = 0; l < n; ++l) out[l] = load(base, t, start + l * step);
}

// fp32 dot product with 8 interleaved partial sums (vectorisable without reassociating).
CUDA_EMU_UNCHECKED float dot(const float* x, const float* y, uint64_t k) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  uint64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j] * y[i + j];
  }
  for (; i < k; ++i) acc[i % 8] += x[i] * y[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// D[i, j] for every column j: alpha * dot + beta * C[i, j] + bias[i], rounded once to D's type.
CUDA_EMU_UNCHECKED void finish_row(const float* a_row, const float* bt, uint64_t n, uint64_t k, float alpha,
                                   float beta, const void* c, cudaDataType_t c_type, bool use_c, float bias,
                                   bool use_bias, void* d, cudaDataType_t d_type, uint64_t i, uint64_t ldc,
                                   uint64_t ldd) {
  for (uint64_t j = 0; j < n; ++j) {
    float v = alpha * dot(a_row, bt + j * k, k);
    if (use_c) v += beta * load(c, c_type, i + j * ldc);
    if (use_bias) v += bias;
    store(d, d_type, i + j * ldd, v);
  }
}

struct Operands {
  const void* a;
  const void* b;
  const void* c;
  void* d;
  float alpha, beta;
  const void* alpha_ptr;  // device pointer mode: read when the matmul runs
  const void* beta_ptr;
};

Fault run_matmul(const Problem& p, Operands o) {
  if (p.op.pointer_mode == CUBLASLT_POINTER_MODE_DEVICE) {
    if (!cuda_emu::detail::device_accessible(o.alpha_ptr, 4) || !cuda_emu::detail::device_accessible(o.beta_ptr, 4)) {
      return Fault{cudaErrorIllegalAddress, "cublasLtMatmul: alpha / beta are not device memory (pointer mode device)"};
    }
    std::memcpy(&o.alpha, o.alpha_ptr, 4);
    std::memcpy(&o.beta, o.beta_ptr, 4);
  }
  const bool use_c = o.beta != 0.0f;
  const bool use_bias = p.op.epilogue == CUBLASLT_EPILOGUE_BIAS;
  struct Check {
    const char* name;
    const void* ptr;
    uint64_t bytes;
  };
  const Check checks[] = {{"A", o.a, extent_bytes(p.a)},
                          {"B", o.b, extent_bytes(p.b)},
                          {"C", use_c ? o.c : nullptr, use_c ? extent_bytes(p.c) : 0},
                          {"D", o.d, extent_bytes(p.d)},
                          {"bias", use_bias ? p.op.bias : nullptr, use_bias ? p.m * type_bytes(p.bias_type) : 0}};
  for (const Check& ch : checks) {
    if (ch.bytes > 0 && !cuda_emu::detail::device_accessible(ch.ptr, ch.bytes)) {
      char buf[160];
      std::snprintf(buf, sizeof(buf), "cublasLtMatmul: operand %s at %p (%llu bytes) is not in device-accessible memory",
                    ch.name, ch.ptr, static_cast<unsigned long long>(ch.bytes));
      return Fault{cudaErrorIllegalAddress, buf};
    }
  }
  const bool ta = p.op.trans_a != CUBLAS_OP_N, tb = p.op.trans_b != CUBLAS_OP_N;
  const uint64_t m = p.m, n = p.n, k = p.k;
  const size_t ea = type_bytes(p.a.type), eb = type_bytes(p.b.type), ec = type_bytes(p.c.type),
               ed = type_bytes(p.d.type);
  std::vector<float> bt(n * k);  // op(B) column j, contiguous over k
  for (int32_t batch = 0; batch < p.d.batch; ++batch) {
    const auto* a = static_cast<const char*>(o.a) + static_cast<uint64_t>(batch * p.a.stride) * ea;
    const auto* b = static_cast<const char*>(o.b) + static_cast<uint64_t>(batch * p.b.stride) * eb;
    const auto* c = use_c ? static_cast<const char*>(o.c) + static_cast<uint64_t>(batch * p.c.stride) * ec : nullptr;
    auto* d = static_cast<char*>(o.d) + static_cast<uint64_t>(batch * p.d.stride) * ed;
    const uint64_t lda = static_cast<uint64_t>(p.a.ld), ldb = static_cast<uint64_t>(p.b.ld),
                   ldc = static_cast<uint64_t>(p.c.ld), ldd = static_cast<uint64_t>(p.d.ld);
    for (uint64_t j = 0; j < n; ++j) gather(b, p.b.type, tb ? j : j * ldb, tb ? ldb : 1, k, bt.data() + j * k);
    // Rows of D in chunks over the pool; each chunk converts its rows of op(A) once.
    constexpr uint64_t kChunk = 16;
    const uint64_t n_chunks = (m + kChunk - 1) / kChunk;
    std::atomic<uint64_t> next{0};
    const std::function<void()> work = [&] {
      std::vector<float> ar(k);
      for (uint64_t ch = next.fetch_add(1); ch < n_chunks; ch = next.fetch_add(1)) {
        for (uint64_t i = ch * kChunk; i < std::min(m, (ch + 1) * kChunk); ++i) {
          gather(a, p.a.type, ta ? i * lda : i, ta ? 1 : lda, k, ar.data());
          const float bias = use_bias ? load(p.op.bias, p.bias_type, i) : 0.0f;
          finish_row(ar.data(), bt.data(), n, k, o.alpha, o.beta, c, p.c.type, use_c, bias, use_bias, d, p.d.type,
                     i, ldc, ldd);
        }
      }
    };
    auto& pool = cuda_emu::detail::ThreadPool::instance();
    pool.run(work, static_cast<int>(std::min<uint64_t>(n_chunks, static_cast<uint64_t>(pool.threads()))));
  }
  return Fault{};
}

template <typename T>
cublasStatus_t read_attr(const void* buf, size_t size, T* out) {
  if (buf == nullptr || size != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(out, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

const char* cublasLtGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "<unknown>";
}

const char* cublasLtGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "error detected trying to check the license";
  }
  return "<unknown>";
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (!cuda_emu::detail::device_present()) return CUBLAS_STATUS_NOT_INITIALIZED;
  *handle = new cuda_emu_cublaslt_context;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute_type,
                                        cudaDataType_t scale_type) {
  if (desc == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  switch (compute_type) {
    case CUBLAS_COMPUTE_16F:
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC:
    case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF:
    case CUBLAS_COMPUTE_32F_FAST_TF32: break;
    default: return CUBLAS_STATUS_INVALID_VALUE;
  }
  auto* d = new cuda_emu_cublaslt_matmul_desc;
  d->compute = compute_type;
  d->scale = scale_type;
  *desc = d;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
  if (desc == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: {
      int32_t v = 0;
      const cublasStatus_t s = read_attr(buf, size, &v);
      if (s == CUBLAS_STATUS_SUCCESS) desc->compute = static_cast<cublasComputeType_t>(v);
      return s;
    }
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: {
      int32_t v = 0;
      const cublasStatus_t s = read_attr(buf, size, &v);
      if (s == CUBLAS_STATUS_SUCCESS) desc->scale = static_cast<cudaDataType_t>(v);
      return s;
    }
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: {
      int32_t v = 0;
      const cublasStatus_t s = read_attr(buf, size, &v);
      if (s != CUBLAS_STATUS_SUCCESS) return s;
      if (v != CUBLASLT_POINTER_MODE_HOST && v != CUBLASLT_POINTER_MODE_DEVICE) return CUBLAS_STATUS_NOT_SUPPORTED;
      desc->pointer_mode = v;
      return s;
    }
    case CUBLASLT_MATMUL_DESC_TRANSA: return read_attr(buf, size, &desc->trans_a);
    case CUBLASLT_MATMUL_DESC_TRANSB: return read_attr(buf, size, &desc->trans_b);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return read_attr(buf, size, &desc->epilogue);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return read_attr(buf, size, &desc->bias);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return read_attr(buf, size, &desc->bias_type);
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  if (layout == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  auto* l = new cuda_emu_cublaslt_layout;
  l->type = type;
  l->rows = rows;
  l->cols = cols;
  l->ld = ld;
  *layout = l;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t size) {
  if (layout == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: {
      uint32_t v = 0;
      const cublasStatus_t s = read_attr(buf, size, &v);
      if (s == CUBLAS_STATUS_SUCCESS) layout->type = static_cast<cudaDataType_t>(v);
      return s;
    }
    case CUBLASLT_MATRIX_LAYOUT_ORDER: return read_attr(buf, size, &layout->order);
    case CUBLASLT_MATRIX_LAYOUT_ROWS: return read_attr(buf, size, &layout->rows);
    case CUBLASLT_MATRIX_LAYOUT_COLS: return read_attr(buf, size, &layout->cols);
    case CUBLASLT_MATRIX_LAYOUT_LD: return read_attr(buf, size, &layout->ld);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return read_attr(buf, size, &layout->batch);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return read_attr(buf, size, &layout->stride);
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  if (pref == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *pref = new cuda_emu_cublaslt_preference;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t size) {
  if (pref == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_SEARCH_MODE: return read_attr(buf, size, &pref->search_mode);
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return read_attr(buf, size, &pref->max_workspace);
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a_desc, cublasLtMatrixLayout_t b_desc,
                                              cublasLtMatrixLayout_t c_desc, cublasLtMatrixLayout_t d_desc,
                                              cublasLtMatmulPreference_t pref, int requested_algo_count,
                                              cublasLtMatmulHeuristicResult_t heuristic_results[],
                                              int* return_algo_count) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (pref == nullptr || requested_algo_count <= 0 || heuristic_results == nullptr || return_algo_count == nullptr) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  *return_algo_count = 0;
  Problem p;
  const cublasStatus_t s = check_problem(desc, a_desc, b_desc, c_desc, d_desc, &p);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  cublasLtMatmulHeuristicResult_t r;
  std::memset(&r, 0, sizeof(r));
  r.algo.data[0] = kAlgoMagic;
  r.workspaceSize = 0;
  r.state = CUBLAS_STATUS_SUCCESS;
  r.wavesCount = 1.0f;
  heuristic_results[0] = r;
  *return_algo_count = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* a,
                              cublasLtMatrixLayout_t a_desc, const void* b, cublasLtMatrixLayout_t b_desc,
                              const void* beta, const void* c, cublasLtMatrixLayout_t c_desc, void* d,
                              cublasLtMatrixLayout_t d_desc, const cublasLtMatmulAlgo_t* algo, void* workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
  (void)workspace;
  (void)workspace_bytes;
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (algo != nullptr && algo->data[0] != kAlgoMagic) return invalid("algo was not returned by the heuristic");
  Problem p;
  const cublasStatus_t s = check_problem(desc, a_desc, b_desc, c_desc, d_desc, &p);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  if (alpha == nullptr || beta == nullptr) return invalid("null alpha or beta");
  if (a == nullptr || b == nullptr || d == nullptr) return invalid("null A, B or D");
  if (p.op.epilogue == CUBLASLT_EPILOGUE_BIAS && p.op.bias == nullptr) return invalid("BIAS epilogue without a bias pointer");
  Operands o{a, b, c, d, 0.0f, 0.0f, alpha, beta};
  if (p.op.pointer_mode == CUBLASLT_POINTER_MODE_HOST) {
    std::memcpy(&o.alpha, alpha, 4);  // host scalars are read at the call, as cuBLASLt does
    std::memcpy(&o.beta, beta, 4);
    if (o.beta != 0.0f && c == nullptr) return invalid("beta != 0 with a null C");
  }
  auto op = std::make_shared<cuda_emu::detail::Op>();
  op->type = cudaGraphNodeTypeKernel;
  op->run = [p, o] { return run_matmul(p, o); };
  const cudaError_t e = cuda_emu::detail::enqueue(stream, std::move(op));
  if (e == cudaSuccess) return CUBLAS_STATUS_SUCCESS;
  cuda_emu::detail::set_error(e);
  return e == cudaErrorInvalidResourceHandle ? CUBLAS_STATUS_INVALID_VALUE : CUBLAS_STATUS_EXECUTION_FAILED;
}
