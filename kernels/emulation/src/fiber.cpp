#include "fiber.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#if defined(__SANITIZE_ADDRESS__)
#define CUDA_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUDA_EMU_ASAN 1
#endif
#endif
#if defined(CUDA_EMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace cuda_emu::detail {
namespace {

#if defined(CUDA_EMU_ASAN)
// Set by a switch ASan was told about, cleared by the context it resumes (which finishes it).
thread_local bool t_finish_pending = false;

void** fake_stack_of(Context* c) { return c->fake_stack_slot != nullptr ? c->fake_stack_slot : &c->own_fake_stack; }
#endif

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "cuda_emu: %s\n", what);
  std::abort();
}

}  // namespace

FiberArena::FiberArena(size_t count, size_t slot_bytes) {
  page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  count_ = count;
  slot_bytes_ = (slot_bytes + page_ - 1) / page_ * page_ + page_;
  mapped_ = count_ * slot_bytes_;
  base_ = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base_ == MAP_FAILED) die("cannot map the fiber stacks");
}

void FiberArena::protect_guard(size_t i) {
  // The lowest page of the slot faults on overflow instead of silently corrupting the next stack.
  if (mprotect(static_cast<char*>(base_) + i * slot_bytes_, page_, PROT_NONE) != 0) {
    die("cannot protect a fiber stack's guard page");
  }
}

FiberArena::~FiberArena() {
#if defined(CUDA_EMU_ASAN)
  // Frames abandoned on these stacks leave poisoned shadow; the range may be mapped again later.
  for (size_t i = 0; i < count_; ++i) ASAN_UNPOISON_MEMORY_REGION(slot_bottom(i), slot_size());
#endif
  munmap(base_, mapped_);
}

void* FiberArena::slot_bottom(size_t i) const { return static_cast<char*>(base_) + i * slot_bytes_ + page_; }

void init_thread_context(Context* ctx) {
  pthread_attr_t attr;
  void* addr = nullptr;
  size_t size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
  }
  ctx->stack_bottom = addr;
  ctx->stack_size = size;
}

#if defined(CUDA_EMU_ASM_SWITCH)

extern "C" void cuda_emu_switch_stack(void** save_sp, void* new_sp);
extern "C" void cuda_emu_fiber_trampoline();

// save_sp (rdi) <- current stack pointer after pushing the callee-saved registers; rsp <- new_sp
// (rsi); pop them and return into the other context. MXCSR and the x87 control word are not
// switched: device code cannot change them, so every fiber of a thread shares the thread's.
asm(R"(
  .text
  .globl cuda_emu_switch_stack
  .type cuda_emu_switch_stack, @function
cuda_emu_switch_stack:
  .cfi_startproc
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .cfi_endproc
  .size cuda_emu_switch_stack, .-cuda_emu_switch_stack

  .globl cuda_emu_fiber_trampoline
  .type cuda_emu_fiber_trampoline, @function
cuda_emu_fiber_trampoline:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size cuda_emu_fiber_trampoline, .-cuda_emu_fiber_trampoline
)");

void make_context(Context* ctx, FiberArena& arena, size_t index, void (*entry)(void*), void* arg) {
  arena.protect_guard(index);
  const auto top = (reinterpret_cast<uintptr_t>(arena.slot_bottom(index)) + arena.slot_size()) & ~uintptr_t{15};
  auto* slot = reinterpret_cast<uint64_t*>(top);
  // Frame popped by the first switch (see cuda_emu_switch_stack), from the top down: return
  // address (the trampoline; rsp is then 16-byte aligned), rbp = 0 (ends frame-pointer walks),
  // rbx, r12 = arg, r13 = entry, r14, r15.
  slot[-3] = reinterpret_cast<uint64_t>(&cuda_emu_fiber_trampoline);
  slot[-4] = 0;
  slot[-5] = 0;
  slot[-6] = reinterpret_cast<uint64_t>(arg);
  slot[-7] = reinterpret_cast<uint64_t>(entry);
  slot[-8] = 0;
  slot[-9] = 0;
  ctx->sp = &slot[-9];
  ctx->stack_bottom = arena.bottom();
  ctx->stack_size = arena.size();
  ctx->fake_stack_slot = arena.fake_stack_slot();
}

#else

namespace {
// makecontext passes int arguments only: the Context (holding entry and arg) travels as two halves.
void ucontext_start(unsigned hi, unsigned lo) {
  auto* ctx = reinterpret_cast<Context*>((static_cast<uintptr_t>(hi) << 32) | lo);
  ctx->entry(ctx->arg);
  std::abort();
}
}  // namespace

void make_context(Context* ctx, FiberArena& arena, size_t index, void (*entry)(void*), void* arg) {
  arena.protect_guard(index);
  if (getcontext(&ctx->uc) != 0) die("getcontext failed");
  ctx->uc.uc_stack.ss_sp = arena.slot_bottom(index);
  ctx->uc.uc_stack.ss_size = arena.slot_size();
  ctx->uc.uc_link = nullptr;
  ctx->entry = entry;
  ctx->arg = arg;
  const auto p = reinterpret_cast<uintptr_t>(ctx);
  makecontext(&ctx->uc, reinterpret_cast<void (*)()>(&ucontext_start), 2, static_cast<unsigned>(p >> 32),
              static_cast<unsigned>(p & 0xffffffffu));
  ctx->stack_bottom = arena.bottom();
  ctx->stack_size = arena.size();
  ctx->fake_stack_slot = arena.fake_stack_slot();
}

#endif

void switch_context(Context* from, Context* to) {
#if defined(CUDA_EMU_ASAN)
  // Fibers of one arena share one stack as far as ASan knows: no annotation between them.
  if (from->stack_bottom != to->stack_bottom) {
    __sanitizer_start_switch_fiber(fake_stack_of(from), to->stack_bottom, to->stack_size);
    t_finish_pending = true;
  }
#endif
#if defined(CUDA_EMU_ASM_SWITCH)
  cuda_emu_switch_stack(&from->sp, to->sp);
#else
  if (swapcontext(&from->uc, &to->uc) != 0) die("swapcontext failed");
#endif
#if defined(CUDA_EMU_ASAN)
  // Resumed, possibly by a different context than the one we switched to.
  if (t_finish_pending) {
    t_finish_pending = false;
    __sanitizer_finish_switch_fiber(*fake_stack_of(from), nullptr, nullptr);
  }
#endif
}

void asan_set_current_stack(const void* bottom, size_t size) {
#if defined(CUDA_EMU_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, bottom, size);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  (void)bottom;
  (void)size;
#endif
}

void fiber_entered(Context* self) {
#if defined(CUDA_EMU_ASAN)
  if (t_finish_pending) {
    t_finish_pending = false;
    __sanitizer_finish_switch_fiber(*fake_stack_of(self), nullptr, nullptr);
  }
#else
  (void)self;
#endif
}

}  // namespace cuda_emu::detail
