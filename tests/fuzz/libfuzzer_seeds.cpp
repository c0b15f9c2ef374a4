// libFuzzer builds only: before fuzzing, writes the target's built-in seeds (qmodel_fuzz_seeds)
// into the corpus folder named on the command line when that folder is empty, so a fresh run
// starts from valid inputs instead of from nothing.
#include <dirent.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "fuzz/fuzz_seeds.h"

namespace {

bool is_empty_directory(const char* path) {
  DIR* dir = opendir(path);
  if (!dir) return false;
  bool empty = true;
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") empty = false;
  }
  closedir(dir);
  return empty;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  for (int i = 1; i < *argc; ++i) {
    const char* arg = (*argv)[i];
    if (arg[0] == '-' || !is_empty_directory(arg)) continue;
    const std::vector<std::string> seeds = qmodel_fuzz_seeds();
    for (size_t s = 0; s < seeds.size(); ++s) {
      const std::string path = std::string(arg) + "/seed-" + std::to_string(s);
      if (FILE* f = std::fopen(path.c_str(), "wb")) {
        std::fwrite(seeds[s].data(), 1, seeds[s].size(), f);
        std::fclose(f);
      }
    }
    break;
  }
  return 0;
}
