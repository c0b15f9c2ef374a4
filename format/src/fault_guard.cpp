// Lock-free registries of mappings and temporary files, and the SIGBUS handler that reads them
// (see fault_guard.h). Everything the handler touches is a plain array of atomics and fixed-size
// character buffers; it only calls write(), unlink() and _exit(), which are async-signal-safe.
#include "qmodel/format/fault_guard.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

namespace qmodel::format {
namespace {

constexpr int kSlots = 256;
constexpr size_t kPathBytes = 1024;

enum SlotState : int { kFree = 0, kFilling = 1, kActive = 2 };

struct MappingSlot {
  std::atomic<int> state{kFree};
  uintptr_t begin = 0;
  size_t size = 0;
  char path[kPathBytes] = {};
};

struct TempSlot {
  std::atomic<int> state{kFree};
  char path[kPathBytes] = {};
};

MappingSlot g_mappings[kSlots];
TempSlot g_temps[kSlots];
std::atomic<bool> g_installed{false};
std::atomic<bool> g_reporting{false};
const char* g_program = "qmodel";
struct sigaction g_previous {};

void copy_path(char* out, const std::string& path) {
  const size_t n = std::min(path.size(), kPathBytes - 1);
  std::memcpy(out, path.data(), n);
  out[n] = '\0';
}

template <typename Slot>
int claim(Slot* slots) {
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (slots[i].state.compare_exchange_strong(expected, kFilling, std::memory_order_acquire)) return i;
  }
  return -1;
}

void write_str(const char* s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    const ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void write_u64(uint64_t v) {
  char buf[24];
  int i = 23;
  buf[i] = '\0';
  do {
    buf[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  write_str(buf + i);
}

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (MappingSlot& m : g_mappings) {
    if (m.state.load(std::memory_order_acquire) != kActive) continue;
    if (addr < m.begin || addr - m.begin >= m.size) continue;
    // Several threads may fault on the same truncated file: one reports, the others wait for the
    // _exit that ends them all.
    if (g_reporting.exchange(true)) {
      for (;;) ::pause();
    }
    write_str(g_program);
    write_str(": error: ");
    write_str(m.path);
    write_str(": the file was truncated or replaced while being read (bus error at offset ");
    write_u64(addr - m.begin);
    write_str(" of the ");
    write_u64(m.size);
    write_str(" bytes mapped); stopping, nothing was written\n");
    remove_registered_temp_files();
    ::_exit(1);
  }
  // Not one of ours: hand over to whatever was there before (the default action kills the
  // process on return, when the faulting access is retried).
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) {
      g_previous.sa_sigaction(sig, info, context);
      return;
    }
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN && g_previous.sa_handler != nullptr) {
    g_previous.sa_handler(sig);
    return;
  }
  ::signal(SIGBUS, SIG_DFL);
}

}  // namespace

void install_fault_guard(const char* program) {
  if (g_installed.exchange(true)) return;
  g_program = program;
  struct sigaction action {};
  action.sa_sigaction = on_sigbus;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGBUS, &action, &g_previous);
}

GuardedMapping::GuardedMapping(const void* begin, size_t size, const std::string& path) {
  slot_ = claim(g_mappings);
  if (slot_ < 0) return;  // table full: this mapping goes unguarded
  MappingSlot& m = g_mappings[slot_];
  m.begin = reinterpret_cast<uintptr_t>(begin);
  m.size = size;
  copy_path(m.path, path);
  m.state.store(kActive, std::memory_order_release);
}

GuardedMapping::~GuardedMapping() {
  if (slot_ >= 0) g_mappings[slot_].state.store(kFree, std::memory_order_release);
}

GuardedMapping::GuardedMapping(GuardedMapping&& other) noexcept : slot_(other.slot_) { other.slot_ = -1; }

GuardedMapping& GuardedMapping::operator=(GuardedMapping&& other) noexcept {
  if (this != &other) {
    if (slot_ >= 0) g_mappings[slot_].state.store(kFree, std::memory_order_release);
    slot_ = other.slot_;
    other.slot_ = -1;
  }
  return *this;
}

RegisteredTempFile::RegisteredTempFile(const std::string& path) {
  slot_ = claim(g_temps);
  if (slot_ < 0) return;
  copy_path(g_temps[slot_].path, path);
  g_temps[slot_].state.store(kActive, std::memory_order_release);
}

RegisteredTempFile::RegisteredTempFile(RegisteredTempFile&& other) noexcept : slot_(other.slot_) { other.slot_ = -1; }

RegisteredTempFile& RegisteredTempFile::operator=(RegisteredTempFile&& other) noexcept {
  if (this != &other) {
    release();
    slot_ = other.slot_;
    other.slot_ = -1;
  }
  return *this;
}

void RegisteredTempFile::release() {
  if (slot_ >= 0) g_temps[slot_].state.store(kFree, std::memory_order_release);
  slot_ = -1;
}

void remove_registered_temp_files() {
  for (TempSlot& t : g_temps) {
    if (t.state.load(std::memory_order_acquire) == kActive) ::unlink(t.path);
  }
}

}  // namespace qmodel::format
