// cuda_runtime.h for the CUDA emulator (kernels/emulation/README.md): the host API
// (cuda_runtime_api.h), the device code API (cuda_emu/device.h), kernel launches
// (cuda_emu/launch.h) and the toolkit's C++ template overloads.
#pragma once

#include "cuda_emu/device.h"
#include "cuda_emu/launch.h"
#include "cuda_runtime_api.h"

namespace cuda_emu::detail {
// cudaMemcpyToSymbol / FromSymbol: `symbol` is a __device__ / __constant__ variable of `size` bytes.
cudaError_t memcpy_symbol(void* symbol, size_t size, void* other, size_t count, size_t offset, cudaMemcpyKind kind,
                          bool to_symbol);
}  // namespace cuda_emu::detail

template <typename T>
inline cudaError_t cudaMalloc(T** dev_ptr, size_t size) {
  return ::cudaMalloc(reinterpret_cast<void**>(dev_ptr), size);
}
template <typename T>
inline cudaError_t cudaMallocHost(T** ptr, size_t size) {
  return ::cudaMallocHost(reinterpret_cast<void**>(ptr), size);
}
template <typename T>
inline cudaError_t cudaHostAlloc(T** ptr, size_t size, unsigned int flags) {
  return ::cudaHostAlloc(reinterpret_cast<void**>(ptr), size, flags);
}
template <typename T>
inline cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}
template <typename T>
inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* num_blocks, T* func, int block_size,
                                                                 size_t dynamic_smem_bytes) {
  return ::cudaOccupancyMaxActiveBlocksPerMultiprocessor(num_blocks, reinterpret_cast<const void*>(func),
                                                         block_size, dynamic_smem_bytes);
}
template <typename T>
inline cudaError_t cudaMemcpyToSymbol(const T& symbol, const void* src, size_t count, size_t offset = 0,
                                      cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
  return ::cuda_emu::detail::memcpy_symbol(const_cast<T*>(&symbol), sizeof(T), const_cast<void*>(src), count,
                                           offset, kind, true);
}
template <typename T>
inline cudaError_t cudaMemcpyFromSymbol(void* dst, const T& symbol, size_t count, size_t offset = 0,
                                        cudaMemcpyKind kind = cudaMemcpyDeviceToHost) {
  return ::cuda_emu::detail::memcpy_symbol(const_cast<T*>(&symbol), sizeof(T), dst, count, offset, kind, false);
}
