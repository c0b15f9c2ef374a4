// Controls of the CUDA emulator that have no CUDA counterpart, for tests and CI.
#pragma once

#include <cstddef>

#include "cuda_emu/prelude.h"

namespace cuda_emu {

// Device memory capacity in bytes (default 80 GiB, or QMODEL_EMU_DEVICE_MEMORY_BYTES): a cudaMalloc
// past it fails with cudaErrorMemoryAllocation and cudaMemGetInfo reports capacity - used.
// Returns the previous capacity.
size_t set_device_memory_capacity(size_t bytes);

// Bytes of device memory currently allocated (cudaMalloc minus cudaFree).
size_t device_memory_used();

// Whether the emulated device exists (default: yes unless QMODEL_EMU_NO_DEVICE=1). Without it
// cudaGetDeviceCount reports 0 and device calls fail with cudaErrorNoDevice. Returns the previous.
bool set_device_present(bool present);

// OS threads that run blocks of a grid (QMODEL_EMU_THREADS, default hardware_concurrency, >= 1),
// the launching thread included.
int worker_threads();

}  // namespace cuda_emu
