#include "source_files.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace qmodel::converter {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Status io_error(const std::string& path, const char* what) {
  return Status(StatusCode::kIoError, path + ": " + what + ": " + std::strerror(errno));
}

}  // namespace

Result<uint64_t> hash_file(const std::string& path, uint64_t* size_out) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) return io_error(path, "cannot open");
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), XXH3_freeState);
  if (!state || XXH3_64bits_reset(state.get()) != XXH_OK) return Status(StatusCode::kOutOfMemory, "xxh3 state");
  std::vector<char> buf(4u << 20);
  uint64_t total = 0;
  for (;;) {
    const ssize_t got = ::read(f.fd, buf.data(), buf.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return io_error(path, "read failed");
    if (got == 0) break;
    XXH3_64bits_update(state.get(), buf.data(), static_cast<size_t>(got));
    total += static_cast<uint64_t>(got);
  }
  if (size_out) *size_out = total;
  return static_cast<uint64_t>(XXH3_64bits_digest(state.get()));
}

}  // namespace qmodel::converter
