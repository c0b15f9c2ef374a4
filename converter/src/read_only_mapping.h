// A whole file mapped read-only (mmap), for the converter's zero-copy readers. Private to the
// converter. Pages can be dropped from the process after use so a huge checkpoint streams through
// a small resident set; dropped pages are re-read from the file if touched again.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "qmodel/format/fault_guard.h"
#include "qmodel/format/span.h"
#include "qmodel/format/status.h"

namespace qmodel::converter {

class ReadOnlyMapping {
 public:
  // kIoError when the path cannot be opened, is not a regular file, or mmap fails.
  static Result<std::unique_ptr<ReadOnlyMapping>> open(const std::string& path);
  ~ReadOnlyMapping();
  ReadOnlyMapping(const ReadOnlyMapping&) = delete;
  ReadOnlyMapping& operator=(const ReadOnlyMapping&) = delete;

  ByteSpan bytes() const { return ByteSpan(data_, size_); }
  // Drops the pages covering [offset, offset + n_bytes) from this process (MADV_DONTNEED). The
  // range is widened to whole pages; neighbours simply fault back in from the page cache.
  void drop(uint64_t offset, uint64_t n_bytes) const;
  // Asks the kernel to read [offset, offset + n_bytes) ahead (MADV_WILLNEED).
  void prefetch(uint64_t offset, uint64_t n_bytes) const;

 private:
  ReadOnlyMapping(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  void advise(uint64_t offset, uint64_t n_bytes, int advice) const;

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  format::GuardedMapping guard_;  // a source truncated mid-conversion is a clear error, not "Bus error"
};

}  // namespace qmodel::converter
