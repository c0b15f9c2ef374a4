// Kernels for the CUDA emulator's own tests (test_cuda_emu.cpp): barriers, shuffles, votes,
// deadlocks, atomics, memory intrinsics and launch configurations. Plain CUDA, built through
// qmodel_add_emulated_cuda_sources like kernels/cuda.
#include "emu_test_kernels.h"

#include <cuda_runtime.h>

#include "qmodel/kernels/cuda_launch.cuh"

namespace emu_test {
namespace {

constexpr unsigned kFull = 0xffffffffu;

__global__ void block_sum_kernel(int* out) {
  __shared__ int s[1024];
  const unsigned t = threadIdx.x;
  s[t] = static_cast<int>(blockIdx.x * 1000 + t);
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (t < half) s[t] += s[t + half];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

__global__ void indices_kernel(uint32_t* out, dim3 grid, dim3 block) {
  const uint32_t bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const uint32_t tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const uint32_t g = bid * (blockDim.x * blockDim.y * blockDim.z) + tid;
  const bool dims_ok = blockDim.x == block.x && blockDim.y == block.y && blockDim.z == block.z &&
                       gridDim.x == grid.x && gridDim.y == grid.y && gridDim.z == grid.z;
  out[2 * g] = dims_ok ? (threadIdx.x | threadIdx.y << 10 | threadIdx.z << 20) : 0xffffffffu;
  out[2 * g + 1] = blockIdx.x | blockIdx.y << 10 | blockIdx.z << 20;
}

__global__ void shuffle_kernel(int* out, Shuffle kind, int arg, int width) {
  const int v = 1000 + static_cast<int>(threadIdx.x);
  int r = 0;
  switch (kind) {
    case Shuffle::kIdx: r = __shfl_sync(kFull, v, arg, width); break;
    case Shuffle::kUp: r = __shfl_up_sync(kFull, v, static_cast<unsigned>(arg), width); break;
    case Shuffle::kDown: r = __shfl_down_sync(kFull, v, static_cast<unsigned>(arg), width); break;
    case Shuffle::kXor: r = __shfl_xor_sync(kFull, v, arg, width); break;
  }
  out[threadIdx.x] = r;
}

__global__ void votes_kernel(uint32_t* out, uint32_t* out2) {
  const unsigned t = threadIdx.x, lane = t % 32;
  out[4 * t] = __ballot_sync(kFull, lane % 3 == 0);
  out[4 * t + 1] = static_cast<uint32_t>(__any_sync(kFull, lane == 5));
  out[4 * t + 2] = static_cast<uint32_t>(__all_sync(kFull, lane < 32));
  out[4 * t + 3] = __reduce_add_sync(kFull, lane);
  const uint32_t match = __match_any_sync(kFull, lane / 4);
  const int count = __syncthreads_count(t % 2 == 0);
  const int all = __syncthreads_and(t % 2 == 0);
  const int any = __syncthreads_or(t % 2 == 0);
  out2[t] = match ^ (static_cast<uint32_t>(count) << 8) ^ (static_cast<uint32_t>(all) << 30) ^
            (static_cast<uint32_t>(any) << 31);
}

__global__ void exited_lanes_kernel(int* out, int live_lanes) {
  const int t = static_cast<int>(threadIdx.x);
  if (t % 32 >= live_lanes) return;
  out[t] = __shfl_xor_sync(kFull, t, 1);
}

__global__ void exited_threads_kernel(int* out) {
  __shared__ int s[1024];
  const int t = static_cast<int>(threadIdx.x);
  if (t % 2 == 1) return;
  s[t] = t;
  __syncthreads();
  const int partner = (t + 2) % static_cast<int>(blockDim.x);
  __syncthreads();
  out[t] = s[t] + (s[partner] - partner);
}

// One lane waits in __syncthreads for the rest of the block while the rest of its warp waits for it
// in a full-warp shuffle: a deadlock on the GPU (or undefined behaviour), an error here.
__global__ void deadlock_kernel(int mode) {
  const unsigned t = threadIdx.x;
  const unsigned odd_one = mode == 0 ? 31u : 32u + 3u;  // warp 0 lane 31, or warp 1 lane 3
  const unsigned warp = t / 32;
  if (t == odd_one) {
    __syncthreads();
  } else if (warp == odd_one / 32) {
    (void)__shfl_xor_sync(kFull, 1, 1);
  } else {
    __syncthreads();
  }
}

__global__ void mismatched_kernel() {
  if (threadIdx.x == 0) {
    (void)__shfl_sync(kFull, 1, 0);
  } else {
    (void)__ballot_sync(kFull, 1);
  }
}

__global__ void atomics_kernel(unsigned long long* counter, float* fsum, int* imax, int* imin, unsigned* cas) {
  const int gid = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  atomicAdd(counter, 1ull);
  atomicAdd(fsum, 1.0f);
  atomicMax(imax, gid);
  atomicMin(imin, gid);
  unsigned old = *cas, assumed;
  do {
    assumed = old;
    old = atomicCAS(cas, assumed, assumed + 1);
  } while (old != assumed);
}

__global__ void ldg_kernel(const uint4* p, uint4* out) { out[0] = __ldg(p); }

__global__ void add_kernel(float* y, const float* x, float a, int n) {
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < n;
       i += static_cast<int>(gridDim.x * blockDim.x)) {
    y[i] = x[i] + a;
  }
}

__global__ void trap_kernel() {
  if (threadIdx.x == 7) __trap();
}

__global__ void dynamic_shared_kernel(int* out, unsigned bytes) {
#if defined(QMODEL_CUDA_EMULATION)
  auto* buf = static_cast<unsigned char*>(cuda_emu::dynamic_shared());
#else
  extern __shared__ unsigned char buf[];
#endif
  if (threadIdx.x == 0) {
    int poisoned = 0;
    for (unsigned i = 0; i < bytes; ++i) poisoned += buf[i] == 0xff ? 1 : 0;
    out[0] = poisoned;
    buf[0] = 42;
  }
  __syncthreads();
  if (threadIdx.x == 1) out[1] = buf[0] == 42 ? 1 : 0;
}

__constant__ float c_table[4];

__global__ void constant_kernel(float* out) {
  if (threadIdx.x < 4) out[threadIdx.x] = c_table[threadIdx.x] * 2.0f;
}

__global__ void empty_kernel() {}

}  // namespace

cudaError_t block_sum(int* out, int n_blocks, int block_threads, cudaStream_t stream) {
  QMODEL_LAUNCH(n_blocks, block_threads, 0, stream, block_sum_kernel)(out);
  return cudaGetLastError();
}

cudaError_t indices(uint32_t* out, dim3 grid, dim3 block) {
  QMODEL_LAUNCH(grid, block, 0, nullptr, indices_kernel)(out, grid, block);
  return cudaGetLastError();
}

cudaError_t shuffle(int* out, int threads, Shuffle kind, int arg, int width) {
  QMODEL_LAUNCH(1, threads, 0, nullptr, shuffle_kernel)(out, kind, arg, width);
  return cudaGetLastError();
}

cudaError_t votes(uint32_t* out, uint32_t* out2, int threads) {
  QMODEL_LAUNCH(1, threads, 0, nullptr, votes_kernel)(out, out2);
  return cudaGetLastError();
}

cudaError_t shuffle_with_exited_lanes(int* out, int threads, int live_lanes) {
  QMODEL_LAUNCH(1, threads, 0, nullptr, exited_lanes_kernel)(out, live_lanes);
  return cudaGetLastError();
}

cudaError_t barrier_with_exited_threads(int* out, int threads) {
  QMODEL_LAUNCH(1, threads, 0, nullptr, exited_threads_kernel)(out);
  return cudaGetLastError();
}

cudaError_t deadlock(int mode) {
  QMODEL_LAUNCH(2, 96, 0, nullptr, deadlock_kernel)(mode);
  return cudaGetLastError();
}

cudaError_t mismatched_collectives() {
  QMODEL_LAUNCH(1, 32, 0, nullptr, mismatched_kernel)();
  return cudaGetLastError();
}

cudaError_t atomics(unsigned long long* counter, float* fsum, int* imax, int* imin, unsigned* cas, int n_blocks) {
  QMODEL_LAUNCH(n_blocks, 256, 0, nullptr, atomics_kernel)(counter, fsum, imax, imin, cas);
  return cudaGetLastError();
}

cudaError_t ldg_u4(const void* p, uint4* out) {
  QMODEL_LAUNCH(1, 1, 0, nullptr, ldg_kernel)(static_cast<const uint4*>(p), out);
  return cudaGetLastError();
}

cudaError_t add(float* y, const float* x, float a, int n, cudaStream_t stream) {
  QMODEL_LAUNCH(4, 64, 0, stream, add_kernel)(y, x, a, n);
  return cudaGetLastError();
}

cudaError_t trap() {
  QMODEL_LAUNCH(1, 32, 0, nullptr, trap_kernel)();
  return cudaGetLastError();
}

cudaError_t dynamic_shared(int* out, size_t bytes, bool opt_in) {
  if (opt_in) {
    const cudaError_t e = cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(bytes));
    if (e != cudaSuccess) return cudaGetLastError();
  }
  QMODEL_LAUNCH(1, 64, bytes, nullptr, dynamic_shared_kernel)(out, static_cast<unsigned>(bytes));
  return cudaGetLastError();
}

cudaError_t constant_table(const float* values, float* out) {
  if (cudaMemcpyToSymbol(c_table, values, 4 * sizeof(float)) != cudaSuccess) return cudaGetLastError();
  QMODEL_LAUNCH(1, 32, 0, nullptr, constant_kernel)(out);
  return cudaGetLastError();
}

cudaError_t launch_with_block(dim3 grid, dim3 block) {
  QMODEL_LAUNCH(grid, block, 0, nullptr, empty_kernel)();
  return cudaGetLastError();
}

}  // namespace emu_test
