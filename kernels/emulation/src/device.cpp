#include "device.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include "cuda_emu/emulator.h"
#include "errors.h"

using cuda_emu::detail::set_error;

namespace cuda_emu::detail {
namespace {

struct FuncAttributes {
  std::mutex mu;
  std::map<const void*, size_t> max_dynamic_shared;
};
FuncAttributes& func_attributes() {
  static FuncAttributes* a = new FuncAttributes;
  return *a;
}

size_t capacity_bytes() {
  const size_t was = set_device_memory_capacity(0);
  set_device_memory_capacity(was);
  return was;
}

}  // namespace

size_t max_dynamic_shared(const void* kernel) {
  FuncAttributes& a = func_attributes();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.max_dynamic_shared.find(kernel);
  return it != a.max_dynamic_shared.end() ? it->second : kSharedPerBlockDefault;
}

}  // namespace cuda_emu::detail

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return set_error(cudaErrorInvalidValue);
  *count = cuda_emu::detail::device_present() ? 1 : 0;
  return *count == 1 ? cudaSuccess : set_error(cudaErrorNoDevice);
}

cudaError_t cudaSetDevice(int device) {
  CUDA_EMU_REQUIRE_DEVICE();
  return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int* device) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (device == nullptr) return set_error(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (prop == nullptr) return set_error(cudaErrorInvalidValue);
  if (device != 0) return set_error(cudaErrorInvalidDevice);
  namespace d = cuda_emu::detail;
  std::memset(prop, 0, sizeof(*prop));
  std::strncpy(prop->name, "qmodel CUDA emulator (CPU)", sizeof(prop->name) - 1);
  prop->totalGlobalMem = d::capacity_bytes();
  prop->sharedMemPerBlock = d::kSharedPerBlockDefault;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->memPitch = 2147483647;
  prop->maxThreadsPerBlock = d::kMaxThreadsPerBlock;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->clockRate = 1980000;
  prop->totalConstMem = 65536;
  prop->major = 9;
  prop->minor = 0;
  prop->textureAlignment = 512;
  prop->multiProcessorCount = d::kSmCount;
  prop->canMapHostMemory = 1;
  prop->concurrentKernels = 1;
  prop->ECCEnabled = 1;
  prop->asyncEngineCount = 3;
  prop->unifiedAddressing = 1;
  prop->memoryClockRate = 2619000;
  prop->memoryBusWidth = 5120;
  prop->l2CacheSize = 50 << 20;
  prop->persistingL2CacheMaxSize = 30 << 20;
  prop->maxThreadsPerMultiProcessor = d::kMaxThreadsPerSm;
  prop->sharedMemPerMultiprocessor = d::kSharedPerSm;
  prop->regsPerMultiprocessor = 65536;
  prop->managedMemory = 1;
  prop->sharedMemPerBlockOptin = d::kSharedPerBlockOptin;
  prop->reservedSharedMemPerBlock = 1024;
  prop->maxBlocksPerMultiProcessor = d::kMaxBlocksPerSm;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (value == nullptr) return set_error(cudaErrorInvalidValue);
  if (device != 0) return set_error(cudaErrorInvalidDevice);
  cudaDeviceProp p;
  (void)cudaGetDeviceProperties(&p, 0);
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxBlockDimX: *value = p.maxThreadsDim[0]; break;
    case cudaDevAttrMaxBlockDimY: *value = p.maxThreadsDim[1]; break;
    case cudaDevAttrMaxBlockDimZ: *value = p.maxThreadsDim[2]; break;
    case cudaDevAttrMaxGridDimX: *value = p.maxGridSize[0]; break;
    case cudaDevAttrMaxGridDimY: *value = p.maxGridSize[1]; break;
    case cudaDevAttrMaxGridDimZ: *value = p.maxGridSize[2]; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(p.sharedMemPerBlock); break;
    case cudaDevAttrTotalConstantMemory: *value = static_cast<int>(p.totalConstMem); break;
    case cudaDevAttrWarpSize: *value = p.warpSize; break;
    case cudaDevAttrMaxRegistersPerBlock: *value = p.regsPerBlock; break;
    case cudaDevAttrClockRate: *value = p.clockRate; break;
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrIntegrated: *value = p.integrated; break;
    case cudaDevAttrCanMapHostMemory: *value = p.canMapHostMemory; break;
    case cudaDevAttrConcurrentKernels: *value = p.concurrentKernels; break;
    case cudaDevAttrMemoryClockRate: *value = p.memoryClockRate; break;
    case cudaDevAttrGlobalMemoryBusWidth: *value = p.memoryBusWidth; break;
    case cudaDevAttrL2CacheSize: *value = p.l2CacheSize; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = p.maxThreadsPerMultiProcessor; break;
    case cudaDevAttrAsyncEngineCount: *value = p.asyncEngineCount; break;
    case cudaDevAttrUnifiedAddressing: *value = p.unifiedAddressing; break;
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = static_cast<int>(p.sharedMemPerMultiprocessor); break;
    case cudaDevAttrMaxRegistersPerMultiprocessor: *value = p.regsPerMultiprocessor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(p.sharedMemPerBlockOptin); break;
    case cudaDevAttrMaxBlocksPerMultiprocessor: *value = p.maxBlocksPerMultiProcessor; break;
    default: return set_error(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (func == nullptr) return set_error(cudaErrorInvalidDeviceFunction);
  switch (attr) {
    case cudaFuncAttributeMaxDynamicSharedMemorySize: {
      if (value < 0 || static_cast<size_t>(value) > cuda_emu::detail::kSharedPerBlockOptin) {
        return set_error(cudaErrorInvalidValue);
      }
      auto& a = cuda_emu::detail::func_attributes();
      std::lock_guard<std::mutex> lock(a.mu);
      a.max_dynamic_shared[func] = static_cast<size_t>(value);
      return cudaSuccess;
    }
    case cudaFuncAttributePreferredSharedMemoryCarveout:
      return (value >= -1 && value <= 100) ? cudaSuccess : set_error(cudaErrorInvalidValue);
  }
  return set_error(cudaErrorInvalidValue);
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* num_blocks, const void* func, int block_size,
                                                          size_t dynamic_smem_bytes) {
  CUDA_EMU_REQUIRE_DEVICE();
  namespace d = cuda_emu::detail;
  if (num_blocks == nullptr || block_size <= 0 || block_size > d::kMaxThreadsPerBlock) {
    return set_error(cudaErrorInvalidValue);
  }
  if (func == nullptr) return set_error(cudaErrorInvalidDeviceFunction);
  // Threads and shared memory bound it (registers are unknown here: assume they do not).
  const int warps = (block_size + 31) / 32;
  int n = std::min(d::kMaxBlocksPerSm, (d::kMaxThreadsPerSm / 32) / warps);
  const size_t smem = dynamic_smem_bytes + 1024;  // plus the per-block reservation
  n = std::min<int>(n, static_cast<int>(d::kSharedPerSm / smem));
  *num_blocks = std::max(0, n);
  return cudaSuccess;
}
