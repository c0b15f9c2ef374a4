// cudaMemcpy / cudaMemset and their asynchronous and 2D forms. The synchronous ones are
// synchronising calls (they return a pending fault instead of copying) and "potentially unsafe"
// during stream capture; the asynchronous ones are validated at the call and again when they run
// (a captured copy replays later: its memory may have been freed since).
#include <cstring>
#include <memory>
#include <string>

#include "errors.h"
#include "memory.h"
#include "stream.h"

using cuda_emu::detail::Fault;
using cuda_emu::detail::Op;
using cuda_emu::detail::set_error;

namespace {

// The rectangle [p, p + pitch * (height - 1) + width) touched by a 2D copy.
size_t span_2d(size_t pitch, size_t width, size_t height) { return height == 0 ? 0 : pitch * (height - 1) + width; }

cudaError_t validate_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                        cudaMemcpyKind kind, std::string* why) {
  if (width > dpitch || width > spitch) return cudaErrorInvalidPitchValue;
  if (width == 0 || height == 0) return cudaSuccess;
  // Check both spans with the direction rules (each span checked against its own side).
  if (const cudaError_t e = cuda_emu::detail::validate_copy(dst, src, width, kind, why); e != cudaSuccess) return e;
  if (height == 1) return cudaSuccess;
  const size_t ds = span_2d(dpitch, width, height), ss = span_2d(spitch, width, height);
  if (const cudaError_t e = cuda_emu::detail::validate_span(dst, ds, true, why); e != cudaSuccess) return e;
  return cuda_emu::detail::validate_span(src, ss, false, why);
}

void copy_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height) {
  for (size_t row = 0; row < height; ++row) {
    std::memmove(static_cast<char*>(dst) + row * dpitch, static_cast<const char*>(src) + row * spitch, width);
  }
}

// A copy / set node that re-validates its memory when it runs.
std::shared_ptr<Op> copy_node(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind) {
  auto op = std::make_shared<Op>();
  op->type = cudaGraphNodeTypeMemcpy;
  op->run = [=]() {
    std::string why;
    if (validate_2d(dst, dpitch, src, spitch, width, height, kind, &why) != cudaSuccess) {
      return Fault{cudaErrorIllegalAddress, "memcpy: " + why + " when the copy ran"};
    }
    copy_2d(dst, dpitch, src, spitch, width, height);
    return Fault{};
  };
  return op;
}

cudaError_t fail_validation(cudaError_t e, const char* api, const std::string& why) {
  if (!why.empty()) cuda_emu::detail::print_message(std::string(api) + ": " + why);
  return set_error(e);
}

cudaError_t sync_copy_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind, const char* api) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (const cudaError_t e = cuda_emu::detail::prohibit_unsafe_call(); e != cudaSuccess) return set_error(e);
  std::string why;
  if (const cudaError_t e = validate_2d(dst, dpitch, src, spitch, width, height, kind, &why); e != cudaSuccess) {
    return fail_validation(e, api, why);
  }
  if (const cudaError_t e = cuda_emu::detail::check_legacy_stream_use(); e != cudaSuccess) return set_error(e);
  // A synchronous copy waits for earlier work: its fault is this call's error (already recorded
  // as the launching thread's last error when it happened).
  if (const cudaError_t e = cuda_emu::detail::take_pending_fault(); e != cudaSuccess) return e;
  const Fault f = cuda_emu::detail::run_exclusive(*copy_node(dst, dpitch, src, spitch, width, height, kind));
  if (!f.ok()) cuda_emu::detail::report_fault(f);
  return set_error(f.code);
}

cudaError_t async_copy_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                          cudaMemcpyKind kind, cudaStream_t stream, const char* api) {
  CUDA_EMU_REQUIRE_DEVICE();
  std::string why;
  if (const cudaError_t e = validate_2d(dst, dpitch, src, spitch, width, height, kind, &why); e != cudaSuccess) {
    cuda_emu::detail::invalidate_capture_of(stream);
    return fail_validation(e, api, why);
  }
  return set_error(cuda_emu::detail::enqueue(stream, copy_node(dst, dpitch, src, spitch, width, height, kind)));
}

std::shared_ptr<Op> set_node(void* dst, int value, size_t count) {
  auto op = std::make_shared<Op>();
  op->type = cudaGraphNodeTypeMemset;
  op->run = [=]() {
    std::string why;
    if (cuda_emu::detail::validate_device_write(dst, count, &why) != cudaSuccess) {
      return Fault{cudaErrorIllegalAddress, "memset: " + why + " when the memset ran"};
    }
    std::memset(dst, value & 0xff, count);
    return Fault{};
  };
  return op;
}

}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  return sync_copy_2d(dst, count, src, count, count, 1, kind, "cudaMemcpy");
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind, cudaStream_t stream) {
  return async_copy_2d(dst, count, src, count, count, 1, kind, stream, "cudaMemcpyAsync");
}

cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind) {
  return sync_copy_2d(dst, dpitch, src, spitch, width, height, kind, "cudaMemcpy2D");
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream) {
  return async_copy_2d(dst, dpitch, src, spitch, width, height, kind, stream, "cudaMemcpy2DAsync");
}

cudaError_t cudaMemset(void* dev_ptr, int value, size_t count) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (const cudaError_t e = cuda_emu::detail::prohibit_unsafe_call(); e != cudaSuccess) return set_error(e);
  std::string why;
  if (const cudaError_t e = cuda_emu::detail::validate_device_write(dev_ptr, count, &why); e != cudaSuccess) {
    return fail_validation(e, "cudaMemset", why);
  }
  if (const cudaError_t e = cuda_emu::detail::check_legacy_stream_use(); e != cudaSuccess) return set_error(e);
  const Fault f = cuda_emu::detail::run_exclusive(*set_node(dev_ptr, value, count));
  if (!f.ok()) cuda_emu::detail::report_fault(f);
  return set_error(f.code);
}

cudaError_t cudaMemsetAsync(void* dev_ptr, int value, size_t count, cudaStream_t stream) {
  CUDA_EMU_REQUIRE_DEVICE();
  std::string why;
  if (const cudaError_t e = cuda_emu::detail::validate_device_write(dev_ptr, count, &why); e != cudaSuccess) {
    cuda_emu::detail::invalidate_capture_of(stream);
    return fail_validation(e, "cudaMemsetAsync", why);
  }
  return set_error(cuda_emu::detail::enqueue(stream, set_node(dev_ptr, value, count)));
}

namespace cuda_emu::detail {

cudaError_t memcpy_symbol(void* symbol, size_t size, void* other, size_t count, size_t offset, cudaMemcpyKind kind,
                          bool to_symbol) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (offset > size || count > size - offset) return set_error(cudaErrorInvalidValue);
  // The symbol is device memory; the other side must match the direction.
  const bool other_is_device = kind == cudaMemcpyDeviceToDevice;
  if (to_symbol ? (kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyDefault)
                : (kind != cudaMemcpyDeviceToHost && kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyDefault)) {
    return set_error(cudaErrorInvalidMemcpyDirection);
  }
  MemRange m;
  const bool found = count > 0 && find_range(other, &m) && m.kind == MemKind::kDevice;
  if (kind != cudaMemcpyDefault && count > 0 && found != other_is_device) return set_error(cudaErrorInvalidValue);
  if (const cudaError_t e = prohibit_unsafe_call(); e != cudaSuccess) return set_error(e);
  if (const cudaError_t e = take_pending_fault(); e != cudaSuccess) return e;
  char* sym = static_cast<char*>(symbol) + offset;
  Op op;
  op.type = cudaGraphNodeTypeMemcpy;
  op.run = [=]() {
    if (to_symbol) {
      std::memmove(sym, other, count);
    } else {
      std::memmove(other, sym, count);
    }
    return Fault{};
  };
  (void)run_exclusive(op);
  return cudaSuccess;
}

}  // namespace cuda_emu::detail
