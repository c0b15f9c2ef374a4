// Runs one of the built command-line tools through the shell and captures its exit code and its
// output (stdout and stderr separately).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

namespace qmodel::testing {

struct ToolRun {
  int exit_code = -1;
  std::string out, err;
};

inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// `args` is appended to the tool path as shell text (quote paths yourself); `scratch_dir` holds
// the captured streams.
inline ToolRun run_tool(const std::string& tool, const std::string& args, const std::string& scratch_dir) {
  const std::string out = scratch_dir + "/.stdout", err = scratch_dir + "/.stderr";
  const std::string cmd = std::string(QMODEL_BIN_DIR) + "/" + tool + " " + args + " >'" + out + "' 2>'" + err + "'";
  ToolRun r;
  const int status = std::system(cmd.c_str());
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_all(out);
  r.err = read_all(err);
  std::remove(out.c_str());
  std::remove(err.c_str());
  return r;
}

}  // namespace qmodel::testing
