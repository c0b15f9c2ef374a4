// Runs a fuzz target without libFuzzer (gcc builds, CI): replays every file named on the command
// line (a folder: every file in it, as the committed seed corpus tests/fuzz/corpus/<target>/),
// then, with --mutations N, feeds N seeded random mutations of the target's built-in seeds
// (bit flips, byte overwrites with boundary values, truncations, insertions, splices). Paired with
// ASan/UBSan this catches crashes cheaply; real fuzzing uses the libFuzzer build.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "fuzz/fuzz_seeds.h"

namespace {

void run_one(const std::string& bytes) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::string mutate(const std::string& seed, const std::vector<std::string>& seeds, std::mt19937_64& rng) {
  std::string s = seed;
  const int n_edits = 1 + static_cast<int>(rng() % 4);
  static const uint8_t kInteresting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x10};
  for (int e = 0; e < n_edits; ++e) {
    const size_t pos = s.empty() ? 0 : rng() % s.size();
    switch (rng() % 6) {
      case 0:  // flip one bit
        if (!s.empty()) s[pos] = static_cast<char>(s[pos] ^ (1 << (rng() % 8)));
        break;
      case 1:  // boundary byte
        if (!s.empty()) s[pos] = static_cast<char>(kInteresting[rng() % sizeof(kInteresting)]);
        break;
      case 2:  // truncate
        s.resize(pos);
        break;
      case 3:  // insert random bytes
        s.insert(pos, std::string(1 + rng() % 8, static_cast<char>(rng())));
        break;
      case 4: {  // overwrite 8 bytes with a boundary 64-bit value (sizes, offsets)
        static const uint64_t kValues[] = {0, 1, 0xffffffffull, 0x100000000ull, ~0ull, 1ull << 62};
        uint64_t v = kValues[rng() % 6];
        if (s.size() >= 8) std::memcpy(&s[rng() % (s.size() - 7)], &v, 8);
        break;
      }
      default: {  // splice in a piece of another seed
        const std::string& other = seeds[rng() % seeds.size()];
        if (!other.empty()) {
          size_t a = rng() % other.size();
          s.insert(pos, other.substr(a, rng() % 64));
        }
        break;
      }
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  long mutations = 0;
  unsigned long long seed = 1;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--mutations") && i + 1 < argc) {
      mutations = std::atol(argv[++i]);
    } else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else {
      files.push_back(argv[i]);
    }
  }
  std::vector<std::string> expanded;
  for (const std::string& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      std::vector<std::string> inside;
      if (DIR* d = ::opendir(f.c_str())) {
        while (const dirent* e = ::readdir(d)) {
          if (e->d_name[0] != '.') inside.push_back(f + "/" + e->d_name);
        }
        ::closedir(d);
      }
      std::sort(inside.begin(), inside.end());
      expanded.insert(expanded.end(), inside.begin(), inside.end());
    } else {
      expanded.push_back(f);
    }
  }
  files = expanded;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot open %s\n", f.c_str());
      return 2;
    }
    run_one(std::string(std::istreambuf_iterator<char>(in), {}));
  }
  const std::vector<std::string> seeds = qmodel_fuzz_seeds();
  for (const std::string& s : seeds) run_one(s);
  std::mt19937_64 rng(seed);
  for (long i = 0; i < mutations && !seeds.empty(); ++i) {
    run_one(mutate(seeds[static_cast<size_t>(i) % seeds.size()], seeds, rng));
  }
  std::printf("replayed %zu files, %zu seeds, %ld mutations: no crash\n", files.size(), seeds.size(), mutations);
  return 0;
}
