// The emulator's device-side entry points that the inline intrinsics (cuda_emu/device.h) call:
// the executing CUDA thread's indices, block barriers, warp collectives, faults and the
// device-accessibility check behind __ldg. Implemented in kernels/emulation/src.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "cuda_emu/prelude.h"
#include "cuda_emu/vector_types.h"

namespace cuda_emu {

// The launch's dynamic shared memory (shared_bytes of the launch configuration), the emulated
// form of `extern __shared__ T buf[];`: one buffer per block, filled with 0xff bytes at the start
// of each block. Kernels that need it write
//   #if defined(QMODEL_CUDA_EMULATION)
//     float* buf = static_cast<float*>(cuda_emu::dynamic_shared());
//   #else
//     extern __shared__ float buf[];
//   #endif
// Returns nullptr for a launch without dynamic shared memory.
void* dynamic_shared();

namespace detail {

// The CUDA thread a fiber runs (set on every switch; null outside kernels).
struct ThreadCtx {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
  unsigned linear;  // x + y * Dx + z * Dx * Dy
  unsigned lane;    // linear % 32
  unsigned warp;    // linear / 32
};
extern __thread const ThreadCtx* tls_thread __attribute__((tls_model("initial-exec")));

[[noreturn]] void outside_kernel(const char* what);

inline const ThreadCtx& thread_ctx() {
  const ThreadCtx* c = tls_thread;
  if (__builtin_expect(c == nullptr, 0)) outside_kernel("threadIdx / blockIdx / blockDim / gridDim");
  return *c;
}

// Warp-level operations: a barrier over the live lanes named in `mask`, where every lane deposits
// `value`; returns, per kind: kShfl the value of lane src_lane (all-ones bits when that lane did
// not take part), kVote ballot | arrived << 32, kReduce* the reduction over the arrived lanes,
// kMatchAny the mask of lanes with an equal value, kMatchAll the arrived mask or 0.
enum class Collective : uint8_t {
  kSyncWarp,
  kShfl,
  kVote,
  kReduceAddU,
  kReduceMinU,
  kReduceMaxU,
  kReduceMinS,
  kReduceMaxS,
  kReduceAnd,
  kReduceOr,
  kReduceXor,
  kMatchAny,
  kMatchAll,
};
uint64_t warp_collective(Collective kind, unsigned mask, uint64_t value, int src_lane, const char* op);

// __syncthreads and its counting variants: waits for every live thread of the block; returns the
// count / and / or of the predicates (kPlain: 0).
enum class BlockSync : uint8_t { kPlain, kCount, kAnd, kOr };
int block_sync(BlockSync kind, int predicate);

// Lets the other threads of the block run (__nanosleep: spin-waits on a flag another thread of
// the same block sets must not spin forever on cooperative fibers).
void yield_thread();

// Ends the launch with `error` (a cudaError_t) and the message; never returns.
[[noreturn]] void device_fault(int error, const std::string& message);

// Device-accessible memory check for loads and stores through the global-memory intrinsics:
// cudaMalloc'd memory, pinned / registered host memory, and the program image (__device__ and
// __constant__ variables). A per-OS-thread cache of the last ranges hit keeps it to a few compares;
// any cudaFree / unregister bumps g_memory_generation and drops every cache.
struct AccessCache {
  uint64_t generation;
  uintptr_t lo[4];
  uintptr_t hi[4];
  unsigned next;
};
extern __thread AccessCache tls_access_cache __attribute__((tls_model("initial-exec")));
extern std::atomic<uint64_t> g_memory_generation;
bool check_access_slow(uintptr_t addr, size_t bytes);
[[noreturn]] void access_fault(const void* p, size_t bytes, size_t align, const char* op, bool misaligned);

inline void check_global_access(const void* p, size_t bytes, size_t align, const char* op) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (__builtin_expect((a & (align - 1)) != 0, 0)) access_fault(p, bytes, align, op, true);
  const AccessCache& c = tls_access_cache;
  if (c.generation == g_memory_generation.load(std::memory_order_acquire)) {
    for (int i = 0; i < 4; ++i) {
      if (a >= c.lo[i] && a + bytes <= c.hi[i]) return;
    }
  }
  if (!check_access_slow(a, bytes)) access_fault(p, bytes, align, op, false);
}

}  // namespace detail
}  // namespace cuda_emu
