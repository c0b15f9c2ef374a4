#include "memory.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "block_runner.h"
#include "cuda_emu/device_runtime.h"
#include "cuda_emu/emulator.h"
#include "errors.h"
#include "stream.h"

// Bounds of the program image (GNU ld): static data such as __device__ / __constant__ variables.
extern "C" char __executable_start[] __attribute__((weak));
extern "C" char _end[] __attribute__((weak));

namespace cuda_emu::detail {

std::atomic<uint64_t> g_memory_generation{1};
__thread AccessCache tls_access_cache __attribute__((tls_model("initial-exec"))) = {};

namespace {

constexpr size_t kDeviceAlignment = 256;

struct Registry {
  std::shared_mutex mu;
  std::map<uintptr_t, MemRange> ranges;  // by lo
  size_t used = 0;                        // device bytes (rounded to kDeviceAlignment)
  size_t capacity = 0;
};

size_t default_capacity() {
  if (const char* env = std::getenv("QMODEL_EMU_DEVICE_MEMORY_BYTES")) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 10);
    if (end != env && *end == '\0') return static_cast<size_t>(v);
    print_message("ignoring QMODEL_EMU_DEVICE_MEMORY_BYTES (not a byte count)");
  }
  return size_t{80} << 30;
}

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;  // never destroyed: cudaFree may run from static destructors
    reg->capacity = default_capacity();
    return reg;
  }();
  return *r;
}

// Caller holds the registry lock.
const MemRange* find_locked(const Registry& r, uintptr_t a) {
  auto it = r.ranges.upper_bound(a);
  if (it == r.ranges.begin()) return nullptr;
  --it;
  return a < it->second.hi ? &it->second : nullptr;
}

bool overlaps_locked(const Registry& r, uintptr_t lo, uintptr_t hi, MemKind* kind) {
  auto it = r.ranges.lower_bound(lo);
  if (it != r.ranges.begin()) {
    auto prev = std::prev(it);
    if (prev->second.hi > lo) {
      *kind = prev->second.kind;
      return true;
    }
  }
  if (it != r.ranges.end() && it->first < hi) {
    *kind = it->second.kind;
    return true;
  }
  return false;
}

bool in_program_image(uintptr_t a, size_t bytes) {
  if (__executable_start == nullptr || _end == nullptr) return false;
  return a >= reinterpret_cast<uintptr_t>(__executable_start) && a + bytes <= reinterpret_cast<uintptr_t>(_end);
}

std::string hex(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%p", p);
  return buf;
}

// Where `p` lives, for the copy checks: a device allocation, other registered memory, or neither.
struct Where {
  bool found = false;
  MemRange range;
};
Where where(const Registry& r, const void* p) {
  Where w;
  if (const MemRange* m = find_locked(r, reinterpret_cast<uintptr_t>(p))) {
    w.found = true;
    w.range = *m;
  }
  return w;
}

void set_why(std::string* why, const std::string& text) {
  if (why != nullptr) *why = text;
}

}  // namespace

bool find_range(const void* p, MemRange* out) {
  Registry& r = registry();
  std::shared_lock<std::shared_mutex> lock(r.mu);
  const MemRange* m = find_locked(r, reinterpret_cast<uintptr_t>(p));
  if (m == nullptr) return false;
  *out = *m;
  return true;
}

bool device_accessible(const void* p, size_t bytes) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  MemRange m;
  if (find_range(p, &m)) return a + bytes <= m.hi;
  return in_program_image(a, bytes);
}

bool check_access_slow(uintptr_t addr, size_t bytes) {
  Registry& r = registry();
  AccessCache& c = tls_access_cache;
  const uint64_t gen = g_memory_generation.load(std::memory_order_acquire);
  if (c.generation != gen) {
    c = AccessCache{};
    c.generation = gen;
  }
  uintptr_t lo = 0, hi = 0;
  {
    std::shared_lock<std::shared_mutex> lock(r.mu);
    if (const MemRange* m = find_locked(r, addr)) {
      lo = m->lo;
      hi = m->hi;
    }
  }
  if (hi == 0 && in_program_image(addr, bytes)) {
    lo = reinterpret_cast<uintptr_t>(__executable_start);
    hi = reinterpret_cast<uintptr_t>(_end);
  }
  if (hi == 0 || addr + bytes > hi) return false;
  c.lo[c.next] = lo;
  c.hi[c.next] = hi;
  c.next = (c.next + 1) % 4;
  return true;
}

void access_fault(const void* p, size_t bytes, size_t align, const char* op, bool misaligned) {
  if (misaligned) {
    device_fault(cudaErrorMisalignedAddress, std::string(op) + ": misaligned address " + hex(p) + " for a " +
                                                 std::to_string(bytes) + "-byte access (needs " +
                                                 std::to_string(align) + "-byte alignment)");
  }
  device_fault(cudaErrorIllegalAddress, std::string(op) + ": address " + hex(p) + " (" + std::to_string(bytes) +
                                            " bytes) is not in device-accessible memory (cudaMalloc, pinned or "
                                            "registered host memory)");
}

cudaError_t validate_copy(void* dst, const void* src, size_t count, cudaMemcpyKind kind, std::string* why) {
  if (count == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) {
    set_why(why, "null pointer");
    return cudaErrorInvalidValue;
  }
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault) {
    set_why(why, "unknown cudaMemcpyKind");
    return cudaErrorInvalidMemcpyDirection;
  }
  Registry& r = registry();
  std::shared_lock<std::shared_mutex> lock(r.mu);
  const Where d = where(r, dst), s = where(r, src);
  const bool d_dev = d.found && d.range.kind == MemKind::kDevice;
  const bool s_dev = s.found && s.range.kind == MemKind::kDevice;
  // A range that starts inside a registered range must end inside it too (device memory always;
  // host memory is checked by AddressSanitizer when it is pageable).
  if (d.found && reinterpret_cast<uintptr_t>(dst) + count > d.range.hi) {
    set_why(why, "destination " + hex(dst) + " + " + std::to_string(count) + " bytes runs past its allocation");
    return cudaErrorInvalidValue;
  }
  if (s.found && reinterpret_cast<uintptr_t>(src) + count > s.range.hi) {
    set_why(why, "source " + hex(src) + " + " + std::to_string(count) + " bytes runs past its allocation");
    return cudaErrorInvalidValue;
  }
  if (d.found && d.range.kind == MemKind::kRegisteredHost && (d.range.flags & cudaHostRegisterReadOnly) != 0) {
    set_why(why, "destination is registered read-only (cudaHostRegisterReadOnly)");
    return cudaErrorInvalidValue;
  }
  const bool dst_ok = kind == cudaMemcpyDefault || ((kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice) == d_dev);
  const bool src_ok = kind == cudaMemcpyDefault || ((kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice) == s_dev);
  if (!dst_ok || !src_ok) {
    static const char* const kNames[] = {"cudaMemcpyHostToHost", "cudaMemcpyHostToDevice", "cudaMemcpyDeviceToHost",
                                         "cudaMemcpyDeviceToDevice", "cudaMemcpyDefault"};
    set_why(why, std::string(kNames[kind]) + " but the destination is " + (d_dev ? "device" : "host") +
                     " memory and the source is " + (s_dev ? "device" : "host") + " memory");
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

cudaError_t validate_span(const void* p, size_t bytes, bool write, std::string* why) {
  MemRange m;
  if (bytes == 0 || !find_range(p, &m)) return cudaSuccess;
  if (reinterpret_cast<uintptr_t>(p) + bytes > m.hi) {
    set_why(why, hex(p) + " + " + std::to_string(bytes) + " bytes runs past its allocation");
    return cudaErrorInvalidValue;
  }
  if (write && m.kind == MemKind::kRegisteredHost && (m.flags & cudaHostRegisterReadOnly) != 0) {
    set_why(why, "destination is registered read-only (cudaHostRegisterReadOnly)");
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

cudaError_t validate_device_write(void* p, size_t count, std::string* why) {
  if (count == 0) return cudaSuccess;
  MemRange m;
  if (p == nullptr || !find_range(p, &m)) {
    set_why(why, "address " + hex(p) + " is not device memory");
    return cudaErrorInvalidValue;
  }
  if (reinterpret_cast<uintptr_t>(p) + count > m.hi) {
    set_why(why, "address " + hex(p) + " + " + std::to_string(count) + " bytes runs past its allocation");
    return cudaErrorInvalidValue;
  }
  if (m.kind == MemKind::kRegisteredHost && (m.flags & cudaHostRegisterReadOnly) != 0) {
    set_why(why, "memory registered read-only");
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

}  // namespace cuda_emu::detail

namespace cuda_emu {

size_t set_device_memory_capacity(size_t bytes) {
  detail::Registry& r = detail::registry();
  std::unique_lock<std::shared_mutex> lock(r.mu);
  const size_t was = r.capacity;
  r.capacity = bytes;
  return was;
}

size_t device_memory_used() {
  detail::Registry& r = detail::registry();
  std::shared_lock<std::shared_mutex> lock(r.mu);
  return r.used;
}

}  // namespace cuda_emu

using cuda_emu::detail::MemKind;
using cuda_emu::detail::MemRange;
using cuda_emu::detail::registry;
using cuda_emu::detail::set_error;

cudaError_t cudaMalloc(void** dev_ptr, size_t size) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (dev_ptr == nullptr) return set_error(cudaErrorInvalidValue);
  *dev_ptr = nullptr;
  if (const cudaError_t e = cuda_emu::detail::prohibit_unsafe_call(); e != cudaSuccess) return set_error(e);
  if (size == 0) return cudaSuccess;
  auto& r = registry();
  const size_t rounded = (size + cuda_emu::detail::kDeviceAlignment - 1) / cuda_emu::detail::kDeviceAlignment *
                         cuda_emu::detail::kDeviceAlignment;
  {
    std::unique_lock<std::shared_mutex> lock(r.mu);
    if (rounded < size || r.used + rounded > r.capacity || r.used + rounded < r.used) {
      return set_error(cudaErrorMemoryAllocation);
    }
    r.used += rounded;
  }
  void* p = nullptr;
  if (posix_memalign(&p, cuda_emu::detail::kDeviceAlignment, size) != 0) {
    std::unique_lock<std::shared_mutex> lock(r.mu);
    r.used -= rounded;
    return set_error(cudaErrorMemoryAllocation);
  }
  std::memset(p, 0xff, size);  // never-written device memory reads as NaN, as the tests' poison
  std::unique_lock<std::shared_mutex> lock(r.mu);
  const auto lo = reinterpret_cast<uintptr_t>(p);
  r.ranges[lo] = MemRange{lo, lo + size, MemKind::kDevice, 0};
  *dev_ptr = p;
  return cudaSuccess;
}

namespace {
// Removes the range starting exactly at p if it has `kind`; bumps the access-cache generation.
bool unregister(const void* p, MemKind kind, MemRange* out) {
  auto& r = registry();
  std::unique_lock<std::shared_mutex> lock(r.mu);
  auto it = r.ranges.find(reinterpret_cast<uintptr_t>(p));
  if (it == r.ranges.end() || it->second.kind != kind) return false;
  *out = it->second;
  r.ranges.erase(it);
  if (kind == MemKind::kDevice) {
    const size_t size = out->hi - out->lo;
    r.used -= (size + cuda_emu::detail::kDeviceAlignment - 1) / cuda_emu::detail::kDeviceAlignment *
              cuda_emu::detail::kDeviceAlignment;
  }
  cuda_emu::detail::g_memory_generation.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

cudaError_t register_host(void* p, size_t size, MemKind kind, unsigned flags) {
  auto& r = registry();
  std::unique_lock<std::shared_mutex> lock(r.mu);
  const auto lo = reinterpret_cast<uintptr_t>(p);
  MemKind existing;
  if (cuda_emu::detail::overlaps_locked(r, lo, lo + size, &existing)) {
    return existing == MemKind::kDevice ? cudaErrorInvalidValue : cudaErrorHostMemoryAlreadyRegistered;
  }
  r.ranges[lo] = MemRange{lo, lo + size, kind, flags};
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaFree(void* dev_ptr) {
  if (dev_ptr == nullptr) return cudaSuccess;
  if (const cudaError_t e = cuda_emu::detail::prohibit_unsafe_call(); e != cudaSuccess) return set_error(e);
  cuda_emu::detail::wait_for_device_idle();  // cudaFree synchronises: no kernel may still use it
  MemRange m;
  if (!unregister(dev_ptr, MemKind::kDevice, &m)) return set_error(cudaErrorInvalidValue);
  std::free(dev_ptr);
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** ptr, size_t size, unsigned int flags) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (ptr == nullptr || (flags & ~0x7u) != 0) return set_error(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (const cudaError_t e = cuda_emu::detail::prohibit_unsafe_call(); e != cudaSuccess) return set_error(e);
  if (size == 0) return cudaSuccess;
  void* p = nullptr;
  if (posix_memalign(&p, 4096, size) != 0) return set_error(cudaErrorMemoryAllocation);
  if (const cudaError_t e = register_host(p, size, MemKind::kPinnedHost, flags); e != cudaSuccess) {
    std::free(p);
    return set_error(e);
  }
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t size) { return cudaHostAlloc(ptr, size, cudaHostAllocDefault); }

cudaError_t cudaFreeHost(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  if (const cudaError_t e = cuda_emu::detail::prohibit_unsafe_call(); e != cudaSuccess) return set_error(e);
  cuda_emu::detail::wait_for_device_idle();
  MemRange m;
  if (!unregister(ptr, MemKind::kPinnedHost, &m)) return set_error(cudaErrorInvalidValue);
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaHostRegister(void* ptr, size_t size, unsigned int flags) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (ptr == nullptr || size == 0 || (flags & ~0xfu) != 0) return set_error(cudaErrorInvalidValue);
  if (const cudaError_t e = cuda_emu::detail::prohibit_unsafe_call(); e != cudaSuccess) return set_error(e);
  return set_error(register_host(ptr, size, MemKind::kRegisteredHost, flags));
}

cudaError_t cudaHostUnregister(void* ptr) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (ptr == nullptr) return set_error(cudaErrorInvalidValue);
  if (const cudaError_t e = cuda_emu::detail::prohibit_unsafe_call(); e != cudaSuccess) return set_error(e);
  cuda_emu::detail::wait_for_device_idle();
  MemRange m;
  if (!unregister(ptr, MemKind::kRegisteredHost, &m)) return set_error(cudaErrorHostMemoryNotRegistered);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (free_bytes == nullptr || total_bytes == nullptr) return set_error(cudaErrorInvalidValue);
  auto& r = registry();
  std::shared_lock<std::shared_mutex> lock(r.mu);
  *total_bytes = r.capacity;
  *free_bytes = r.capacity > r.used ? r.capacity - r.used : 0;
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attributes, const void* ptr) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (attributes == nullptr) return set_error(cudaErrorInvalidValue);
  MemRange m;
  *attributes = cudaPointerAttributes{cudaMemoryTypeUnregistered, -2, nullptr, nullptr};
  if (!cuda_emu::detail::find_range(ptr, &m)) return cudaSuccess;
  attributes->device = 0;
  attributes->devicePointer = const_cast<void*>(ptr);
  if (m.kind == MemKind::kDevice) {
    attributes->type = cudaMemoryTypeDevice;
  } else {
    attributes->type = cudaMemoryTypeHost;
    attributes->hostPointer = const_cast<void*>(ptr);
  }
  return cudaSuccess;
}
