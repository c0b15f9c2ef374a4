// bench_kernels: times the CUDA GEMV / GEMM kernels (qmodel/kernels/cuda.h) on synthetic weights
// and prints markdown tables. Method (shared/GPU.md, device METHOD.md): first the device read
// bandwidth with a plain 16-byte-per-thread read kernel; then every GEMV at the Llama-3-8B shapes
// for NF4, NF4+DQ, FP4 (block 64), INT8, our bf16 kernel and cuBLAS bf16 (cublasGemmEx, m = 1);
// then the same with fp32 activations, q/k/v and gate/up as one launch_gemv_multi against separate
// launches, then the prefill GEMM at m = 512 against cuBLAS bf16 of the same shape (and with fp32
// activations, a true fp32 GEMM). Inputs are random (never
// zero: speed must not depend on it, but zeros can hide unwritten memory and run faster). Each case
// captures a CUDA graph of back-to-back launches that rotate over enough weight copies to exceed
// 3x L2 (so L2 never serves a small matrix), replays it after a warm-up, times every replay with
// CUDA events and reports the median per launch. Effective GB/s counts weight + scale bytes.
//
// Usage: bench_kernels [--quick]   (--quick: fewer replays, for smoke runs)
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "qmodel/kernels/cuda.h"
#include "qmodel/kernels/cuda_launch.cuh"
#include "qmodel/kernels/ref.h"

namespace {

using qmodel::Status;
using qmodel::StorageType;
using qmodel::kernels::ActType;
using qmodel::kernels::DeviceWeightView;

constexpr int kThreads = 256;
constexpr int64_t kBlockSize = 64;      // bnb / transformers default
constexpr int64_t kPrefillTokens = 512;

void die(const std::string& what) {
  std::fprintf(stderr, "bench_kernels: %s\n", what.c_str());
  std::exit(1);
}
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) die(std::string(what) + ": " + cudaGetErrorString(e));
}
void check(const Status& s, const char* what) {
  if (!s.ok()) die(std::string(what) + ": " + s.message());
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) die(std::string(what) + ": " + cublasGetStatusString(s));
}
#define CHECK(expr) check((expr), #expr)

// ---- random fill (device) ----------------------------------------------------------------------
__device__ uint32_t hash32(uint64_t i, uint32_t seed) {
  uint64_t z = i * 0x9e3779b97f4a7c15ull + seed;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return static_cast<uint32_t>(z ^ (z >> 31));
}
__global__ void fill_bytes_kernel(uint32_t* p, int64_t n_words, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n_words; i += int64_t{gridDim.x} * blockDim.x) {
    p[i] = hash32(static_cast<uint64_t>(i), seed) | 0x01010101u;  // never an all-zero byte
  }
}
__global__ void fill_uniform_kernel(float* p, int64_t n, float lo, float hi, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    p[i] = lo + (hi - lo) * (static_cast<float>(hash32(static_cast<uint64_t>(i), seed) >> 8) * (1.0f / 16777216.0f));
  }
}
__global__ void fill_bf16_kernel(__nv_bfloat16* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float u = static_cast<float>(hash32(static_cast<uint64_t>(i), seed) >> 8) * (1.0f / 16777216.0f);
    p[i] = __float2bfloat16_rn(2.0f * u - 1.0f + 1e-3f);
  }
}

void fill_bytes(void* p, int64_t n_bytes, uint32_t seed) {
  // Rounds up to whole words: every buffer is allocated with a 16-byte margin.
  const int64_t n_words = (n_bytes + 3) / 4;
  QMODEL_LAUNCH(1024, kThreads, 0, nullptr, fill_bytes_kernel)(static_cast<uint32_t*>(p), n_words, seed);
  CHECK(cudaGetLastError());
}
void fill_uniform(float* p, int64_t n, float lo, float hi, uint32_t seed) {
  QMODEL_LAUNCH(1024, kThreads, 0, nullptr, fill_uniform_kernel)(p, n, lo, hi, seed);
  CHECK(cudaGetLastError());
}
void fill_bf16(void* p, int64_t n, uint32_t seed) {
  QMODEL_LAUNCH(1024, kThreads, 0, nullptr, fill_bf16_kernel)(static_cast<__nv_bfloat16*>(p), n, seed);
  CHECK(cudaGetLastError());
}

// Device allocations freed at exit of main's scope.
struct Arena {
  std::vector<void*> ptrs;
  void* alloc(int64_t n_bytes) {
    void* p = nullptr;
    CHECK(cudaMalloc(&p, static_cast<size_t>(n_bytes + 16)));
    ptrs.push_back(p);
    return p;
  }
  void release() {
    for (void* p : ptrs) CHECK(cudaFree(p));
    ptrs.clear();
  }
  ~Arena() {
    for (void* p : ptrs) (void)cudaFree(p);
  }
};

// ---- timing -------------------------------------------------------------------------------------
int g_replays = 50;

// Captures `launches` calls of body(i) into a graph, replays it after a warm-up and returns the
// median time of one call in microseconds.
double time_graph(cudaStream_t stream, int launches, const std::function<void(int)>& body) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < launches; ++i) body(i);
  CHECK(cudaStreamEndCapture(stream, &graph));
  CHECK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) CHECK(cudaGraphLaunch(exec, stream));
  std::vector<float> ms;
  for (int r = 0; r < g_replays; ++r) {
    CHECK(cudaEventRecord(start, stream));
    CHECK(cudaGraphLaunch(exec, stream));
    CHECK(cudaEventRecord(stop, stream));
    CHECK(cudaEventSynchronize(stop));
    float t = 0;
    CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  CHECK(cudaGetLastError());
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  CHECK(cudaGraphExecDestroy(exec));
  CHECK(cudaGraphDestroy(graph));
  std::sort(ms.begin(), ms.end());
  return 1e3 * ms[ms.size() / 2] / launches;
}

// ---- read bandwidth ------------------------------------------------------------------------------
__global__ void read_bw_kernel(const uint4* __restrict__ p, int64_t n, uint32_t* sink) {
  uint32_t acc = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const uint4 v = __ldg(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) *sink = acc;  // keeps the loads alive; practically never written
}

double measure_read_bandwidth(cudaStream_t stream, int n_sms) {
  const int64_t n_bytes = int64_t{2} << 30;  // 2 GiB: 40x an H100's L2
  Arena arena;
  void* buf = arena.alloc(n_bytes);
  auto* sink = static_cast<uint32_t*>(arena.alloc(4));
  fill_bytes(buf, n_bytes, 7);
  CHECK(cudaDeviceSynchronize());
  const int64_t n = n_bytes / 16;
  const double us = time_graph(stream, 5, [&](int) {
    QMODEL_LAUNCH(n_sms * 8, kThreads, 0, stream, read_bw_kernel)(static_cast<const uint4*>(buf), n, sink);
  });
  CHECK(cudaGetLastError());
  return static_cast<double>(n_bytes) / (us * 1e-6) / 1e9;
}

// ---- weights ------------------------------------------------------------------------------------
enum class Kind { kNf4, kNf4Dq, kFp4, kInt8, kBf16, kCublasBf16 };
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kNf4: return "nf4";
    case Kind::kNf4Dq: return "nf4-dq";
    case Kind::kFp4: return "fp4";
    case Kind::kInt8: return "int8";
    case Kind::kBf16: return "bf16 (ours)";
    case Kind::kCublasBf16: return "bf16 cuBLAS";
  }
  return "?";
}

// Bytes one weight copy occupies: what a GEMV must read (weights + scales).
int64_t weight_bytes(Kind kind, int64_t n, int64_t k) {
  const int64_t elems = n * k;
  const int64_t n_blocks = (elems + kBlockSize - 1) / kBlockSize;
  switch (kind) {
    case Kind::kNf4:
    case Kind::kFp4: return elems / 2 + 4 * n_blocks;
    case Kind::kNf4Dq: return elems / 2 + n_blocks + 4 * ((n_blocks + 255) / 256);
    case Kind::kInt8: return elems + 4 * n;
    case Kind::kBf16:
    case Kind::kCublasBf16: return 2 * elems;
  }
  return 0;
}

DeviceWeightView make_weight(Arena& arena, Kind kind, int64_t n, int64_t k, const float* d_dyn, uint32_t seed) {
  DeviceWeightView w;
  w.rows = n;
  w.cols = k;
  const int64_t elems = n * k;
  const int64_t n_blocks = (elems + kBlockSize - 1) / kBlockSize;
  switch (kind) {
    case Kind::kNf4:
    case Kind::kNf4Dq:
    case Kind::kFp4: {
      w.storage = kind == Kind::kFp4 ? StorageType::kFP4 : StorageType::kNF4;
      w.block_size = kBlockSize;
      std::memcpy(w.code_table, kind == Kind::kFp4 ? qmodel::kFp4CodeTable : qmodel::kNf4CodeTable, sizeof(w.code_table));
      void* codes = arena.alloc(elems / 2);
      fill_bytes(codes, elems / 2, seed);
      w.data = codes;
      if (kind == Kind::kNf4Dq) {
        auto* q = static_cast<uint8_t*>(arena.alloc(n_blocks));
        fill_bytes(q, n_blocks, seed + 1);
        const int64_t n_nested = (n_blocks + 255) / 256;
        auto* nested = static_cast<float*>(arena.alloc(4 * n_nested));
        fill_uniform(nested, n_nested, 0.5f, 1.5f, seed + 2);
        w.absmax_codes = q;
        w.nested_absmax = nested;
        w.nested_code_table = d_dyn;
        w.nested_block_size = 256;
        w.nested_offset = 0.75f;
      } else {
        auto* absmax = static_cast<float*>(arena.alloc(4 * n_blocks));
        fill_uniform(absmax, n_blocks, 0.5f, 1.5f, seed + 1);
        w.absmax = absmax;
      }
      break;
    }
    case Kind::kInt8: {
      w.storage = StorageType::kINT8;
      void* q = arena.alloc(elems);
      fill_bytes(q, elems, seed);
      auto* scb = static_cast<float*>(arena.alloc(4 * n));
      fill_uniform(scb, n, 0.5f, 1.5f, seed + 1);
      w.data = q;
      w.row_scale = scb;
      break;
    }
    case Kind::kBf16:
    case Kind::kCublasBf16: {
      w.storage = StorageType::kBF16;
      void* p = arena.alloc(2 * elems);
      fill_bf16(p, elems, seed);
      w.data = p;
      break;
    }
  }
  return w;
}

struct Shape {
  int64_t n, k;
  const char* what;
};
constexpr Shape kShapes[] = {{4096, 4096, "q/o proj"}, {1024, 4096, "k/v proj"}, {14336, 4096, "gate/up"},
                             {4096, 14336, "down"},     {128256, 4096, "lm_head"}};

void cublas_gemm_bf16(cublasHandle_t h, const void* w, const void* x, void* y, int64_t m, int64_t n, int64_t k) {
  // Row-major Y[m, n] = X[m, k] W[n, k]^T as column-major Yt[n, m] = W^T(op T on [k, n]) * Xt[k, m].
  const float alpha = 1.0f, beta = 0.0f;
  CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha,
                     w, CUDA_R_16BF, static_cast<int>(k), x, CUDA_R_16BF, static_cast<int>(k), &beta, y, CUDA_R_16BF,
                     static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      g_replays = 7;
    } else {
      die(std::string("unknown argument ") + argv[i] + " (usage: bench_kernels [--quick])");
    }
  }
  int n_devices = 0;
  if (cudaGetDeviceCount(&n_devices) != cudaSuccess || n_devices == 0) die("no CUDA device");
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cublasHandle_t cublas;
  CHECK(cublasCreate(&cublas));
  CHECK(cublasSetStream(cublas, stream));
  Arena persistent;
  // cuBLAS must not allocate during graph capture: give it its workspace up front.
  const int64_t kCublasWorkspace = int64_t{32} << 20;
  CHECK(cublasSetWorkspace(cublas, persistent.alloc(kCublasWorkspace), kCublasWorkspace));
  auto gemm_ctx = qmodel::kernels::GemmContext::create();
  check(gemm_ctx.status(), "GemmContext::create");

  const auto dyn_host = qmodel::kernels::dynamic_map_signed();
  auto* d_dyn = static_cast<float*>(persistent.alloc(4 * 256));
  CHECK(cudaMemcpy(d_dyn, dyn_host.data(), 4 * 256, cudaMemcpyHostToDevice));

  std::printf("# qmodel kernel benchmark\n\ndevice: %s, %d SMs, L2 %d MiB; median of %d graph replays\n\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, g_replays);
  const double read_gbs = measure_read_bandwidth(stream, prop.multiProcessorCount);
  std::printf("device read bandwidth (16-byte loads, 2 GiB): %.0f GB/s\n\n", read_gbs);

  // ---- decode GEMV, m = 1 ----
  std::printf("## GEMV (m = 1, bf16 activations, block size %lld)\n\n", static_cast<long long>(kBlockSize));
  std::printf("| shape n x k | layer | weights | time us | GB/s (weights+scales) | %% of read BW |\n");
  std::printf("|---|---|---|---|---|---|\n");
  const Kind gemv_kinds[] = {Kind::kNf4, Kind::kNf4Dq, Kind::kFp4, Kind::kInt8, Kind::kBf16, Kind::kCublasBf16};
  const int64_t rotate_bytes = int64_t{3} * prop.l2CacheSize;
  for (const Shape& s : kShapes) {
    for (Kind kind : gemv_kinds) {
      Arena arena;
      const int64_t bytes = weight_bytes(kind, s.n, s.k);
      const int n_copies = static_cast<int>(std::max<int64_t>(1, (rotate_bytes + bytes - 1) / bytes));
      std::vector<DeviceWeightView> copies;
      for (int c = 0; c < n_copies; ++c) copies.push_back(make_weight(arena, kind, s.n, s.k, d_dyn, 100 + 17 * c));
      void* x = arena.alloc(2 * s.k);
      void* y = arena.alloc(2 * s.n);
      fill_bf16(x, s.k, 3);
      CHECK(cudaDeviceSynchronize());
      const int launches = n_copies * std::max(1, (20 + n_copies - 1) / n_copies);
      const double us = time_graph(stream, launches, [&](int i) {
        const DeviceWeightView& w = copies[static_cast<size_t>(i % n_copies)];
        if (kind == Kind::kCublasBf16) {
          cublas_gemm_bf16(cublas, w.data, x, y, 1, s.n, s.k);
        } else {
          check(qmodel::kernels::launch_gemv(ActType::kBF16, x, 1, w, nullptr, y, stream), "launch_gemv");
        }
      });
      const double gbs = static_cast<double>(bytes) / (us * 1e-6) / 1e9;
      std::printf("| %lld x %lld | %s | %s | %.2f | %.0f | %.1f |\n", static_cast<long long>(s.n),
                  static_cast<long long>(s.k), s.what, kind_name(kind), us, gbs, 100.0 * gbs / read_gbs);
      std::fflush(stdout);
      arena.release();
    }
  }

  // ---- decode GEMV, m = 1, fp32 activations ----
  std::printf("\n## GEMV (m = 1, fp32 activations)\n\n| shape n x k | layer | weights | time us | GB/s | %% of read BW |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const Shape& s : kShapes) {
    for (Kind kind : {Kind::kNf4, Kind::kInt8, Kind::kBf16}) {
      Arena arena;
      const int64_t bytes = weight_bytes(kind, s.n, s.k);
      const int n_copies = static_cast<int>(std::max<int64_t>(1, (rotate_bytes + bytes - 1) / bytes));
      std::vector<DeviceWeightView> copies;
      for (int c = 0; c < n_copies; ++c) copies.push_back(make_weight(arena, kind, s.n, s.k, d_dyn, 100 + 17 * c));
      auto* x = static_cast<float*>(arena.alloc(4 * s.k));
      void* y = arena.alloc(4 * s.n);
      fill_uniform(x, s.k, -1.0f, 1.0f, 3);
      CHECK(cudaDeviceSynchronize());
      const int launches = n_copies * std::max(1, (20 + n_copies - 1) / n_copies);
      const double us = time_graph(stream, launches, [&](int i) {
        check(qmodel::kernels::launch_gemv(ActType::kF32, x, 1, copies[static_cast<size_t>(i % n_copies)], nullptr, y,
                                           stream),
              "launch_gemv f32");
      });
      const double gbs = static_cast<double>(bytes) / (us * 1e-6) / 1e9;
      std::printf("| %lld x %lld | %s | %s | %.2f | %.0f | %.1f |\n", static_cast<long long>(s.n),
                  static_cast<long long>(s.k), s.what, kind_name(kind), us, gbs, 100.0 * gbs / read_gbs);
      std::fflush(stdout);
      arena.release();
    }
  }

  // ---- decode GEMV, m = 1: weights sharing x in one launch_gemv_multi vs separate launch_gemv ----
  std::printf("\n## GEMV batches (m = 1, bf16): launch_gemv_multi vs separate launch_gemv\n\n");
  std::printf("| layers | weights | separate us | multi us | speed-up |\n|---|---|---|---|---|\n");
  struct Batch {
    const char* what;
    std::vector<Shape> parts;
  };
  const Batch batches[] = {{"q/k/v", {{4096, 4096, "q"}, {1024, 4096, "k"}, {1024, 4096, "v"}}},
                           {"gate/up", {{14336, 4096, "gate"}, {14336, 4096, "up"}}}};
  for (const Batch& b : batches) {
    for (Kind kind : {Kind::kNf4, Kind::kNf4Dq, Kind::kInt8, Kind::kBf16}) {
      Arena arena;
      int64_t bytes = 0;
      for (const Shape& s : b.parts) bytes += weight_bytes(kind, s.n, s.k);
      const int n_copies = static_cast<int>(std::max<int64_t>(1, (rotate_bytes + bytes - 1) / bytes));
      std::vector<std::vector<DeviceWeightView>> copies(static_cast<size_t>(n_copies));
      std::vector<void*> ys;
      for (int c = 0; c < n_copies; ++c) {
        for (const Shape& s : b.parts) {
          copies[static_cast<size_t>(c)].push_back(make_weight(arena, kind, s.n, s.k, d_dyn, 300 + 17 * c));
        }
      }
      for (const Shape& s : b.parts) ys.push_back(arena.alloc(2 * s.n));
      void* x = arena.alloc(2 * b.parts[0].k);
      fill_bf16(x, b.parts[0].k, 3);
      CHECK(cudaDeviceSynchronize());
      const int launches = n_copies * std::max(1, (20 + n_copies - 1) / n_copies);
      const double us_separate = time_graph(stream, launches, [&](int i) {
        const auto& ws = copies[static_cast<size_t>(i % n_copies)];
        for (size_t j = 0; j < ws.size(); ++j) {
          check(qmodel::kernels::launch_gemv(ActType::kBF16, x, 1, ws[j], nullptr, ys[j], stream), "launch_gemv");
        }
      });
      const double us_multi = time_graph(stream, launches, [&](int i) {
        const auto& ws = copies[static_cast<size_t>(i % n_copies)];
        check(qmodel::kernels::launch_gemv_multi(ActType::kBF16, x, 1, ws.data(), nullptr, ys.data(),
                                                 static_cast<int>(ws.size()), stream),
              "launch_gemv_multi");
      });
      std::printf("| %s | %s | %.2f | %.2f | %.2fx |\n", b.what, kind_name(kind), us_separate, us_multi,
                  us_separate / us_multi);
      std::fflush(stdout);
      arena.release();
    }
  }

  // ---- prefill GEMM, m = 512 ----
  std::printf("\n## Prefill GEMM (m = %lld, bf16 activations; quantized = dequantize into scratch + cuBLASLt)\n\n",
              static_cast<long long>(kPrefillTokens));
  std::printf("| shape n x k | layer | weights | time us | TFLOP/s | %% of cuBLAS bf16 |\n|---|---|---|---|---|---|\n");
  const Kind gemm_kinds[] = {Kind::kCublasBf16, Kind::kBf16, Kind::kNf4, Kind::kNf4Dq, Kind::kFp4, Kind::kInt8};
  for (const Shape& s : kShapes) {
    if (s.n > 16384) continue;  // lm_head runs on the last token only
    double cublas_us = 0.0;
    for (Kind kind : gemm_kinds) {
      Arena arena;
      const DeviceWeightView w = make_weight(arena, kind, s.n, s.k, d_dyn, 500);
      void* x = arena.alloc(2 * kPrefillTokens * s.k);
      void* y = arena.alloc(2 * kPrefillTokens * s.n);
      const int64_t scratch_bytes = qmodel::kernels::gemm_scratch_bytes(w, ActType::kBF16);
      void* scratch = scratch_bytes > 0 ? arena.alloc(scratch_bytes) : nullptr;
      fill_bf16(x, kPrefillTokens * s.k, 4);
      CHECK(cudaDeviceSynchronize());
      const double us = time_graph(stream, 10, [&](int) {
        if (kind == Kind::kCublasBf16) {
          cublas_gemm_bf16(cublas, w.data, x, y, kPrefillTokens, s.n, s.k);
        } else {
          check(qmodel::kernels::launch_gemm(*gemm_ctx, ActType::kBF16, x, kPrefillTokens, w, nullptr, y, scratch,
                                             scratch_bytes, stream),
                "launch_gemm");
        }
      });
      if (kind == Kind::kCublasBf16) cublas_us = us;
      const double tflops = 2.0 * kPrefillTokens * s.n * s.k / (us * 1e-6) / 1e12;
      std::printf("| %lld x %lld | %s | %s | %.1f | %.1f | %.1f |\n", static_cast<long long>(s.n),
                  static_cast<long long>(s.k), s.what, kind_name(kind), us, tflops, 100.0 * cublas_us / us);
      std::fflush(stdout);
      arena.release();
    }
  }
  // ---- prefill GEMM, m = 512, fp32 activations (true fp32: no TF32) ----
  std::printf("\n## Prefill GEMM (m = %lld, fp32 activations, W dequantized to fp32)\n\n",
              static_cast<long long>(kPrefillTokens));
  std::printf("| shape n x k | layer | weights | time us | TFLOP/s |\n|---|---|---|---|---|\n");
  for (const Shape& s : kShapes) {
    if (s.n > 16384) continue;
    for (Kind kind : {Kind::kNf4, Kind::kBf16}) {
      Arena arena;
      const DeviceWeightView w = make_weight(arena, kind, s.n, s.k, d_dyn, 500);
      auto* x = static_cast<float*>(arena.alloc(4 * kPrefillTokens * s.k));
      void* y = arena.alloc(4 * kPrefillTokens * s.n);
      const int64_t scratch_bytes = qmodel::kernels::gemm_scratch_bytes(w, ActType::kF32);
      void* scratch = scratch_bytes > 0 ? arena.alloc(scratch_bytes) : nullptr;
      fill_uniform(x, kPrefillTokens * s.k, -1.0f, 1.0f, 4);
      CHECK(cudaDeviceSynchronize());
      const double us = time_graph(stream, 10, [&](int) {
        check(qmodel::kernels::launch_gemm(*gemm_ctx, ActType::kF32, x, kPrefillTokens, w, nullptr, y, scratch,
                                           scratch_bytes, stream),
              "launch_gemm f32");
      });
      const double tflops = 2.0 * kPrefillTokens * s.n * s.k / (us * 1e-6) / 1e12;
      std::printf("| %lld x %lld | %s | %s | %.1f | %.1f |\n", static_cast<long long>(s.n),
                  static_cast<long long>(s.k), s.what, kind_name(kind), us, tflops);
      std::fflush(stdout);
      arena.release();
    }
  }
  CHECK(cublasDestroy(cublas));
  CHECK(cudaStreamDestroy(stream));
  return 0;
}
