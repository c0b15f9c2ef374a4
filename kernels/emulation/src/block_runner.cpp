#include "block_runner.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <utility>

namespace cuda_emu::detail {

__thread const ThreadCtx* tls_thread __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

// 256 KiB per CUDA thread: room for large per-thread arrays and sanitizer redzones; committed
// lazily by the kernel, so a fiber that never goes deep costs a few pages. 1024 of them per OS
// thread are reserved up front (the most threads a block can have).
constexpr size_t kFiberStackBytes = size_t{256} << 10;
constexpr size_t kMaxFibers = 1024;

thread_local BlockRunner* t_active = nullptr;

// Thrown into the other fibers of a block that is being abandoned (after a fault or deadlock):
// unwinds their kernel frames so that their stacks can run the next block.
struct Cancelled {};

// A fault raised by device code (misaligned __ldg, __trap, a bad warp collective, ...).
struct DeviceFault {
  int code;
  std::string message;
};

// The scheduler's bookkeeping runs once per barrier arrival of every CUDA thread: kept free of
// sanitizer instrumentation (it touches only the emulator's own structures, never kernel memory).
#define CUDA_EMU_HOT __attribute__((no_sanitize("address", "undefined")))

// Baseline x86-64 has no popcnt instruction: __builtin_popcount would be a libgcc call.
inline int popcount32(uint32_t v) {
  v = v - ((v >> 1) & 0x55555555u);
  v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
  return static_cast<int>((((v + (v >> 4)) & 0x0f0f0f0fu) * 0x01010101u) >> 24);
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

}  // namespace

enum class FState : uint8_t { kReady, kRunning, kBlocked, kDone };
enum class WaitOn : uint8_t { kNone, kBlockBarrier, kWarp };

struct BlockRunner::WarpGroup {
  uint32_t mask = 0;
  uint32_t arrived = 0;
  Collective kind = Collective::kSyncWarp;
  const char* op = "";
  int readers = 0;
  uint64_t shared_result = 0;  // lane-independent results (votes, reductions, match_all)
  uint64_t values[32] = {};
};

struct BlockRunner::Fiber {
  Context context{};
  ThreadCtx thread{};
  BlockRunner* runner = nullptr;
  unsigned index = 0;
  FState state = FState::kDone;
  bool started = false;
  WaitOn wait = WaitOn::kNone;
  const char* wait_op = "";
  WarpGroup* group = nullptr;
  unsigned barrier_gen = 0;
};

BlockRunner& BlockRunner::for_this_thread() {
  static thread_local BlockRunner runner;
  return runner;
}

BlockRunner* BlockRunner::active() { return t_active; }

BlockRunner::BlockRunner() {
  init_thread_context(&sched_);
  const char* schedule = std::getenv("QMODEL_EMU_SCHEDULE");
  reverse_ = schedule != nullptr && std::strcmp(schedule, "reverse") == 0;
}

BlockRunner::~BlockRunner() { std::free(dyn_); }

void BlockRunner::ensure_fibers(unsigned n) {
  while (fibers_.size() < n) {
    auto f = std::make_unique<Fiber>();
    f->runner = this;
    f->index = static_cast<unsigned>(fibers_.size());
    if (!arena_) arena_ = std::make_unique<FiberArena>(kMaxFibers, kFiberStackBytes);
    make_context(&f->context, *arena_, f->index, &BlockRunner::fiber_main, f.get());
    fibers_.push_back(f.get());
    fiber_store_.push_back(std::move(f));
  }
  if (ready_ring_.size() < n) ready_ring_.resize(n);
}

void BlockRunner::fiber_main(void* arg) {
  auto* f = static_cast<Fiber*>(arg);
  fiber_entered(&f->context);
  for (;;) f->runner->run_thread(f);  // one CUDA thread per iteration, one block after another
}

void BlockRunner::run_thread(Fiber* f) {
  f->started = true;
  bool caught = true;
  try {
    task_->run_thread();
    caught = false;
  } catch (const Cancelled&) {
  } catch (const DeviceFault& e) {
    record_fault(f, e.code, e.message);
  } catch (const std::exception& e) {
    record_fault(f, cudaErrorLaunchFailure, std::string("a C++ exception escaped the kernel: ") + e.what());
  } catch (...) {
    record_fault(f, cudaErrorLaunchFailure, "a C++ exception escaped the kernel");
  }
  if (caught) asan_set_current_stack(arena_->bottom(), arena_->size());  // see throw_from_fiber
  exit_thread(f);
}

template <typename E>
void BlockRunner::throw_from_fiber(E&& e) {
  asan_set_current_stack(arena_->slot_bottom(current_->index), arena_->slot_size());
  throw std::forward<E>(e);
}

Fault BlockRunner::run_block(const KernelTask& task, const BlockShape& shape, uint3 block_idx) {
  const dim3 b = shape.block;
  const unsigned n = b.x * b.y * b.z;
  ensure_fibers(n);
  task_ = &task;
  shape_ = shape;
  block_idx_ = block_idx;
  n_ = n;
  live_ = n;
  cancelling_ = false;
  fault_ = Fault{};
  bar_arrived_ = 0;
  bar_gen_ = 0;
  bar_slot_[0] = bar_slot_[1] = BarrierSlot{};

  const unsigned n_warps = (n + 31) / 32;
  warps_.resize(n_warps);
  free_groups_.clear();
  for (auto& g : all_groups_) free_groups_.push_back(g.get());
  for (unsigned w = 0; w < n_warps; ++w) {
    const unsigned lanes = std::min(32u, n - 32 * w);
    warps_[w].live = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
    warps_[w].n_open = 0;
  }
  fiber_at_ = fibers_.data();
  ring_ = ready_ring_.data();
  warp_at_ = warps_.data();
  ready_head_ = 0;
  ready_ = 0;
  // Thread indices only change with the launch shape (blocks of one launch share them).
  const bool same_shape = prepared_ && prepared_block_.x == b.x && prepared_block_.y == b.y &&
                          prepared_block_.z == b.z && prepared_grid_.x == shape.grid.x &&
                          prepared_grid_.y == shape.grid.y && prepared_grid_.z == shape.grid.z;
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = *fibers_[i];
    f.state = FState::kDone;
    f.started = false;
    f.wait = WaitOn::kNone;
    f.group = nullptr;
    ThreadCtx& t = f.thread;
    t.block_idx = block_idx;
    if (same_shape) continue;
    t.thread_idx = uint3{i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
    t.block_dim = b;
    t.grid_dim = shape.grid;
    t.linear = i;
    t.lane = i % 32;
    t.warp = i / 32;
  }
  prepared_ = true;
  prepared_block_ = b;
  prepared_grid_ = shape.grid;
  for (unsigned k = 0; k < n; ++k) make_ready(fibers_[reverse_ ? n - 1 - k : k]);
  dyn_size_ = shape.shared_bytes;
  if (dyn_size_ > dyn_capacity_) {
    std::free(dyn_);
    dyn_ = static_cast<unsigned char*>(std::aligned_alloc(256, (dyn_size_ + 255) / 256 * 256));
    if (dyn_ == nullptr) {
      dyn_capacity_ = 0;
      return Fault{cudaErrorMemoryAllocation, "cannot allocate the block's dynamic shared memory"};
    }
    dyn_capacity_ = dyn_size_;
  }
  if (dyn_size_ > 0) std::memset(dyn_, 0xff, dyn_size_);  // uninitialised shared memory reads as NaN

  BlockRunner* const outer = t_active;
  t_active = this;
  // Control comes back here only when no fiber can run: all returned, a deadlock, or a fault.
  resume_from_scheduler(pop_ready());
  while (live_ > 0) {
    if (!cancelling_) {
      fault_ = Fault{cudaErrorLaunchFailure, deadlock_message()};
      cancelling_ = true;
    }
    for (unsigned i = 0; i < n; ++i) {
      Fiber* f = fibers_[i];
      if (f->state == FState::kDone) continue;
      if (!f->started) {
        f->state = FState::kDone;
        --live_;
        continue;
      }
      resume_from_scheduler(f);  // it throws Cancelled at its barrier and comes back here
    }
  }
  t_active = outer;
  task_ = nullptr;
  return fault_;
}

CUDA_EMU_HOT void BlockRunner::make_ready(Fiber* f) {
  f->state = FState::kReady;
  f->wait = WaitOn::kNone;
  unsigned slot = ready_head_ + ready_;
  if (slot >= n_) slot -= n_;
  ring_[slot] = f;
  ++ready_;
}

CUDA_EMU_HOT BlockRunner::Fiber* BlockRunner::pop_ready() {
  if (ready_ == 0 || cancelling_) return nullptr;
  Fiber* f = ring_[ready_head_];
  if (++ready_head_ == n_) ready_head_ = 0;
  --ready_;
  return f;
}

void BlockRunner::resume_from_scheduler(Fiber* f) {
  f->state = FState::kRunning;
  current_ = f;
  tls_thread = &f->thread;
  switch_context(&sched_, &f->context);
  current_ = nullptr;
  tls_thread = nullptr;
}

CUDA_EMU_HOT void BlockRunner::switch_away(Fiber* self) {
  Fiber* next = pop_ready();
  if (next == self) {  // a yield with nobody else to run
    self->state = FState::kRunning;
    return;
  }
  if (next != nullptr) {
    next->state = FState::kRunning;
    current_ = next;
    tls_thread = &next->thread;
    switch_context(&self->context, &next->context);
  } else {
    current_ = nullptr;
    tls_thread = nullptr;
    switch_context(&self->context, &sched_);
  }
  // Resumed: whoever switched here made this fiber current.
}

void BlockRunner::exit_thread(Fiber* f) {
  f->state = FState::kDone;
  f->wait = WaitOn::kNone;
  --live_;
  if (!cancelling_) {
    WarpState& w = warp_at_[f->thread.warp];
    const uint32_t bit = 1u << f->thread.lane;
    w.live &= ~bit;
    // Returned threads leave every barrier: the rest of the warp / block may now be complete.
    for (unsigned i = 0; i < w.n_open;) {
      WarpGroup* g = w.open[i];
      const uint32_t need = g->mask & w.live;
      if ((g->mask & bit) != 0 && (g->arrived & need) == need) {
        complete_group(w, g);  // removes g from open
        continue;
      }
      ++i;
    }
    if (bar_arrived_ > 0 && bar_arrived_ == live_) release_block_barrier();
  }
  switch_away(f);
}

BlockRunner::WarpGroup* BlockRunner::open_group(WarpState& w, unsigned mask, Collective kind, const char* op) {
  WarpGroup* g;
  if (free_groups_.empty()) {
    all_groups_.push_back(std::make_unique<WarpGroup>());
    g = all_groups_.back().get();
  } else {
    g = free_groups_.back();
    free_groups_.pop_back();
  }
  g->mask = mask;
  g->arrived = 0;
  g->kind = kind;
  g->op = op;
  w.open[w.n_open++] = g;
  return g;
}

CUDA_EMU_HOT void BlockRunner::complete_group(WarpState& w, WarpGroup* g) {
  for (unsigned i = 0; i < w.n_open; ++i) {
    if (w.open[i] == g) {
      w.open[i] = w.open[--w.n_open];
      break;
    }
  }
  g->readers = popcount32(g->arrived);
  if (g->kind != Collective::kShfl && g->kind != Collective::kSyncWarp && g->kind != Collective::kMatchAny) {
    compute_shared_result(g);
  }
  Fiber* const* lanes = fiber_at_ + static_cast<size_t>(&w - warp_at_) * 32;
  for (uint32_t m = g->arrived; m != 0;) {
    const int l = reverse_ ? 31 - __builtin_clz(m) : __builtin_ctz(m);
    m &= ~(1u << l);
    Fiber* lf = lanes[l];
    if (lf->state == FState::kBlocked) make_ready(lf);
  }
}

void BlockRunner::release_group(WarpGroup* g) { free_groups_.push_back(g); }

void BlockRunner::compute_shared_result(WarpGroup* g) {
  uint64_t r = 0;
  switch (g->kind) {
    case Collective::kVote: {
      uint32_t ballot = 0;
      for (uint32_t m = g->arrived; m != 0; m &= m - 1) {
        const int l = __builtin_ctz(m);
        if (g->values[l] != 0) ballot |= 1u << l;
      }
      r = ballot | (static_cast<uint64_t>(g->arrived) << 32);
      break;
    }
    case Collective::kMatchAll: {
      const uint64_t v0 = g->values[__builtin_ctz(g->arrived)];
      r = g->arrived;
      for (uint32_t m = g->arrived; m != 0; m &= m - 1) {
        if (g->values[__builtin_ctz(m)] != v0) r = 0;
      }
      break;
    }
    default: {  // reductions over 32-bit values
      bool first = true;
      uint32_t acc = 0;
      for (uint32_t m = g->arrived; m != 0; m &= m - 1) {
        const auto v = static_cast<uint32_t>(g->values[__builtin_ctz(m)]);
        const auto sv = static_cast<int32_t>(v), sacc = static_cast<int32_t>(acc);
        if (first) {
          acc = v;
          first = false;
        } else if (g->kind == Collective::kReduceAddU) {
          acc += v;
        } else if (g->kind == Collective::kReduceMinU) {
          acc = v < acc ? v : acc;
        } else if (g->kind == Collective::kReduceMaxU) {
          acc = v > acc ? v : acc;
        } else if (g->kind == Collective::kReduceMinS) {
          acc = static_cast<uint32_t>(sv < sacc ? sv : sacc);
        } else if (g->kind == Collective::kReduceMaxS) {
          acc = static_cast<uint32_t>(sv > sacc ? sv : sacc);
        } else if (g->kind == Collective::kReduceAnd) {
          acc &= v;
        } else if (g->kind == Collective::kReduceOr) {
          acc |= v;
        } else if (g->kind == Collective::kReduceXor) {
          acc ^= v;
        }
      }
      r = acc;
      break;
    }
  }
  g->shared_result = r;
}

void BlockRunner::collective_misuse(const Fiber* f, unsigned mask, const char* op, const WarpGroup* other) {
  if (other == nullptr) {
    fault(cudaErrorLaunchFailure,
          format("%s: the calling lane %u is not in its mask 0x%08x", op, f->thread.lane, mask));
  }
  fault(cudaErrorLaunchFailure,
        format("mismatched warp collectives in warp %u: lane %u calls %s(mask 0x%08x) while lanes 0x%08x wait "
               "in %s(mask 0x%08x)",
               f->thread.warp, f->thread.lane, op, mask, other->arrived, other->op, other->mask));
}

CUDA_EMU_HOT uint64_t BlockRunner::warp_collective(Collective kind, unsigned mask, uint64_t value, int src_lane,
                                                   const char* op) {
  Fiber* f = current_;
  const unsigned lane = f->thread.lane;
  const uint32_t bit = 1u << lane;
  WarpState& w = warp_at_[f->thread.warp];
  if (__builtin_expect((mask & bit) == 0, 0)) collective_misuse(f, mask, op, nullptr);
  WarpGroup* g = nullptr;
  for (unsigned i = 0; i < w.n_open; ++i) {
    WarpGroup* o = w.open[i];
    if ((o->mask & mask) == 0) continue;
    if (__builtin_expect(o->mask != mask || o->kind != kind, 0)) collective_misuse(f, mask, op, o);
    g = o;
    break;
  }
  if (g == nullptr) g = open_group(w, mask, kind, op);
  g->values[lane] = value;
  g->arrived |= bit;
  const uint32_t need = mask & w.live;
  if ((g->arrived & need) == need) {
    complete_group(w, g);
  } else {
    f->state = FState::kBlocked;
    f->wait = WaitOn::kWarp;
    f->wait_op = op;
    f->group = g;
    switch_away(f);
    if (cancelling_) throw_from_fiber(Cancelled{});
  }
  uint64_t r;
  if (kind == Collective::kShfl) {
    // A lane outside the collective has no value to give: undefined on the GPU, all-ones here.
    r = (src_lane >= 0 && src_lane < 32 && ((g->arrived >> src_lane) & 1u) != 0) ? g->values[src_lane] : ~uint64_t{0};
  } else if (kind == Collective::kMatchAny) {
    r = 0;
    for (uint32_t m = g->arrived; m != 0; m &= m - 1) {
      const int l = __builtin_ctz(m);
      if (g->values[l] == value) r |= uint64_t{1} << l;
    }
  } else {
    r = g->shared_result;
  }
  if (--g->readers == 0) release_group(g);
  return r;
}

CUDA_EMU_HOT int BlockRunner::block_sync(BlockSync kind, int predicate) {
  Fiber* f = current_;
  BarrierSlot& slot = bar_slot_[bar_gen_ & 1];
  ++slot.arrived;
  slot.count += predicate != 0 ? 1 : 0;
  f->barrier_gen = bar_gen_;
  if (++bar_arrived_ == live_) {
    release_block_barrier();
  } else {
    f->state = FState::kBlocked;
    f->wait = WaitOn::kBlockBarrier;
    f->wait_op = kind == BlockSync::kPlain ? "__syncthreads" : kind == BlockSync::kCount ? "__syncthreads_count"
                 : kind == BlockSync::kAnd ? "__syncthreads_and" : "__syncthreads_or";
    switch_away(f);
    if (cancelling_) throw_from_fiber(Cancelled{});
  }
  const BarrierSlot& done = bar_slot_[f->barrier_gen & 1];
  switch (kind) {
    case BlockSync::kPlain: return 0;
    case BlockSync::kCount: return done.count;
    case BlockSync::kAnd: return done.count == done.arrived ? 1 : 0;
    case BlockSync::kOr: return done.count > 0 ? 1 : 0;
  }
  return 0;
}

CUDA_EMU_HOT void BlockRunner::release_block_barrier() {
  for (unsigned k = 0; k < n_; ++k) {
    Fiber* f = fiber_at_[reverse_ ? n_ - 1 - k : k];
    if (f->state == FState::kBlocked && f->wait == WaitOn::kBlockBarrier) make_ready(f);
  }
  bar_arrived_ = 0;
  ++bar_gen_;
  bar_slot_[bar_gen_ & 1] = BarrierSlot{};  // the previous generation's results stay readable
}

void BlockRunner::yield() {
  Fiber* f = current_;
  make_ready(f);
  switch_away(f);
  if (cancelling_) throw_from_fiber(Cancelled{});
}

void BlockRunner::fault(int code, const std::string& message) { throw_from_fiber(DeviceFault{code, message}); }

void BlockRunner::record_fault(const Fiber* f, int code, const std::string& message) {
  if (fault_.ok()) {
    const ThreadCtx& t = f->thread;
    fault_.code = static_cast<cudaError_t>(code);
    fault_.message = message + format(" (block (%u, %u, %u), thread (%u, %u, %u))", t.block_idx.x, t.block_idx.y,
                                      t.block_idx.z, t.thread_idx.x, t.thread_idx.y, t.thread_idx.z);
  }
  cancelling_ = true;
}

std::string BlockRunner::describe_wait(const Fiber* f) const {
  switch (f->wait) {
    case WaitOn::kBlockBarrier: return f->wait_op;
    case WaitOn::kWarp:
      return format("%s(mask 0x%08x) in warp %u (lanes arrived 0x%08x)", f->wait_op, f->group->mask, f->thread.warp,
                    f->group->arrived);
    default: return "?";
  }
}

std::string BlockRunner::deadlock_message() const {
  std::string msg = format("deadlock in block (%u, %u, %u): %u of %u threads are alive and all wait:", block_idx_.x,
                           block_idx_.y, block_idx_.z, live_, n_);
  int lines = 0;
  for (unsigned i = 0; i < n_;) {
    if (fibers_[i]->state == FState::kDone) {
      ++i;
      continue;
    }
    const std::string what = describe_wait(fibers_[i]);
    unsigned j = i + 1;
    while (j < n_ && fibers_[j]->state != FState::kDone && describe_wait(fibers_[j]) == what) ++j;
    if (++lines > 16) {
      msg += " ...";
      break;
    }
    msg += format(" threads %u-%u in ", i, j - 1) + what + ";";
    i = j;
  }
  return msg + " (thread numbers are linear indices x + y*Dx + z*Dx*Dy)";
}

// ---- device-side entry points (cuda_emu/device_runtime.h) ---------------------------------------------------

void outside_kernel(const char* what) {
  std::fprintf(stderr, "cuda_emu: %s used outside a kernel\n", what);
  std::abort();
}

namespace {
BlockRunner& runner_for(const char* what) {
  BlockRunner* r = BlockRunner::active();
  if (r == nullptr || tls_thread == nullptr) outside_kernel(what);
  return *r;
}
}  // namespace

uint64_t warp_collective(Collective kind, unsigned mask, uint64_t value, int src_lane, const char* op) {
  return runner_for(op).warp_collective(kind, mask, value, src_lane, op);
}

int block_sync(BlockSync kind, int predicate) { return runner_for("__syncthreads").block_sync(kind, predicate); }

void yield_thread() { runner_for("__nanosleep").yield(); }

void device_fault(int error, const std::string& message) { runner_for("a device fault").fault(error, message); }

}  // namespace cuda_emu::detail

namespace cuda_emu {
void* dynamic_shared() { return detail::runner_for("cuda_emu::dynamic_shared()").dynamic_shared(); }
}  // namespace cuda_emu
