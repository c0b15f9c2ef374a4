// A unique temporary directory for one test, removed with everything in it at scope exit.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace qmodel::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "qmodel-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The names in `dir` (without "." and ".."), unsorted; empty when it cannot be read.
inline std::vector<std::string> directory_entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") out.push_back(name);
    }
    ::closedir(d);
  }
  return out;
}

// The shared assets folder, or "" (and the caller skips) when it is absent.
inline std::string assets_dir() {
  std::string dir = QMODEL_TEST_ASSETS;
  return std::filesystem::is_directory(dir) ? dir : std::string();
}

#define QMODEL_REQUIRE_ASSETS(dir_var)                                                            \
  const std::string dir_var = ::qmodel::testing::assets_dir();                                   \
  if (dir_var.empty()) GTEST_SKIP() << "shared assets not found at " QMODEL_TEST_ASSETS          \
                                       " (plain clone without ../shared): skipping"

}  // namespace qmodel::testing
