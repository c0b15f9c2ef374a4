// Files that change under a mapping, and temporary files that must not outlive a dying process.
//
// Reading a mapped file that another process has truncated raises SIGBUS, which would kill the
// tool with "Bus error" and no word about which file. Every mapping the libraries make registers
// its range here; once a tool calls install_fault_guard(), a SIGBUS inside a registered range
// prints "<program>: error: <file> was truncated or replaced while being read (offset N) ..." to
// stderr, removes the registered temporary files and exits with status 1. A SIGBUS anywhere else
// keeps its default meaning.
//
// The registry is a fixed table read by the signal handler without locks; when it is full, a
// mapping simply goes unguarded.
#pragma once

#include <cstddef>
#include <string>

namespace qmodel::format {

// Installs the SIGBUS handler (idempotent). `program` names the tool in the message.
void install_fault_guard(const char* program);

// Registers [begin, begin + size) as a mapping of `path` until the returned handle is destroyed.
class GuardedMapping {
 public:
  GuardedMapping() = default;
  GuardedMapping(const void* begin, size_t size, const std::string& path);
  ~GuardedMapping();
  GuardedMapping(GuardedMapping&& other) noexcept;
  GuardedMapping& operator=(GuardedMapping&& other) noexcept;
  GuardedMapping(const GuardedMapping&) = delete;
  GuardedMapping& operator=(const GuardedMapping&) = delete;

 private:
  int slot_ = -1;
};

// Registers a temporary file that the fault handler (and remove_registered_temp_files()) unlinks,
// until the returned handle is destroyed or release()d.
class RegisteredTempFile {
 public:
  RegisteredTempFile() = default;
  explicit RegisteredTempFile(const std::string& path);
  ~RegisteredTempFile() { release(); }
  RegisteredTempFile(RegisteredTempFile&& other) noexcept;
  RegisteredTempFile& operator=(RegisteredTempFile&& other) noexcept;
  RegisteredTempFile(const RegisteredTempFile&) = delete;
  RegisteredTempFile& operator=(const RegisteredTempFile&) = delete;
  void release();  // stop tracking (the owner removed or published the file)

 private:
  int slot_ = -1;
};

// Unlinks every registered temporary file. Async-signal-safe: for a tool's own signal handlers.
void remove_registered_temp_files();

}  // namespace qmodel::format
