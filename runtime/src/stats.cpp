// Process memory from /proc/self/status (Linux); 0 elsewhere.
#include "qmodel/runtime/stats.h"

#include <cstdio>
#include <cstring>

namespace qmodel::runtime {
namespace {

uint64_t status_kib(const char* key) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  unsigned long long kib = 0;
  const size_t key_len = std::strlen(key);
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, key, key_len) == 0 && line[key_len] == ':') {
      if (std::sscanf(line + key_len + 1, "%llu", &kib) != 1) kib = 0;
      break;
    }
  }
  std::fclose(f);
  return static_cast<uint64_t>(kib) * 1024;
}

}  // namespace

uint64_t process_resident_bytes() { return status_kib("VmRSS"); }
uint64_t process_peak_resident_bytes() { return status_kib("VmHWM"); }

}  // namespace qmodel::runtime
