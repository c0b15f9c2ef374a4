// The registry of device-accessible memory (cudaMalloc'd device memory, pinned and registered host
// memory) behind the memory API, the copy-direction checks and the access checks of kernels'
// global-memory intrinsics and cuBLASLt operands.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "cuda_runtime_api.h"

namespace cuda_emu::detail {

enum class MemKind : uint8_t { kDevice, kPinnedHost, kRegisteredHost };

struct MemRange {
  uintptr_t lo = 0, hi = 0;
  MemKind kind = MemKind::kDevice;
  unsigned flags = 0;  // cudaHostRegister flags
};

// The registered range containing address p, if any.
bool find_range(const void* p, MemRange* out);

// Whether [p, p + bytes) lies inside one device-accessible range (device, pinned, registered, or
// the program image that holds __device__ / __constant__ variables).
bool device_accessible(const void* p, size_t bytes);

// cudaMemcpy's checks: device-side ranges inside one allocation, the direction matching where the
// pointers live (cudaMemcpyDefault accepts any), no write into read-only registered memory.
// Returns cudaSuccess or the error (with a reason in *why when given).
cudaError_t validate_copy(void* dst, const void* src, size_t count, cudaMemcpyKind kind, std::string* why = nullptr);

// The extent check of one side of a copy: when p lies in a registered range, [p, p + bytes) must
// end inside it, and a written range must not be registered read-only.
cudaError_t validate_span(const void* p, size_t bytes, bool write, std::string* why = nullptr);

// cudaMemset's check: [p, p + count) inside one device-accessible range, writable.
cudaError_t validate_device_write(void* p, size_t count, std::string* why = nullptr);

}  // namespace cuda_emu::detail
