// Runs one thread block at a time on the calling OS thread: every CUDA thread is a fiber, fibers
// run cooperatively until they reach a barrier (__syncthreads, or a warp collective over the lanes
// of its mask), threads that returned drop out of barriers, and when no fiber can run while some
// are alive the block is deadlocked: the launch fails with a description of who waits where.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuda_emu/device_runtime.h"
#include "cuda_emu/launch.h"
#include "errors.h"
#include "fiber.h"

namespace cuda_emu::detail {

struct BlockShape {
  dim3 grid;
  dim3 block;
  size_t shared_bytes = 0;
};

class BlockRunner {
 public:
  // The runner of the calling OS thread (created on first use, fibers reused across blocks).
  static BlockRunner& for_this_thread();
  // The runner whose block is executing on this OS thread, or null.
  static BlockRunner* active();

  BlockRunner();
  ~BlockRunner();
  BlockRunner(const BlockRunner&) = delete;
  BlockRunner& operator=(const BlockRunner&) = delete;

  // Runs every CUDA thread of block `block_idx` to completion; the first fault (a deadlock, a
  // device fault, an escaped exception) ends the block early.
  Fault run_block(const KernelTask& task, const BlockShape& shape, uint3 block_idx);

  // Device-side operations of the running fiber.
  uint64_t warp_collective(Collective kind, unsigned mask, uint64_t value, int src_lane, const char* op);
  int block_sync(BlockSync kind, int predicate);
  void yield();
  [[noreturn]] void fault(int code, const std::string& message);
  void* dynamic_shared() { return dyn_size_ > 0 ? dyn_ : nullptr; }

  struct Fiber;
  struct WarpGroup;

 private:
  struct WarpState {
    uint32_t live = 0;  // lanes that exist and have not returned
    // Collectives some lanes wait in. Each holds at least one waiting lane that no other holds,
    // so there are at most 32 (plain arrays: the hot paths run without sanitizer
    // instrumentation, and GCC does not inline instrumented std::vector members into them).
    unsigned n_open = 0;
    WarpGroup* open[32] = {};
  };
  struct BarrierSlot {
    int arrived = 0;
    int count = 0;  // predicates that were non-zero
  };

  static void fiber_main(void* arg);
  template <typename E>
  [[noreturn]] void throw_from_fiber(E&& e);
  void run_thread(Fiber* f);
  void exit_thread(Fiber* f);
  void ensure_fibers(unsigned n);
  void resume_from_scheduler(Fiber* f);
  void switch_away(Fiber* self);
  void make_ready(Fiber* f);
  Fiber* pop_ready();
  WarpGroup* open_group(WarpState& w, unsigned mask, Collective kind, const char* op);
  void complete_group(WarpState& w, WarpGroup* g);
  void release_group(WarpGroup* g);
  static void compute_shared_result(WarpGroup* g);
  void release_block_barrier();
  void record_fault(const Fiber* f, int code, const std::string& message);
  [[noreturn]] void collective_misuse(const Fiber* f, unsigned mask, const char* op, const WarpGroup* other);
  std::string deadlock_message() const;
  std::string describe_wait(const Fiber* f) const;

  Context sched_{};
  std::unique_ptr<FiberArena> arena_;
  std::vector<std::unique_ptr<Fiber>> fiber_store_;
  std::vector<Fiber*> fibers_;
  // Runnable fibers in FIFO order (each at most once: only kReady fibers are queued).
  std::vector<Fiber*> ready_ring_;
  unsigned ready_head_ = 0;
  std::vector<std::unique_ptr<WarpGroup>> all_groups_;
  std::vector<WarpGroup*> free_groups_;
  std::vector<WarpState> warps_;
  // Raw views of fibers_, ready_ring_ and warps_ for the hot paths (valid during run_block).
  Fiber** fiber_at_ = nullptr;
  Fiber** ring_ = nullptr;
  WarpState* warp_at_ = nullptr;
  const KernelTask* task_ = nullptr;
  BlockShape shape_;
  bool prepared_ = false;  // fibers_[0 .. n) hold the thread indices of this block / grid shape
  dim3 prepared_block_, prepared_grid_;
  uint3 block_idx_{};
  unsigned n_ = 0;      // threads in the block
  unsigned live_ = 0;   // not returned
  unsigned ready_ = 0;  // queued in ready_ring_
  Fiber* current_ = nullptr;
  bool cancelling_ = false;
  // QMODEL_EMU_SCHEDULE=reverse: threads start and wake in descending order instead of ascending,
  // so a read of shared data before the barrier that publishes it sees other stale values.
  bool reverse_ = false;
  Fault fault_;
  unsigned bar_arrived_ = 0;
  unsigned bar_gen_ = 0;
  BarrierSlot bar_slot_[2];
  unsigned char* dyn_ = nullptr;
  size_t dyn_size_ = 0;
  size_t dyn_capacity_ = 0;
};

}  // namespace cuda_emu::detail
