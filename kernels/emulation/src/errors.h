// Error plumbing shared by the emulator's API functions: the per-thread last error, faults of
// asynchronous work (kernels, graph nodes) and whether the emulated device exists.
#pragma once

#include <string>

#include "cuda_runtime_api.h"

namespace cuda_emu::detail {

// A failed operation: the CUDA error it reports and what happened.
struct Fault {
  cudaError_t code = cudaSuccess;
  std::string message;
  bool ok() const { return code == cudaSuccess; }
};

// Records `error` as this host thread's last error (success leaves it alone) and returns it.
cudaError_t set_error(cudaError_t error);

// A fault of asynchronous work: printed to stderr, returned by this thread's next
// cudaGetLastError (as with CUDA_LAUNCH_BLOCKING=1) and by the next synchronising call of any
// thread (cudaDeviceSynchronize, cudaStreamSynchronize, cudaEventSynchronize, cudaMemcpy). Unlike
// the GPU's, these faults are not sticky: once reported by both, the emulated device works again
// (the synchronising call returns it without recording it as its own last error a second time).
void report_fault(const Fault& fault);

// The fault pending for the next synchronising call (and clears it), or cudaSuccess.
cudaError_t take_pending_fault();

// Whether the emulated device exists (cuda_emu::set_device_present, QMODEL_EMU_NO_DEVICE).
bool device_present();

// "cuda_emu: <message>" on stderr.
void print_message(const std::string& message);

}  // namespace cuda_emu::detail

// Device calls fail with cudaErrorNoDevice while the emulated device is switched off.
#define CUDA_EMU_REQUIRE_DEVICE() \
  if (!::cuda_emu::detail::device_present()) return ::cuda_emu::detail::set_error(cudaErrorNoDevice)
