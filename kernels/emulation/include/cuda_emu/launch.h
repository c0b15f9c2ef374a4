// Kernel launches for the CUDA emulator: QMODEL_LAUNCH(grid, block, shared_bytes, stream, kernel)(args...)
// expands to cuda_emu::make_launcher(...)(args...) here (kernels/include/qmodel/kernels/cuda_launch.cuh).
// The arguments are converted to the kernel's parameter types as a call would convert them and
// copied, like CUDA copies them at the launch (or at capture time, for a captured launch). The
// launch is validated (cudaErrorInvalidConfiguration / cudaErrorInvalidValue without running), then
// run to completion or recorded into the capturing stream's graph; errors go to cudaGetLastError.
#pragma once

#include <climits>
#include <cstddef>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda_emu/prelude.h"
#include "cuda_emu/vector_types.h"
#include "cuda_runtime_api.h"

namespace cuda_emu {
namespace detail {

// One kernel launch's callable: run_thread() runs the kernel body for the current CUDA thread with
// a copy of the launch arguments. Immutable after creation, shared by every thread and replay.
class KernelTask {
 public:
  virtual ~KernelTask() = default;
  virtual void run_thread() const = 0;
};

template <typename... P>
class KernelCall final : public KernelTask {
 public:
  using Fn = void (*)(P...);
  KernelCall(Fn fn, std::tuple<std::decay_t<P>...> args) : fn_(fn), args_(std::move(args)) {}
  void run_thread() const override { std::apply(fn_, args_); }

 private:
  Fn fn_;
  std::tuple<std::decay_t<P>...> args_;
};

struct LaunchConfig {
  dim3 grid;
  dim3 block;
  size_t shared_bytes = 0;
  cudaStream_t stream = nullptr;
  const void* kernel = nullptr;  // for attributes and the kernel's name in messages
};

// Validates, then runs (or records, while the stream captures) the launch. Sets the last error.
cudaError_t submit_kernel(const LaunchConfig& config, std::shared_ptr<const KernelTask> task);

inline dim3 as_dim3(const dim3& d) { return d; }
inline dim3 as_dim3(const uint3& d) { return dim3(d); }
// An integer outside [0, UINT_MAX] would be truncated by CUDA's dim3; the emulator turns it into an
// invalid (0) dimension so the launch fails instead of running the wrong grid.
template <typename I, std::enable_if_t<std::is_integral<I>::value, int> = 0>
inline dim3 as_dim3(I v) {
  if (v < 0 || static_cast<unsigned long long>(v) > UINT_MAX) return dim3(0);
  return dim3(static_cast<unsigned>(v));
}
template <typename I, std::enable_if_t<std::is_integral<I>::value, int> = 0>
inline size_t as_bytes(I v) {
  return v < 0 ? SIZE_MAX : static_cast<size_t>(v);
}

// Copy-initialisation: exactly the implicit conversions of a function call.
template <typename T>
inline T convert_arg(T v) {
  return v;
}

}  // namespace detail

template <typename... P>
class Launcher {
 public:
  Launcher(const detail::LaunchConfig& config, void (*kernel)(P...)) : config_(config), kernel_(kernel) {}

  template <typename... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    static_assert(!(std::is_reference<P>::value || ...), "kernel parameters cannot be references");
    static_assert((0 + ... + sizeof(std::decay_t<P>)) <= 32764, "kernel parameters exceed CUDA's 32764 bytes");
    std::tuple<std::decay_t<P>...> copies(detail::convert_arg<std::decay_t<P>>(std::forward<A>(args))...);
    (void)detail::submit_kernel(config_, std::make_shared<const detail::KernelCall<P...>>(kernel_, std::move(copies)));
  }

 private:
  detail::LaunchConfig config_;
  void (*kernel_)(P...);
};

template <typename G, typename B, typename S, typename... P>
Launcher<P...> make_launcher(const G& grid, const B& block, S shared_bytes, cudaStream_t stream, void (*kernel)(P...)) {
  detail::LaunchConfig config;
  config.grid = detail::as_dim3(grid);
  config.block = detail::as_dim3(block);
  config.shared_bytes = detail::as_bytes(shared_bytes);
  config.stream = stream;
  config.kernel = reinterpret_cast<const void*>(kernel);
  return Launcher<P...>(config, kernel);
}

}  // namespace cuda_emu
