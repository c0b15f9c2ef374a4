// Host entry points of the kernels in emu_test_kernels.cu, the CUDA code the emulator's own tests
// (test_cuda_emu.cpp) run. Each launches one kernel and returns cudaGetLastError() after it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace emu_test {

// out[b] = sum of (b * 1000 + t) over the block's threads t, by a shared-memory tree reduction with
// __syncthreads between the levels; block_threads is a power of two.
cudaError_t block_sum(int* out, int n_blocks, int block_threads, cudaStream_t stream = nullptr);

// Every thread t (any 3-D shape) writes {threadIdx, blockIdx} to out[linear global index] as
// (x | y << 10 | z << 20) for the thread and the block indices, plus blockDim / gridDim checks.
cudaError_t indices(uint32_t* out, dim3 grid, dim3 block);

enum class Shuffle { kIdx, kUp, kDown, kXor };
// One block of `threads` threads; thread t holds 1000 + t and writes the shuffled value to out[t].
cudaError_t shuffle(int* out, int threads, Shuffle kind, int arg, int width);

// out[4 * t + ...] = {ballot(lane % 3 == 0), any(lane == 5), all(lane < 32), reduce_add(lane)},
// then out2[t] = match_any(lane / 4) and the __syncthreads_count / and / or of (t % 2 == 0).
cudaError_t votes(uint32_t* out, uint32_t* out2, int threads);

// Lanes >= live_lanes of every warp return first; the others do __shfl_xor_sync(0xffffffff, t, 1).
cudaError_t shuffle_with_exited_lanes(int* out, int threads, int live_lanes);

// Threads with t % 2 == 1 return; the rest pass two __syncthreads and write out[t] = t.
cudaError_t barrier_with_exited_threads(int* out, int threads);

// Deadlocks (2 blocks of 96 threads): one lane (mode 0: warp 0 lane 31; mode 1: warp 1 lane 3)
// waits in __syncthreads while the rest of its warp waits for it in __shfl_xor_sync.
cudaError_t deadlock(int mode);

// Lane 0 of warp 0 calls __shfl_sync with mask 0xffffffff while lanes 1..31 call __ballot_sync.
cudaError_t mismatched_collectives();

// Every thread of n_blocks x 256: atomicAdd(counter, 1), atomicAdd(fsum, 1.0f), atomicMax(imax, gid),
// atomicMin(imin, gid), atomicCAS-based increment of cas.
cudaError_t atomics(unsigned long long* counter, float* fsum, int* imax, int* imin, unsigned* cas, int n_blocks);

// out[0] = __ldg(p) from one thread (p may be misaligned or not device memory).
cudaError_t ldg_u4(const void* p, uint4* out);

// y[i] = x[i] + a for i < n (grid-stride), and a kernel that runs __trap().
cudaError_t add(float* y, const float* x, float a, int n, cudaStream_t stream);
cudaError_t trap();

// Checks the launch's dynamic shared memory: out[0] = bytes that read 0xff before any write,
// out[1] = 1 if a value written by thread 0 is seen by thread 1 after __syncthreads.
// With opt_in the kernel's cudaFuncAttributeMaxDynamicSharedMemorySize is raised to `bytes` first.
cudaError_t dynamic_shared(int* out, size_t bytes, bool opt_in);

// Copies 4 floats into a __constant__ array, then out[i] = table[i] * 2 from a kernel.
cudaError_t constant_table(const float* values, float* out);

// A block of `threads` threads (invalid sizes give the launch error).
cudaError_t launch_with_block(dim3 grid, dim3 block);

}  // namespace emu_test
