#include "stream.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

struct Capture;

struct cuda_emu_stream {
  unsigned flags = cudaStreamDefault;
  bool legacy = false;
  std::shared_ptr<Capture> capture;  // set while the stream takes part in a capture
  uint64_t capture_ops = 0;          // operations it recorded in that capture
  uint64_t joined_ops = 0;           // of those, how many another captured stream waited for
};

// One capture sequence: begun on `origin`, joined by the streams that waited on its events.
struct Capture {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id thread;
  cuda_emu_stream* origin = nullptr;
  std::vector<std::shared_ptr<const cuda_emu_graph_node>> nodes;
  std::vector<cuda_emu_stream*> members;
  bool invalidated = false;
};

struct cuda_emu_event {
  unsigned flags = cudaEventDefault;
  bool recorded = false;  // recorded outside a capture (has a time)
  std::chrono::steady_clock::time_point time;
  std::shared_ptr<Capture> capture;  // recorded inside this capture
  cuda_emu_stream* stream = nullptr;
  uint64_t stream_ops = 0;  // the recording stream's operation count at the record
};

struct cuda_emu_graph {
  std::vector<std::shared_ptr<const cuda_emu_graph_node>> nodes;
};
struct cuda_emu_graph_exec {
  std::vector<std::shared_ptr<const cuda_emu_graph_node>> nodes;
};

namespace cuda_emu::detail {
namespace {

using Nodes = std::vector<std::shared_ptr<const Op>>;

struct State {
  std::mutex mu;
  cuda_emu_stream legacy;
  std::unordered_set<cuda_emu_stream*> streams;
  std::unordered_set<cuda_emu_event*> events;
  std::unordered_set<cuda_emu_graph*> graphs;
  std::unordered_set<cuda_emu_graph_exec*> execs;
  std::vector<Capture*> captures;  // active
  State() { legacy.legacy = true; }
};

State& state() {
  static State* s = new State;  // never destroyed: handles may be released from static destructors
  return *s;
}

std::recursive_mutex& exec_mutex() {
  static std::recursive_mutex* m = new std::recursive_mutex;
  return *m;
}

thread_local cudaStreamCaptureMode t_capture_mode = cudaStreamCaptureModeGlobal;

cuda_emu_stream& per_thread_stream() {
  static thread_local cuda_emu_stream s;
  return s;
}

// The stream object behind a handle, or null for an unknown handle. Caller holds state().mu.
cuda_emu_stream* resolve_locked(State& st, cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy) return &st.legacy;
  if (s == cudaStreamPerThread) return &per_thread_stream();
  return st.streams.count(s) != 0 ? s : nullptr;
}

void end_capture_locked(State& st, const std::shared_ptr<Capture>& c) {
  for (cuda_emu_stream* m : c->members) m->capture.reset();
  st.captures.erase(std::remove(st.captures.begin(), st.captures.end(), c.get()), st.captures.end());
}

bool blocking(const cuda_emu_stream* s) { return !s->legacy && (s->flags & cudaStreamNonBlocking) == 0; }

cudaError_t legacy_conflict_locked(State& st) {
  bool hit = false;
  for (Capture* c : st.captures) {
    for (cuda_emu_stream* m : c->members) {
      if (blocking(m)) {
        c->invalidated = true;
        hit = true;
        break;
      }
    }
  }
  return hit ? cudaErrorStreamCaptureImplicit : cudaSuccess;
}

}  // namespace

Fault run_exclusive(const Op& op) {
  std::lock_guard<std::recursive_mutex> lock(exec_mutex());
  return op.run();
}

void wait_for_device_idle() { std::lock_guard<std::recursive_mutex> lock(exec_mutex()); }

cudaError_t enqueue(cudaStream_t stream, std::shared_ptr<const Op> op) {
  State& st = state();
  {
    std::lock_guard<std::mutex> lock(st.mu);
    cuda_emu_stream* s = resolve_locked(st, stream);
    if (s == nullptr) return cudaErrorInvalidResourceHandle;
    if (s->capture) {
      if (s->capture->invalidated) return cudaErrorStreamCaptureInvalidated;
      s->capture->nodes.push_back(std::move(op));
      ++s->capture_ops;
      return cudaSuccess;
    }
    if (s->legacy) {
      if (const cudaError_t e = legacy_conflict_locked(st); e != cudaSuccess) return e;
    }
  }
  const Fault f = run_exclusive(*op);
  if (!f.ok()) report_fault(f);
  return cudaSuccess;
}

void invalidate_capture_of(cudaStream_t stream) {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (cuda_emu_stream* s = resolve_locked(st, stream); s != nullptr && s->capture) s->capture->invalidated = true;
}

cudaError_t prohibit_unsafe_call() {
  if (t_capture_mode == cudaStreamCaptureModeRelaxed) return cudaSuccess;
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  const std::thread::id me = std::this_thread::get_id();
  bool hit = false;
  for (Capture* c : st.captures) {
    const bool mine = c->thread == me && c->mode != cudaStreamCaptureModeRelaxed;
    const bool global_other =
        t_capture_mode == cudaStreamCaptureModeGlobal && c->thread != me && c->mode == cudaStreamCaptureModeGlobal;
    if (mine || global_other) {
      c->invalidated = true;
      hit = true;
    }
  }
  return hit ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}

cudaError_t check_legacy_stream_use() {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  return legacy_conflict_locked(st);
}

}  // namespace cuda_emu::detail

using cuda_emu::detail::Fault;
using cuda_emu::detail::set_error;
using cuda_emu::detail::state;

// ---- streams ------------------------------------------------------------------------------------

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (stream == nullptr || (flags & ~static_cast<unsigned>(cudaStreamNonBlocking)) != 0) {
    return set_error(cudaErrorInvalidValue);
  }
  auto* s = new cuda_emu_stream;
  s->flags = flags;
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  st.streams.insert(s);
  *stream = s;
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.streams.count(stream) == 0) return set_error(cudaErrorInvalidResourceHandle);
  // The emulator refuses to destroy a stream inside a capture (CUDA would leave the capture in an
  // unusable state): end the capture first.
  if (stream->capture) return set_error(cudaErrorIllegalState);
  st.streams.erase(stream);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  CUDA_EMU_REQUIRE_DEVICE();
  {
    auto& st = state();
    std::lock_guard<std::mutex> lock(st.mu);
    cuda_emu_stream* s = cuda_emu::detail::resolve_locked(st, stream);
    if (s == nullptr) return set_error(cudaErrorInvalidResourceHandle);
    if (s->capture) {
      s->capture->invalidated = true;
      return set_error(cudaErrorStreamCaptureUnsupported);
    }
    if (s->legacy) {
      if (const cudaError_t e = cuda_emu::detail::legacy_conflict_locked(st); e != cudaSuccess) return set_error(e);
    }
  }
  cuda_emu::detail::wait_for_device_idle();
  return cuda_emu::detail::take_pending_fault();  // recorded as last error when it happened
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
  CUDA_EMU_REQUIRE_DEVICE();
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  cuda_emu_stream* s = cuda_emu::detail::resolve_locked(st, stream);
  if (s == nullptr) return set_error(cudaErrorInvalidResourceHandle);
  if (s->capture) {
    s->capture->invalidated = true;
    return set_error(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;  // all work completed when it was enqueued
}

cudaError_t cudaDeviceSynchronize() {
  CUDA_EMU_REQUIRE_DEVICE();
  if (const cudaError_t e = cuda_emu::detail::prohibit_unsafe_call(); e != cudaSuccess) return set_error(e);
  cuda_emu::detail::wait_for_device_idle();
  return cuda_emu::detail::take_pending_fault();  // recorded as last error when it happened
}

cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* user_data) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (fn == nullptr) return set_error(cudaErrorInvalidValue);
  auto op = std::make_shared<cuda_emu::detail::Op>();
  op->type = cudaGraphNodeTypeHost;
  op->run = [fn, user_data] {
    fn(user_data);
    return Fault{};
  };
  return set_error(cuda_emu::detail::enqueue(stream, std::move(op)));
}

// ---- events -------------------------------------------------------------------------------------

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (event == nullptr || (flags & ~0x7u) != 0) return set_error(cudaErrorInvalidValue);
  auto* e = new cuda_emu_event;
  e->flags = flags;
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  st.events.insert(e);
  *event = e;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.events.erase(event) == 0) return set_error(cudaErrorInvalidResourceHandle);
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  CUDA_EMU_REQUIRE_DEVICE();
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.events.count(event) == 0) return set_error(cudaErrorInvalidResourceHandle);
  cuda_emu_stream* s = cuda_emu::detail::resolve_locked(st, stream);
  if (s == nullptr) return set_error(cudaErrorInvalidResourceHandle);
  if (s->capture) {
    if (s->capture->invalidated) return set_error(cudaErrorStreamCaptureInvalidated);
    // Inside a capture an event only marks a point of the stream for cudaStreamWaitEvent.
    event->capture = s->capture;
    event->stream = s;
    event->stream_ops = s->capture_ops;
    event->recorded = false;
    return cudaSuccess;
  }
  if (s->legacy) {
    if (const cudaError_t e = cuda_emu::detail::legacy_conflict_locked(st); e != cudaSuccess) return set_error(e);
  }
  event->capture.reset();
  event->stream = nullptr;
  event->recorded = true;
  event->time = std::chrono::steady_clock::now();
  return cudaSuccess;
}

namespace {
bool captured_and_active(const cuda_emu_event* e) {
  auto& caps = state().captures;
  return e->capture && std::find(caps.begin(), caps.end(), e->capture.get()) != caps.end();
}
}  // namespace

cudaError_t cudaEventQuery(cudaEvent_t event) {
  CUDA_EMU_REQUIRE_DEVICE();
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.events.count(event) == 0) return set_error(cudaErrorInvalidResourceHandle);
  if (captured_and_active(event)) return set_error(cudaErrorCapturedEvent);
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  CUDA_EMU_REQUIRE_DEVICE();
  {
    auto& st = state();
    std::lock_guard<std::mutex> lock(st.mu);
    if (st.events.count(event) == 0) return set_error(cudaErrorInvalidResourceHandle);
    if (captured_and_active(event)) return set_error(cudaErrorCapturedEvent);
  }
  cuda_emu::detail::wait_for_device_idle();
  return cuda_emu::detail::take_pending_fault();  // recorded as last error when it happened
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (ms == nullptr) return set_error(cudaErrorInvalidValue);
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.events.count(start) == 0 || st.events.count(end) == 0) return set_error(cudaErrorInvalidResourceHandle);
  if (((start->flags | end->flags) & cudaEventDisableTiming) != 0 || !start->recorded || !end->recorded) {
    return set_error(cudaErrorInvalidResourceHandle);
  }
  *ms = std::chrono::duration<float, std::milli>(end->time - start->time).count();
  return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (flags > 1) return set_error(cudaErrorInvalidValue);  // cudaEventWaitDefault / External
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  cuda_emu_stream* s = cuda_emu::detail::resolve_locked(st, stream);
  if (s == nullptr || st.events.count(event) == 0) return set_error(cudaErrorInvalidResourceHandle);
  if (captured_and_active(event)) {
    const std::shared_ptr<Capture> c = event->capture;
    if (s->capture && s->capture != c) {
      s->capture->invalidated = true;
      c->invalidated = true;
      return set_error(cudaErrorStreamCaptureIsolation);
    }
    if (!s->capture) {  // fork: the stream joins the capture
      if (s->legacy) return set_error(cudaErrorStreamCaptureImplicit);
      s->capture = c;
      s->capture_ops = 0;
      s->joined_ops = 0;
      c->members.push_back(s);
    }
    if (event->stream != s) event->stream->joined_ops = std::max(event->stream->joined_ops, event->stream_ops);
    return cudaSuccess;
  }
  if (s->capture) {
    // A capture may depend only on work captured with it.
    s->capture->invalidated = true;
    return set_error(cudaErrorStreamCaptureIsolation);
  }
  return cudaSuccess;  // the recorded work has completed
}

// ---- capture and graphs --------------------------------------------------------------------------------

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
      mode != cudaStreamCaptureModeRelaxed) {
    return set_error(cudaErrorInvalidValue);
  }
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  cuda_emu_stream* s = cuda_emu::detail::resolve_locked(st, stream);
  if (s == nullptr) return set_error(cudaErrorInvalidResourceHandle);
  if (s->legacy) return set_error(cudaErrorStreamCaptureUnsupported);
  if (s->capture) return set_error(cudaErrorIllegalState);
  auto c = std::make_shared<Capture>();
  c->mode = mode;
  c->thread = std::this_thread::get_id();
  c->origin = s;
  c->members.push_back(s);
  s->capture = c;
  s->capture_ops = 0;
  s->joined_ops = 0;
  st.captures.push_back(c.get());
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (graph == nullptr) return set_error(cudaErrorInvalidValue);
  *graph = nullptr;
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  cuda_emu_stream* s = cuda_emu::detail::resolve_locked(st, stream);
  if (s == nullptr) return set_error(cudaErrorInvalidResourceHandle);
  if (!s->capture) return set_error(cudaErrorIllegalState);
  const std::shared_ptr<Capture> c = s->capture;
  if (c->origin != s) return set_error(cudaErrorStreamCaptureUnmatched);
  if (c->mode != cudaStreamCaptureModeRelaxed && c->thread != std::this_thread::get_id()) {
    return set_error(cudaErrorStreamCaptureWrongThread);
  }
  cuda_emu::detail::end_capture_locked(st, c);
  if (c->invalidated) return set_error(cudaErrorStreamCaptureInvalidated);
  for (const cuda_emu_stream* m : c->members) {
    if (m != s && m->capture_ops > m->joined_ops) return set_error(cudaErrorStreamCaptureUnjoined);
  }
  auto* g = new cuda_emu_graph;
  g->nodes = c->nodes;
  st.graphs.insert(g);
  *graph = g;
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (status == nullptr) return set_error(cudaErrorInvalidValue);
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  cuda_emu_stream* s = cuda_emu::detail::resolve_locked(st, stream);
  if (s == nullptr) return set_error(cudaErrorInvalidResourceHandle);
  if (s->legacy) {
    for (Capture* c : st.captures) {
      for (cuda_emu_stream* m : c->members) {
        if (cuda_emu::detail::blocking(m)) return set_error(cudaErrorStreamCaptureImplicit);
      }
    }
  }
  *status = !s->capture ? cudaStreamCaptureStatusNone
                        : (s->capture->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive);
  return cudaSuccess;
}

cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode) {
  if (mode == nullptr || (*mode != cudaStreamCaptureModeGlobal && *mode != cudaStreamCaptureModeThreadLocal &&
                          *mode != cudaStreamCaptureModeRelaxed)) {
    return set_error(cudaErrorInvalidValue);
  }
  std::swap(*mode, cuda_emu::detail::t_capture_mode);
  return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* num_nodes) {
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.graphs.count(graph) == 0 || num_nodes == nullptr) return set_error(cudaErrorInvalidValue);
  const size_t n = graph->nodes.size();
  if (nodes == nullptr) {
    *num_nodes = n;
    return cudaSuccess;
  }
  for (size_t i = 0; i < *num_nodes; ++i) {
    nodes[i] = i < n ? const_cast<cudaGraphNode_t>(graph->nodes[i].get()) : nullptr;
  }
  *num_nodes = std::min(*num_nodes, n);
  return cudaSuccess;
}

cudaError_t cudaGraphNodeGetType(cudaGraphNode_t node, cudaGraphNodeType* type) {
  if (node == nullptr || type == nullptr) return set_error(cudaErrorInvalidValue);
  *type = node->type;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags) {
  CUDA_EMU_REQUIRE_DEVICE();
  if (exec == nullptr || (flags & ~0xfull) != 0) return set_error(cudaErrorInvalidValue);
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.graphs.count(graph) == 0) return set_error(cudaErrorInvalidValue);
  auto* e = new cuda_emu_graph_exec;
  e->nodes = graph->nodes;
  st.execs.insert(e);
  *exec = e;
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  CUDA_EMU_REQUIRE_DEVICE();
  auto op = std::make_shared<cuda_emu::detail::Op>();
  {
    auto& st = state();
    std::lock_guard<std::mutex> lock(st.mu);
    if (st.execs.count(exec) == 0) return set_error(cudaErrorInvalidValue);
    op->type = cudaGraphNodeTypeGraph;
    // The nodes are shared, not copied: the exec may be destroyed while this launch is queued.
    op->run = [nodes = exec->nodes]() {
      for (const auto& node : nodes) {
        Fault f = node->run();
        if (!f.ok()) return f;  // the GPU stops at the first fault too
      }
      return Fault{};
    };
  }
  return set_error(cuda_emu::detail::enqueue(stream, std::move(op)));
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.execs.erase(exec) == 0) return set_error(cudaErrorInvalidValue);
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.graphs.erase(graph) == 0) return set_error(cudaErrorInvalidValue);
  delete graph;
  return cudaSuccess;
}
