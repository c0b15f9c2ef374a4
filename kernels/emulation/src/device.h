// The emulated device's description (an H100 SXM: sm_90, 132 SMs) and per-kernel attributes.
#pragma once

#include <cstddef>

namespace cuda_emu::detail {

inline constexpr int kSmCount = 132;
inline constexpr size_t kSharedPerBlockDefault = size_t{48} << 10;  // without opt-in
inline constexpr size_t kSharedPerBlockOptin = 232448;              // 227 KiB
inline constexpr size_t kSharedPerSm = 233472;                      // 228 KiB
inline constexpr int kMaxThreadsPerBlock = 1024;
inline constexpr int kMaxThreadsPerSm = 2048;
inline constexpr int kMaxBlocksPerSm = 32;

// The dynamic shared memory a launch of `kernel` may use (cudaFuncAttributeMaxDynamicSharedMemorySize,
// 48 KiB unless raised).
size_t max_dynamic_shared(const void* kernel);

}  // namespace cuda_emu::detail
