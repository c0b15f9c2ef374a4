// Fibers for the CUDA threads of a block: mmap'd stacks with a guard page and a hand-written
// x86-64 context switch (the callee-saved registers only; no syscall, unlike swapcontext's
// signal-mask save), with a ucontext fallback on other targets. Every switch is
// annotated for AddressSanitizer so it keeps tracking which stack is live.
#pragma once

#include <cstddef>

#if defined(__x86_64__) && !defined(QMODEL_EMU_UCONTEXT)
#define CUDA_EMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

namespace cuda_emu::detail {

// A suspended execution context (a fiber, or the OS thread's own stack while fibers run).
struct Context {
#if defined(CUDA_EMU_ASM_SWITCH)
  void* sp = nullptr;
#else
  ucontext_t uc;
  void (*entry)(void*) = nullptr;
  void* arg = nullptr;
#endif
  // For AddressSanitizer: the stack this context runs on, and where ASan's fake stack of that
  // stack is kept while it is suspended (shared by all fibers of an arena; null: own_fake_stack).
  const void* stack_bottom = nullptr;
  size_t stack_size = 0;
  void** fake_stack_slot = nullptr;
  void* own_fake_stack = nullptr;
};

// The stacks of one OS thread's fibers: one reserved mapping of `count` slots of `slot_bytes`
// (committed lazily by the kernel), each used slot starting with a guard page that faults on
// overflow.
// One mapping lets AddressSanitizer see every fiber stack of the thread as one stack, so switches
// between two fibers need no annotation (only switches to and from the thread's own stack do).
class FiberArena {
 public:
  FiberArena(size_t count, size_t slot_bytes);
  ~FiberArena();
  FiberArena(const FiberArena&) = delete;
  FiberArena& operator=(const FiberArena&) = delete;
  size_t count() const { return count_; }
  // Makes slot i's guard page inaccessible (done when the slot gets its fiber).
  void protect_guard(size_t i);
  // The usable stack of slot i (above its guard page).
  void* slot_bottom(size_t i) const;
  size_t slot_size() const { return slot_bytes_ - page_; }
  void* bottom() const { return base_; }
  size_t size() const { return mapped_; }
  void** fake_stack_slot() { return &fake_stack_; }

 private:
  void* fake_stack_ = nullptr;
  void* base_ = nullptr;
  size_t count_ = 0, slot_bytes_ = 0, page_ = 0, mapped_ = 0;
};

// Describes the calling OS thread's stack in `ctx` (the context fibers switch back to).
void init_thread_context(Context* ctx);
// Prepares `ctx` so that the first switch to it runs entry(arg) on slot `index` of `arena`; entry
// never returns.
void make_context(Context* ctx, FiberArena& arena, size_t index, void (*entry)(void*), void* arg);
// Suspends the caller into `from` and resumes `to` (annotated for AddressSanitizer when the two
// run on different stacks).
void switch_context(Context* from, Context* to);
// First statement of a fiber's entry function (completes the switch that started it).
void fiber_entered(Context* self);
// Tells AddressSanitizer that the current stack is [bottom, bottom + size) without switching.
// Throwing makes ASan unpoison from the stack pointer to the top of the current stack (and skip
// it, with a warning, past 64 MiB): a fiber narrows its stack to its own slot before it throws,
// and widens it back to the arena after the catch.
void asan_set_current_stack(const void* bottom, size_t size);

}  // namespace cuda_emu::detail
