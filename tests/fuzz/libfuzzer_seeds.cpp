// libFuzzer builds only: before fuzzing, writes the target's built-in seeds (qmodel_fuzz_seeds)
// into the corpus folder named on the command line (as seed-N, unless already there), so every run
// starts from valid inputs, not only from what earlier runs happened to find.
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "fuzz/fuzz_seeds.h"

namespace {

bool is_directory(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  for (int i = 1; i < *argc; ++i) {
    const char* arg = (*argv)[i];
    if (arg[0] == '-' || !is_directory(arg)) continue;
    const std::vector<std::string> seeds = qmodel_fuzz_seeds();
    for (size_t s = 0; s < seeds.size(); ++s) {
      const std::string path = std::string(arg) + "/seed-" + std::to_string(s);
      if (exists(path)) continue;
      if (FILE* f = std::fopen(path.c_str(), "wb")) {
        std::fwrite(seeds[s].data(), 1, seeds[s].size(), f);
        std::fclose(f);
      }
    }
    break;
  }
  return 0;
}
