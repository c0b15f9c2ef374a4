// Streams, events, stream capture and graphs. The emulated device runs work synchronously and in
// submission order, one operation at a time (a valid schedule of any set of CUDA streams), so a
// stream is an ordering token plus its capture state: work enqueued on a capturing stream is
// recorded as a graph node instead of running; cudaGraphLaunch replays the nodes in order.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "cuda_runtime_api.h"
#include "errors.h"

// One unit of device work: a stream operation when run at once, a graph node when captured.
// `run` executes it (at enqueue time or at every replay) and returns the fault, if any.
struct cuda_emu_graph_node {
  cudaGraphNodeType type = cudaGraphNodeTypeEmpty;
  std::function<cuda_emu::detail::Fault()> run;
};

namespace cuda_emu::detail {

using Op = cuda_emu_graph_node;

// Runs `op` now, or records it when `stream` captures. Returns the API error (an invalid stream, an
// invalidated capture, an implicit dependency of the legacy stream on a capturing one); a fault of
// the work itself is reported through report_fault.
cudaError_t enqueue(cudaStream_t stream, std::shared_ptr<const Op> op);

// Called by a failing API call on `stream`: while it captures, the capture is invalidated (as CUDA
// does for errors during capture).
void invalidate_capture_of(cudaStream_t stream);

// The guard of "potentially unsafe" calls (cudaMalloc, cudaFree, synchronous copies,
// cudaDeviceSynchronize...) during stream capture: cudaErrorStreamCaptureUnsupported, and the
// captures that forbid the call are invalidated, when the calling thread may not make such calls
// (its capture interaction mode, see cudaThreadExchangeStreamCaptureMode); else cudaSuccess.
cudaError_t prohibit_unsafe_call();

// Work on the legacy default stream while a blocking stream captures would make the capture
// depend on it: cudaErrorStreamCaptureImplicit (and those captures are invalidated); else success.
cudaError_t check_legacy_stream_use();

// Runs device work under the emulator's execution lock (one operation at a time).
Fault run_exclusive(const Op& op);

// Waits until no device work runs (work another host thread is running): what the implicit
// synchronisation of cudaFree, cudaDeviceSynchronize, ... amounts to here.
void wait_for_device_idle();

}  // namespace cuda_emu::detail
