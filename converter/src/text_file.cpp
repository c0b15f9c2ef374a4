// read_text_file_capped: stdio read loop that stops at the cap instead of trusting the file size.
#include "text_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

namespace qmodel::converter {

Result<std::string> read_text_file_capped(const std::string& path, uint64_t max_bytes) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    const StatusCode code = errno == ENOENT ? StatusCode::kNotFound : StatusCode::kIoError;
    return Status(code, path + ": cannot open: " + std::strerror(errno));
  }
  std::string text;
  try {
    char buf[1 << 16];
    size_t got = 0;
    while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0) {
      if (text.size() + got > max_bytes) {
        std::fclose(f);
        return corrupt_file(path, "", -1, "larger than the " + std::to_string(max_bytes) + "-byte limit");
      }
      text.append(buf, got);
    }
  } catch (const std::bad_alloc&) {
    std::fclose(f);
    return Status(StatusCode::kOutOfMemory, path + ": out of memory");
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return Status(StatusCode::kIoError, path + ": read error");
  return text;
}

}  // namespace qmodel::converter
