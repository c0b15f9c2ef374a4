// mmap-backed ReadOnlyMapping (POSIX).
#include "read_only_mapping.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

namespace qmodel::converter {

namespace {

Status io_error(const std::string& path, const char* what) {
  return Status(StatusCode::kIoError, path + ": " + what + ": " + std::strerror(errno));
}

}  // namespace

Result<std::unique_ptr<ReadOnlyMapping>> ReadOnlyMapping::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path, "cannot open");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Status s = io_error(path, "cannot stat");
    ::close(fd);
    return s;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status(StatusCode::kIoError, path + ": not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  const uint8_t* data = nullptr;
  if (size > 0) {  // mmap of length 0 is an error; an empty file maps to an empty span
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      Status s = io_error(path, "mmap failed");
      ::close(fd);
      return s;
    }
    data = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  std::unique_ptr<ReadOnlyMapping> mapping(new (std::nothrow) ReadOnlyMapping(data, size));
  if (!mapping) {
    if (data) ::munmap(const_cast<uint8_t*>(data), size);
    return Status(StatusCode::kOutOfMemory, path + ": out of memory");
  }
  if (data) mapping->guard_ = format::GuardedMapping(data, size, path);
  return mapping;
}

ReadOnlyMapping::~ReadOnlyMapping() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void ReadOnlyMapping::advise(uint64_t offset, uint64_t n_bytes, int advice) const {
  if (!data_ || n_bytes == 0 || offset >= size_) return;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t end = offset + n_bytes < size_ ? offset + n_bytes : size_;
  const uint64_t begin = offset / page * page;  // the mapping itself starts page-aligned
  // Advice is only a hint: a failure changes nothing the caller can observe, so it is ignored.
  (void)::madvise(const_cast<uint8_t*>(data_) + begin, static_cast<size_t>(end - begin), advice);
}

void ReadOnlyMapping::drop(uint64_t offset, uint64_t n_bytes) const { advise(offset, n_bytes, MADV_DONTNEED); }

void ReadOnlyMapping::prefetch(uint64_t offset, uint64_t n_bytes) const { advise(offset, n_bytes, MADV_WILLNEED); }

}  // namespace qmodel::converter
