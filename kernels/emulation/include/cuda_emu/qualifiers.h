// CUDA's declaration qualifiers for g++. One compilation serves host and device code, so the
// execution-space qualifiers vanish; __shared__ becomes thread_local static storage (one block runs
// at a time on each OS thread, and all its CUDA threads are fibers of that OS thread).
// Not provided: __noinline__ (libstdc++ spells __attribute__((__noinline__)), which a macro would
// break; write __attribute__((noinline))), extern __shared__ (use cuda_emu::dynamic_shared()),
// `static __shared__` (write plain __shared__), and __CUDA_ARCH__ / __CUDACC__ stay undefined (test
// QMODEL_CUDA_EMULATION instead).
#pragma once

#include "cuda_emu/prelude.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __grid_constant__
#define __shared__ static thread_local
#define __constant__ static
#define __align__(n) __attribute__((aligned(n)))
