// A read-only, shared memory mapping of a whole file (munmap in the destructor). Move-only.
#pragma once

#include <cstddef>
#include <string>

#include "qmodel/format/fault_guard.h"
#include "qmodel/format/span.h"
#include "qmodel/format/status.h"

namespace qmodel::format {

class MappedFile {
 public:
  // kIoError when the path cannot be opened, is a directory or not a regular file, or mmap fails;
  // kCorruptFile ("truncated") for an empty file, which cannot be mapped.
  static Result<MappedFile> open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  ByteSpan bytes() const { return ByteSpan(static_cast<const uint8_t*>(addr_), size_); }

 private:
  MappedFile(void* addr, size_t size, const std::string& path) : addr_(addr), size_(size), guard_(addr, size, path) {}
  void* addr_ = nullptr;
  size_t size_ = 0;
  GuardedMapping guard_;  // a file truncated while mapped is a clear error, not a bare bus error
};

}  // namespace qmodel::format
